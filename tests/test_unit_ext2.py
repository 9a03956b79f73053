"""The pure-Python ext2/3/4 driver on images made by the real mke2fs, checked
with e2fsck and debugfs (e2fsprogs), and on images it formats itself."""
from __future__ import annotations

import errno
import os
import random
import shutil
import stat as st
import subprocess
from pathlib import Path

import pytest

from umlpy.fs.ext2 import (RENAME_EXCHANGE, RENAME_NOREPLACE, ROOT_INO, BytesDevice, Ext2Error,
                           Ext2Volume, FileDevice)
from umlpy.fs.ext2.constants import FT_DIR, FT_REG, FT_SYMLINK
from umlpy.fs.ext2.mkfs import mkfs

pytestmark = pytest.mark.skipif(shutil.which("mke2fs") is None or shutil.which("e2fsck") is None,
                                reason="e2fsprogs (mke2fs, e2fsck, debugfs) not installed")

IS_ROOT = os.geteuid() == 0

# ---------------------------------------------------------------- helpers


def mke2fs(img: Path, fstype: str, bs: int, size: str = "16M", src: Path = None,
           extra=()) -> Path:
    cmd = ["mke2fs", "-q", "-F", "-t", fstype, "-b", str(bs), *extra]
    if src is not None:
        cmd += ["-d", str(src)]
    subprocess.run(cmd + [str(img), size], check=True, capture_output=True,
                   env={**os.environ, "E2FSPROGS_FAKE_TIME": ""})
    return img


def fsck(img: Path) -> str:
    r = subprocess.run(["e2fsck", "-fn", str(img)], capture_output=True, text=True)
    assert r.returncode == 0, f"e2fsck -fn failed ({r.returncode}):\n{r.stdout}\n{r.stderr}"
    return r.stdout


def debugfs(img: Path, request: str, write: bool = False) -> str:
    cmd = ["debugfs"] + (["-w"] if write else []) + ["-R", request, str(img)]
    return subprocess.run(cmd, capture_output=True, text=True, check=True).stdout


def vopen(img: Path, readonly: bool = False) -> Ext2Volume:
    return Ext2Volume.open(FileDevice(str(img), readonly=readonly), readonly=readonly)


def resolve(vol: Ext2Volume, path: str) -> int:
    ino = ROOT_INO
    for part in path.strip("/").split("/"):
        if part:
            ino = vol.lookup(ino, part.encode())
    return ino


def vol_tree(vol: Ext2Volume, ino: int = ROOT_INO, prefix: str = "") -> dict:
    """path -> (kind, payload, perm, nlink) for the whole tree below ino."""
    out = {}
    for name, child, dtype in vol.readdir(ino):
        if prefix == "" and name == b"lost+found":
            continue
        path = prefix + "/" + name.decode()
        a = vol.getattr(child)
        assert dtype in (0, {st.S_IFDIR: FT_DIR, st.S_IFREG: FT_REG,
                             st.S_IFLNK: FT_SYMLINK}.get(st.S_IFMT(a.mode), dtype))
        if st.S_ISDIR(a.mode):
            out[path] = ("dir", None, st.S_IMODE(a.mode), a.nlink)
            out.update(vol_tree(vol, child, path))
        elif st.S_ISLNK(a.mode):
            out[path] = ("link", vol.readlink(child), 0, a.nlink)
        elif st.S_ISREG(a.mode):
            out[path] = ("file", vol.read(child, 0, a.size + 10), st.S_IMODE(a.mode), a.nlink)
        else:
            out[path] = (st.S_IFMT(a.mode), a.rdev, st.S_IMODE(a.mode), a.nlink)
    return out


def host_tree(root: Path, prefix: str = "") -> dict:
    out = {}
    for entry in sorted(os.scandir(root), key=lambda e: e.name):
        path = prefix + "/" + entry.name
        info = os.lstat(entry.path)
        if st.S_ISDIR(info.st_mode):
            out[path] = ("dir", None, st.S_IMODE(info.st_mode), info.st_nlink)
            out.update(host_tree(Path(entry.path), path))
        elif st.S_ISLNK(info.st_mode):
            out[path] = ("link", os.readlink(os.fsencode(entry.path)), 0, info.st_nlink)
        elif st.S_ISREG(info.st_mode):
            out[path] = ("file", Path(entry.path).read_bytes(), st.S_IMODE(info.st_mode),
                         info.st_nlink)
        else:
            out[path] = (st.S_IFMT(info.st_mode), info.st_rdev, st.S_IMODE(info.st_mode),
                         info.st_nlink)
    return out


def make_host_tree(root: Path, big_sparse: bool = False) -> Path:
    root.mkdir()
    rnd = random.Random(7)
    (root / "empty").write_bytes(b"")
    (root / "small").write_bytes(b"hello world\n")
    (root / "blocks").write_bytes(bytes(rnd.getrandbits(8) for _ in range(50_000)))
    (root / "dir" / "sub" / "deeper").mkdir(parents=True)
    (root / "dir" / "sub" / "deeper" / "leaf").write_bytes(b"leaf\n" * 1000)
    (root / "dir" / "exec").write_bytes(b"#!/bin/sh\n")
    os.chmod(root / "dir" / "exec", 0o4755)
    os.chmod(root / "dir" / "sub", 0o700)
    os.symlink("small", root / "fastlink")
    os.symlink("x" * 59, root / "fast59")
    os.symlink("y" * 60, root / "slow60")
    os.symlink("dir/sub/" + "z" * 300, root / "slowlink")
    os.link(root / "small", root / "hardlink")
    os.link(root / "small", root / "dir" / "hardlink2")
    with open(root / "sparse", "wb") as f:
        f.seek(3_000_000)
        f.write(b"after the hole")
    if big_sparse:          # past the double-indirect limit of 1 KiB blocks (~64.3 MiB)
        with open(root / "huge", "wb") as f:
            for off in (0, 12 * 1024, 300 * 1024, 66_000_000, 70_000_000):
                f.seek(off)
                f.write(off.to_bytes(8, "little") * 128)
    os.mkfifo(root / "fifo")
    if IS_ROOT:
        os.mknod(root / "null", 0o666 | st.S_IFCHR, os.makedev(1, 3))
        os.mknod(root / "bigdev", 0o600 | st.S_IFBLK, os.makedev(259, 70000))
    return root


IMAGE_KINDS = [("ext2", 1024), ("ext3", 1024), ("ext4", 4096), ("ext4", 1024)]


def kind_id(kind) -> str:
    return f"{kind[0]}-{kind[1]}"


# ------------------------------------------------------------ reading trees

@pytest.mark.parametrize("kind", IMAGE_KINDS, ids=kind_id)
def test_reads_tree_made_by_mke2fs(tmp_path, kind):
    fstype, bs = kind
    src = make_host_tree(tmp_path / "src", big_sparse=(fstype == "ext2"))
    img = mke2fs(tmp_path / "img", fstype, bs, "96M" if fstype == "ext2" else "16M", src)
    vol = vopen(img, readonly=True)
    assert vol_tree(vol) == host_tree(src)
    small = resolve(vol, "small")
    a = vol.getattr(small)
    info = os.stat(src / "small")
    assert a.size == 12 and a.nlink == 3 and a.uid == info.st_uid
    assert a.mtime_ns // 10**9 == info.st_mtime_ns // 10**9
    sparse = resolve(vol, "sparse")
    assert vol.getattr(sparse).blocks * 512 <= 4 * bs          # the hole is not allocated
    ext = vol.read_extents(sparse)
    assert len(ext) == 1 and ext[0][0] == 3_000_000 // bs
    if IS_ROOT:
        assert vol.getattr(resolve(vol, "bigdev")).rdev == os.makedev(259, 70000)
    if fstype == "ext2":
        huge = resolve(vol, "huge")
        for off in (66_000_000, 70_000_000):
            assert vol.read(huge, off, 1024) == off.to_bytes(8, "little") * 128
        assert vol.read(huge, 50_000_000, 4096) == bytes(4096)
    with pytest.raises(OSError) as e:
        vol.write(small, 0, b"x")
    assert e.value.errno == errno.EROFS
    vol.close()


@pytest.mark.parametrize("fstype", ["ext2", "ext4"])
def test_htree_directory(tmp_path, fstype):
    src = tmp_path / "src"
    (src / "big").mkdir(parents=True)
    for i in range(2000):
        (src / "big" / f"entry-{i:05d}-{'q' * (i % 40)}").write_bytes(b"%d" % i)
    img = mke2fs(tmp_path / "img", fstype, 1024, "32M", src)
    subprocess.run(["e2fsck", "-fyD", str(img)], capture_output=True)   # build the index
    vol = vopen(img)
    big = resolve(vol, "big")
    assert vol.getattr(big).flags & 0x1000
    names = {n for n, _, _ in vol.readdir(big)}
    assert len(names) == 2000
    f = vol.lookup(big, f"entry-01234-{'q' * (1234 % 40)}".encode())
    assert vol.read(f, 0, 10) == b"1234"
    vol.unlink(big, f"entry-00007-{'q' * 7}".encode())        # index stays valid
    vol.sync()
    assert vol.getattr(big).flags & 0x1000
    fsck(img)
    vol.create(big, b"newcomer", 0o644, 0, 0)                  # index dropped
    vol.rename(big, f"entry-00008-{'q' * 8}".encode(), ROOT_INO, b"moved")
    vol.close()
    fsck(img)
    vol = vopen(img, readonly=True)
    big = resolve(vol, "big")
    assert not vol.getattr(big).flags & 0x1000
    assert len(list(vol.readdir(big))) == 1999
    assert vol.lookup(big, b"newcomer") and vol.lookup(ROOT_INO, b"moved")


# ------------------------------------------------------------------ writing

def exercise_writes(vol: Ext2Volume) -> dict:
    """A mix of namespace and data operations; returns what the tree should hold."""
    root = ROOT_INO
    d = vol.mkdir(root, b"work", 0o750, 1000, 100)
    f = vol.create(d, b"file", 0o640, 1000, 100)
    data = bytes(range(256)) * 300
    assert vol.write(f, 0, data) == len(data)
    assert vol.write(f, 200_000, b"far") == 3
    vol.symlink(d, b"fast", b"file", 0, 0)
    vol.symlink(d, b"slow", b"/" + b"s" * 200, 0, 0)
    vol.link(root, b"file-link", f)
    sub = vol.mkdir(d, b"sub", 0o755, 0, 0)
    for i in range(150):
        g = vol.create(sub, b"n%03d" % i, 0o600, 0, 0)
        vol.write(g, 0, b"%d" % i)
    for i in range(0, 150, 3):
        vol.unlink(sub, b"n%03d" % i)
    vol.rename(sub, b"n001", d, b"renamed")
    vol.mkdir(d, b"emptydir", 0o755, 0, 0)
    vol.rmdir(d, b"emptydir")
    vol.create(d, b"pipe", st.S_IFIFO | 0o644, 0, 0)
    vol.create(d, b"old-dev", st.S_IFCHR | 0o644, 0, 0, rdev=os.makedev(4, 5))
    vol.create(d, b"new-dev", st.S_IFBLK | 0o644, 0, 0, rdev=os.makedev(300, 1000))
    t = vol.create(d, b"trunc", 0o644, 0, 0)
    vol.write(t, 0, b"t" * 100_000)
    vol.truncate(t, 5000)
    vol.truncate(t, 9000)                        # the grown part reads as zeros
    return {"work_ino": d, "file_ino": f, "file": data + bytes(200_000 - len(data)) + b"far"}


@pytest.mark.parametrize("kind", IMAGE_KINDS, ids=kind_id)
def test_writes_pass_e2fsck(tmp_path, kind):
    fstype, bs = kind
    src = make_host_tree(tmp_path / "src")
    img = mke2fs(tmp_path / "img", fstype, bs, "16M", src)
    vol = vopen(img)
    assert vol.readonly_reason is None
    expect = exercise_writes(vol)
    vol.unlink(ROOT_INO, b"small")
    vol.rename(ROOT_INO, b"dir", expect["work_ino"], b"moved-dir")
    vol.close()
    fsck(img)
    out = debugfs(img, "stat /work/new-dev")
    assert "Device major/minor number: 300:1000" in out
    assert "Links: 2" in debugfs(img, "stat /work/file")
    vol = vopen(img)
    f = resolve(vol, "work/file")
    assert vol.read(f, 0, 300_000) == expect["file"]
    assert vol.readlink(resolve(vol, "work/slow")) == b"/" + b"s" * 200
    assert vol.read(resolve(vol, "work/trunc"), 0, 10_000) == b"t" * 5000 + bytes(4000)
    assert vol.read(resolve(vol, "work/renamed"), 0, 10) == b"1"
    assert vol.getattr(resolve(vol, "work/old-dev")).rdev == os.makedev(4, 5)
    assert vol.getattr(resolve(vol, "work/new-dev")).rdev == os.makedev(300, 1000)
    moved = resolve(vol, "work/moved-dir")
    assert vol.lookup(moved, b"..") == expect["work_ino"]
    assert vol.getattr(expect["work_ino"]).nlink == 4        # ., .., sub, moved-dir
    assert vol.getattr(ROOT_INO).nlink == 4                   # lost+found, work (dir moved)
    with pytest.raises(FileNotFoundError):
        vol.lookup(ROOT_INO, b"small")
    vol.close()
    fsck(img)


def test_indirect_block_boundaries(tmp_path):
    img = mke2fs(tmp_path / "img", "ext2", 1024, "80M")
    vol = vopen(img)
    f = vol.create(ROOT_INO, b"f", 0o644, 0, 0)
    marks = [0, 11, 12, 267, 268, 269, 12 + 256 + 65535, 12 + 256 + 65536, 12 + 256 + 65537 + 300]
    for blk in marks:
        vol.write(f, blk * 1024 + 100, b"<%d>" % blk)
    vol.sync()
    fsck(img)
    for blk in marks:
        assert vol.read(f, blk * 1024 + 100, len(b"<%d>" % blk)) == b"<%d>" % blk
    for cut in (12 + 256 + 65537 + 1, 12 + 256 + 100, 269, 12, 0):
        vol.truncate(f, cut * 1024 + 1)
        vol.sync()
        fsck(img)
        assert [m for m in marks if vol.read(f, m * 1024 + 100, 1) == b"<"] == \
            [m for m in marks if m < cut]
    vol.truncate(f, 0)
    assert vol.getattr(f).blocks == 0
    vol.close()
    fsck(img)


def test_extent_tree_grows_and_shrinks(tmp_path):
    img = mke2fs(tmp_path / "img", "ext4", 1024, "32M")
    vol = vopen(img)
    f = vol.create(ROOT_INO, b"frag", 0o644, 0, 0)
    assert vol.getattr(f).flags & 0x80000
    for i in range(0, 1400, 2):                  # 700 extents: a depth-2 tree at 1 KiB
        vol.write(f, i * 1024, bytes([i % 251]) * 1024)
    vol.sync()
    fsck(img)
    assert "(ETB1)" in debugfs(img, "stat /frag")
    data = vol.read(f, 0, 1400 * 1024)
    for i in range(1399):
        assert data[i * 1024:(i + 1) * 1024] == (bytes([i % 251]) * 1024 if i % 2 == 0
                                                 else bytes(1024))
    vol.write(f, 1024, b"fill" * 256)           # filling a hole merges nothing but stays valid
    vol.truncate(f, 300 * 1024)
    vol.sync()
    fsck(img)
    vol.truncate(f, 3 * 1024)
    vol.close()
    fsck(img)
    assert "ETB" not in debugfs(img, "stat /frag")


def test_large_file_roundtrip_and_fragments(tmp_path):
    img = mke2fs(tmp_path / "img", "ext4", 4096, "64M")
    vol = vopen(img)
    f = vol.create(ROOT_INO, b"big", 0o644, 0, 0)
    blob = os.urandom(1 << 20)
    for i in range(20):
        vol.write(f, i << 20, blob)
    vol.write(f, 5 * (1 << 20) + 17, b"patch")
    runs = vol.read_extents(f)
    assert sum(n for _, _, n in runs) == 20 * 256
    vol.close()
    fsck(img)
    vol = vopen(img, readonly=True)
    f = resolve(vol, "big")
    got = vol.read(f, 5 << 20, 1 << 20)
    assert got[:17] == blob[:17] and got[17:22] == b"patch" and got[22:] == blob[22:]


@pytest.mark.parametrize("fstype", ["ext2", "ext4"])
def test_enospc_leaves_a_clean_file_system(tmp_path, fstype):
    img = mke2fs(tmp_path / "img", fstype, 1024, "4M")
    vol = vopen(img)
    f = vol.create(ROOT_INO, b"fill", 0o644, 0, 0)
    chunk = b"z" * 65536
    pos = 0
    with pytest.raises(OSError) as e:
        while True:
            n = vol.write(f, pos, chunk)
            pos += n
    assert e.value.errno == errno.ENOSPC and pos > 2_000_000
    vol.sync()
    fsck(img)
    assert vol.statfs().f_bfree < 100
    vol.unlink(ROOT_INO, b"fill")
    g = vol.create(ROOT_INO, b"again", 0o644, 0, 0)
    assert vol.write(g, 0, chunk * 20) == len(chunk) * 20        # freed space is reusable
    vol.close()
    fsck(img)


def test_inode_exhaustion(tmp_path):
    img = mke2fs(tmp_path / "img", "ext2", 1024, "1M", extra=("-N", "32"))
    vol = vopen(img)
    with pytest.raises(OSError) as e:
        for i in range(100):
            vol.create(ROOT_INO, b"f%d" % i, 0o644, 0, 0)
    assert e.value.errno == errno.ENOSPC
    vol.close()
    fsck(img)


def test_attributes_and_times(tmp_path):
    img = mke2fs(tmp_path / "img", "ext4", 1024, "8M")
    vol = vopen(img)
    f = vol.create(ROOT_INO, b"f", 0o644, 70000, 80000)
    a = vol.getattr(f)
    assert (a.uid, a.gid) == (70000, 80000)
    late = 5_000_000_000 * 10**9 + 123456789               # past 2038: needs the epoch bits
    early = -1_000 * 10**9 + 5
    vol.setattr(f, mode=0o2711, uid=1, gid=-1, atime_ns=early, mtime_ns=late, ctime_ns=late)
    a = vol.getattr(f)
    assert st.S_IMODE(a.mode) == 0o2711 and st.S_ISREG(a.mode) and (a.uid, a.gid) == (1, 80000)
    assert (a.atime_ns, a.mtime_ns, a.ctime_ns) == (early, late, late)
    vol.setattr(f, size=10_000)
    a = vol.getattr(f)
    assert a.size == 10_000 and a.blocks == 0 and a.mtime_ns != late
    vol.close()
    fsck(img)
    vol = vopen(img)
    f = resolve(vol, "f")
    vol.setattr(f, atime_ns=late, mtime_ns=early)
    vol.close()
    vol = vopen(img)
    a = vol.getattr(resolve(vol, "f"))
    assert (a.atime_ns, a.mtime_ns) == (late, early)


def test_rename_semantics(tmp_path):
    img = mke2fs(tmp_path / "img", "ext4", 1024, "8M")
    vol = vopen(img)
    r = ROOT_INO
    a = vol.mkdir(r, b"a", 0o755, 0, 0)
    b = vol.mkdir(r, b"b", 0o755, 0, 0)
    a_sub = vol.mkdir(a, b"sub", 0o755, 0, 0)
    f = vol.create(r, b"f", 0o644, 0, 0)
    g = vol.create(r, b"g", 0o644, 0, 0)

    def code(*args):
        with pytest.raises(OSError) as e:
            vol.rename(*args)
        return e.value.errno

    assert code(r, b"f", r, b"g", RENAME_NOREPLACE) == errno.EEXIST
    assert code(r, b"f", r, b"nothing", RENAME_EXCHANGE) == errno.ENOENT
    assert code(r, b"f", r, b"g", RENAME_EXCHANGE | RENAME_NOREPLACE) == errno.EINVAL
    assert code(r, b"a", a_sub, b"x") == errno.EINVAL          # into its own subtree
    assert code(r, b"a", r, b"f") == errno.ENOTDIR
    assert code(r, b"f", r, b"a") == errno.EISDIR
    assert code(r, b"b", r, b"a") == errno.ENOTEMPTY
    assert code(r, b"missing", r, b"x") == errno.ENOENT
    vol.rename(r, b"f", r, b"g")                                # file over file
    assert vol.lookup(r, b"g") == f and vol.getattr(g).nlink == 0
    vol.rename(a, b"sub", b, b"sub2")                           # dir across parents
    assert vol.lookup(vol.lookup(b, b"sub2"), b"..") == b
    assert vol.getattr(a).nlink == 2 and vol.getattr(b).nlink == 3
    vol.rename(b, b"sub2", r, b"a")                             # dir over empty dir
    assert vol.lookup(r, b"a") == a_sub and vol.getattr(b).nlink == 2
    assert vol.lookup(a_sub, b"..") == r
    c = vol.mkdir(b, b"c", 0o755, 0, 0)
    vol.rename(r, b"g", b, b"c", RENAME_EXCHANGE)               # file <-> dir across dirs
    assert vol.lookup(r, b"g") == c and vol.lookup(b, b"c") == f
    assert vol.lookup(c, b"..") == r and vol.getattr(b).nlink == 2
    vol.rename(r, b"g", r, b"g")                                # same entry: nothing
    vol.link(r, b"f-link", f)
    vol.rename(b, b"c", r, b"f-link")                           # hard links of one file
    assert vol.lookup(b, b"c") == f
    vol.close()
    fsck(img)


def test_rmdir_unlink_errors_and_names(tmp_path):
    img = mke2fs(tmp_path / "img", "ext2", 1024, "8M")
    vol = vopen(img)
    d = vol.mkdir(ROOT_INO, b"d", 0o755, 0, 0)
    vol.create(d, b"x", 0o644, 0, 0)
    for call, args, err in [
            (vol.rmdir, (ROOT_INO, b"d"), errno.ENOTEMPTY),
            (vol.unlink, (ROOT_INO, b"d"), errno.EISDIR),
            (vol.rmdir, (d, b"x"), errno.ENOTDIR),
            (vol.create, (ROOT_INO, b"d", 0o644, 0, 0), errno.EEXIST),
            (vol.create, (ROOT_INO, b"a/b", 0o644, 0, 0), errno.EINVAL),
            (vol.create, (ROOT_INO, b"n" * 256, 0o644, 0, 0), errno.ENAMETOOLONG),
            (vol.link, (ROOT_INO, b"dirlink", d), errno.EPERM),
            (vol.lookup, (ROOT_INO, b"nope"), errno.ENOENT),
            (vol.lookup, (vol.lookup(d, b"x"), b"y"), errno.ENOTDIR),
            (vol.read, (d, 0, 1), errno.EISDIR),
            (vol.readlink, (d,), errno.EINVAL)]:
        with pytest.raises(OSError) as e:
            call(*args)
        assert e.value.errno == err, call.__name__
    vol.create(ROOT_INO, b"n" * 255, 0o644, 0, 0)
    vol.close()
    fsck(img)


@pytest.mark.parametrize("fstype", ["ext2", "ext4"])
def test_pinned_unlinked_inode_survives_until_released(tmp_path, fstype):
    img = mke2fs(tmp_path / "img", fstype, 1024, "8M")
    vol = vopen(img)
    f = vol.create(ROOT_INO, b"open", 0o644, 0, 0)
    vol.write(f, 0, b"still here" * 1000)
    free_before = vol.statfs().f_bfree
    vol.pin(f)
    assert vol.unlink(ROOT_INO, b"open") == f
    assert vol.read(f, 0, 10) == b"still here" and vol.getattr(f).nlink == 0
    vol.write(f, 10_000, b"more")
    vol.sync()
    assert vol.sb.s_last_orphan == f
    vol.release(f)
    assert vol.sb.s_last_orphan == 0
    vol.sync()
    assert vol.statfs().f_bfree >= free_before
    g = vol.create(ROOT_INO, b"g", 0o644, 0, 0)
    vol.pin(g)
    vol.unlink(ROOT_INO, b"g")
    vol.close()                                  # frees pinned orphans
    fsck(img)


def test_orphans_left_by_a_crash_are_finished_at_mount(tmp_path):
    img = mke2fs(tmp_path / "img", "ext4", 1024, "8M")
    vol = vopen(img)
    f = vol.create(ROOT_INO, b"f", 0o644, 0, 0)
    vol.write(f, 0, b"x" * 50_000)
    vol.pin(f)
    vol.unlink(ROOT_INO, b"f")
    vol.sync()                                   # "crash" here: never closed
    vol2 = vopen(img)
    assert vol2.sb.s_last_orphan == 0
    vol2.close()
    fsck(img)


def test_uninit_groups_get_initialized(tmp_path):
    img = mke2fs(tmp_path / "img", "ext4", 1024, "64M")
    assert "BLOCK_UNINIT" in subprocess.run(["dumpe2fs", str(img)], capture_output=True,
                                            text=True).stdout
    vol = vopen(img)
    dirs = [vol.mkdir(ROOT_INO, b"top%d" % i, 0o755, 0, 0) for i in range(8)]
    groups = {(ino - 1) // vol.sb.s_inodes_per_group for ino in dirs}
    assert len(groups) > 1                       # top-level dirs spread over groups
    for i, d in enumerate(dirs):
        f = vol.create(d, b"data", 0o644, 0, 0)
        vol.write(f, 0, os.urandom(3 << 20))
    vol.close()
    fsck(img)


def test_superblock_state_and_statfs(tmp_path):
    img = mke2fs(tmp_path / "img", "ext4", 1024, "8M")
    vol = vopen(img)
    assert "not clean" in subprocess.run(["dumpe2fs", "-h", str(img)], capture_output=True,
                                         text=True).stdout
    s = vol.statfs()
    assert s.f_type == 0xEF53 and s.f_bsize == 1024 and 0 < s.f_bavail < s.f_bfree < s.f_blocks
    f = vol.create(ROOT_INO, b"f", 0o644, 0, 0)
    vol.write(f, 0, b"x" * 100 * 1024)
    assert vol.statfs().f_bfree <= s.f_bfree - 100
    assert vol.statfs().f_ffree == s.f_ffree - 1
    vol.close()
    out = subprocess.run(["dumpe2fs", "-h", str(img)], capture_output=True, text=True).stdout
    assert "Filesystem state:         clean" in out and "Mount count:              1" in out


# -------------------------------------------------------- features, journal

def patch_superblock(img: Path, **fields) -> None:
    from umlpy.fs.ext2.superblock import Superblock
    with open(img, "r+b") as fh:
        fh.seek(1024)
        sb = Superblock(fh.read(1024))
        for name, value in fields.items():
            setattr(sb, name, value)
        sb.update_checksum()
        fh.seek(1024)
        fh.write(sb.buf)


def test_ext3_with_clean_journal_mounts_read_write(tmp_path):
    img = mke2fs(tmp_path / "img", "ext3", 1024, "16M")
    vol = vopen(img)
    assert not vol.readonly
    vol.write(vol.create(ROOT_INO, b"f", 0o644, 0, 0), 0, b"journal left alone")
    vol.close()
    fsck(img)


def test_journal_needing_recovery_is_refused(tmp_path):
    img = mke2fs(tmp_path / "img", "ext4", 1024, "16M")
    from umlpy.fs.ext2 import constants as c
    incompat = int.from_bytes(img.read_bytes()[1024 + 0x60:1024 + 0x64], "little")
    patch_superblock(img, s_feature_incompat=incompat | c.INCOMPAT_RECOVER)
    for ro in (False, True):
        with pytest.raises(Ext2Error, match="journal needs recovery"):
            vopen(img, readonly=ro)


def test_feature_policy(tmp_path):
    from umlpy.fs.ext2 import constants as c
    img = mke2fs(tmp_path / "img", "ext4", 1024, "8M", extra=("-O", "quota"))
    vol = vopen(img)
    assert vol.readonly and "quota" in vol.readonly_reason
    with pytest.raises(OSError) as e:
        vol.create(ROOT_INO, b"x", 0o644, 0, 0)
    assert e.value.errno == errno.EROFS
    img2 = mke2fs(tmp_path / "img2", "ext4", 1024, "8M")
    incompat = int.from_bytes(img2.read_bytes()[1024 + 0x60:1024 + 0x64], "little")
    patch_superblock(img2, s_feature_incompat=incompat | 0x800000)
    with pytest.raises(Ext2Error, match="unsupported incompat"):
        vopen(img2)
    img3 = mke2fs(tmp_path / "img3", "ext4", 1024, "8M", extra=("-O", "inline_data"))
    src = tmp_path / "src"
    src.mkdir()
    (src / "tiny").write_bytes(b"inline!")
    img4 = mke2fs(tmp_path / "img4", "ext4", 1024, "8M", src, extra=("-O", "inline_data"))
    for image in (img3, img4):
        vol = vopen(image)
        assert vol.readonly and "inline_data" in vol.readonly_reason
    assert vol.read(resolve(vol, "tiny"), 0, 100) == b"inline!"
    assert c.INCOMPAT_INLINE_DATA


FEATURE_VARIANTS = [
    ("ext4", 1024, "^metadata_csum,uninit_bg"),      # crc16 descriptor checksums
    ("ext4", 4096, "^64bit"),                         # 32-byte descriptors
    ("ext4", 1024, "^flex_bg"),
    ("ext4", 1024, "meta_bg,^resize_inode"),
    ("ext4", 1024, "sparse_super2"),
    ("ext4", 4096, "metadata_csum_seed"),
    ("ext4", 4096, "orphan_file"),
    ("ext4", 4096, "large_dir"),
    ("ext4", 1024, "^extent,^64bit"),                 # block maps with metadata_csum
    ("ext2", 1024, "^filetype"),
    ("ext2", 2048, "^sparse_super,^resize_inode"),
    ("ext4", 4096, "bigalloc"),                       # read-only
]


@pytest.mark.parametrize("fstype,bs,features", FEATURE_VARIANTS,
                         ids=[v[2] for v in FEATURE_VARIANTS])
def test_feature_variants(tmp_path, fstype, bs, features):
    src = make_host_tree(tmp_path / "src")
    img = mke2fs(tmp_path / "img", fstype, bs, "24M", src, extra=("-O", features))
    vol = vopen(img)
    assert vol_tree(vol) == host_tree(src)
    if features == "bigalloc":
        assert vol.readonly and "bigalloc" in vol.readonly_reason
    else:
        assert not vol.readonly, vol.readonly_reason
        exercise_writes(vol)
        for i in range(6):                       # reach more groups
            d = vol.mkdir(ROOT_INO, b"top%d" % i, 0o755, 0, 0)
            vol.write(vol.create(d, b"f", 0o644, 0, 0), 0, b"%d" % i * 300_000)
    vol.close()
    fsck(img)


# ----------------------------------------------------------------- mkfs

@pytest.mark.parametrize("features,bs", [("ext2", 1024), ("ext2", 4096), ("ext4", 1024),
                                         ("ext4", 4096)])
def test_mkfs_and_populate(tmp_path, features, bs):
    src = make_host_tree(tmp_path / "src")
    img = tmp_path / "img"
    with open(img, "wb") as fh:
        fh.truncate(48 << 20)
    calls = []
    dev = FileDevice(str(img))
    mkfs(dev, features=features, block_size=bs, populate_from=str(src), label=b"umlpy",
         progress=lambda done, total: calls.append((done, total)))
    dev.close()
    fsck(img)
    assert calls and calls[-1][0] == calls[-1][1]
    assert "umlpy" in subprocess.run(["dumpe2fs", "-h", str(img)], capture_output=True,
                                     text=True).stdout
    vol = vopen(img)
    assert vol_tree(vol) == host_tree(src)
    assert vol.lookup(ROOT_INO, b"lost+found") == 11
    exercise_writes(vol)
    vol.close()
    fsck(img)


def test_mkfs_on_bytes_device_and_odd_sizes():
    for size in (1 << 20, (9 << 20) + 12345, 33 << 20):
        dev = BytesDevice(bytearray(size))
        mkfs(dev, features="ext4")
        vol = Ext2Volume.open(dev)
        f = vol.create(ROOT_INO, b"x", 0o644, 0, 0)
        vol.write(f, 0, b"hello")
        vol.close()
        vol = Ext2Volume.open(dev, readonly=True)
        assert vol.read(vol.lookup(ROOT_INO, b"x"), 0, 5) == b"hello"
    with pytest.raises(ValueError):
        mkfs(BytesDevice(bytearray(1 << 20)), features=["encrypt"])


# ----------------------------------------------------------- devices

def test_devices(tmp_path):
    p = tmp_path / "f"
    p.write_bytes(bytes(4096))
    dev = FileDevice(str(p))
    dev.write(100, b"abc")
    assert dev.read(99, 5) == b"\0abc\0" and dev.size == 4096
    with pytest.raises(OSError) as e:
        dev.read(4000, 200)
    assert e.value.errno == errno.EIO
    dev.flush()
    dev.close()
    ro = BytesDevice(b"xyz", readonly=True)
    with pytest.raises(OSError) as e:
        ro.write(0, b"a")
    assert e.value.errno == errno.EROFS


# ------------------------------------------------------- corrupt images

def walk_everything(vol: Ext2Volume, ino: int = ROOT_INO, depth: int = 0) -> None:
    """Touch everything reachable; the caller accepts only OSError."""
    assert depth < 50, "walked into a loop"
    for name, child, _ in vol.readdir(ino):
        child = vol.lookup(ino, name)
        a = vol.getattr(child)
        if st.S_ISDIR(a.mode):
            walk_everything(vol, child, depth + 1)
        elif st.S_ISREG(a.mode):
            vol.read(child, 0, 4 << 20)
            vol.read(child, max(a.size - 100, 0), 200)
            vol.read_extents(child)
        elif st.S_ISLNK(a.mode):
            vol.readlink(child)


def only_clean_errors(img: Path, write: bool = False) -> str:
    """Mount and walk img; return 'ok', 'mount' or 'eio', fail on anything else."""
    try:
        vol = vopen(img, readonly=not write)
    except Ext2Error:
        return "mount"
    try:
        walk_everything(vol)
        if write and not vol.readonly:
            d = vol.mkdir(ROOT_INO, b"fresh", 0o755, 0, 0)
            vol.write(vol.create(d, b"f", 0o644, 0, 0), 0, b"x" * 5000)
            for name, child, _ in list(vol.readdir(ROOT_INO)):
                a = vol.getattr(child)
                if st.S_ISREG(a.mode):
                    vol.truncate(child, a.size // 3)
                    vol.unlink(ROOT_INO, name)
        vol.close()
    except OSError as e:
        assert e.errno in (errno.EIO, errno.EUCLEAN, errno.ENOSPC), e
        return "eio"
    return "ok"


@pytest.fixture
def small_images(tmp_path):
    src = make_host_tree(tmp_path / "src")
    (src / "loopdir").mkdir()
    return {fstype: mke2fs(tmp_path / fstype, fstype, 1024, "8M", src)
            for fstype in ("ext2", "ext4")}


@pytest.mark.parametrize("fstype", ["ext2", "ext4"])
def test_malformed_superblocks(small_images, fstype):
    img = small_images[fstype]
    raw = img.read_bytes()
    img.write_bytes(raw[:len(raw) // 2])                       # truncated image
    with pytest.raises(Ext2Error, match="do not fit"):
        vopen(img)
    img.write_bytes(raw[:1500])
    with pytest.raises(Ext2Error):
        vopen(img)
    bad = bytearray(raw)
    bad[1024 + 0x38:1024 + 0x3A] = b"\x34\x12"
    img.write_bytes(bad)
    with pytest.raises(Ext2Error, match="bad superblock magic 0x1234"):
        vopen(img)
    img.write_bytes(raw)
    patch_superblock(img, s_log_block_size=40)
    with pytest.raises(Ext2Error):
        vopen(img)
    img.write_bytes(raw)
    patch_superblock(img, s_inodes_per_group=0)
    with pytest.raises(Ext2Error):
        vopen(img)


@pytest.mark.parametrize("fstype", ["ext2", "ext4"])
def test_corrupt_metadata_gives_eio(small_images, fstype):
    img = small_images[fstype]
    pristine = img.read_bytes()

    def corrupted(request):
        img.write_bytes(pristine)
        debugfs(img, request, write=True)
        return only_clean_errors(img) == "eio" or only_clean_errors(img, write=True) == "eio"

    if fstype == "ext2":
        assert corrupted("sif /blocks block[0] 99999999")          # pointer out of range
        assert corrupted("sif /blocks block[IND] 4000000")
    else:
        assert corrupted("sif /blocks block[0] 0x1234")            # extent magic
        assert corrupted("sif /blocks block[1] 0x00000005")        # eh_max 5 in the inode
        assert corrupted("sif /blocks block[1] 0x00060004")        # depth 6
        assert corrupted("sif /blocks block[5] 0")                # extent at disk block 0
    assert corrupted("ln /loopdir /loopdir/self")                  # entry -> its own dir
    assert corrupted("ln / /dir/sub/root-again")                   # a loop to the root
    assert corrupted("sif /dir size 1000")                         # dir size not blocks
    assert corrupted("sif /dir/sub block[0] 0")                    # hole in a directory


def damage_rounds(img: Path, fstype: str, rounds: int, seed) -> set:
    img = img
    pristine = img.read_bytes()
    vol = vopen(img, readonly=True)
    bs = vol.block_size
    meta = set()
    for gd in vol.groups:
        meta.update([gd.block_bitmap, gd.inode_bitmap])
        meta.update(range(gd.inode_table, gd.inode_table + 32))
    for ino in (ROOT_INO, resolve(vol, "dir"), resolve(vol, "dir/sub")):
        meta.update(p for _, p, n in vol.filemap(vol._iget(ino)).lookup(0, 1) if p)
    meta = sorted(meta)
    rnd = random.Random(seed)
    outcomes = set()
    for _ in range(rounds):
        bad = bytearray(pristine)
        for _ in range(rnd.randint(1, 12)):
            blk = rnd.choice(meta)
            off = blk * bs + rnd.randrange(bs)
            bad[off] = rnd.randrange(256)
        img.write_bytes(bad)
        outcomes.add(only_clean_errors(img, write=rnd.random() < 0.5))
    return outcomes


@pytest.mark.parametrize("fstype", ["ext2", "ext4"])
def test_random_metadata_damage_never_crashes(small_images, fstype):
    assert "eio" in damage_rounds(small_images[fstype], fstype, 60, fstype)


@pytest.mark.slow
@pytest.mark.parametrize("fstype", ["ext2", "ext4"])
def test_random_metadata_damage_many_rounds(small_images, fstype):
    assert "eio" in damage_rounds(small_images[fstype], fstype, 1500, fstype + "-slow")


# ------------------------------------------------- crash between syncs

class RecordingDevice(BytesDevice):
    """Keeps every write so a crash after any prefix of them can be replayed."""

    def __init__(self, data) -> None:
        super().__init__(data)
        self.log = []

    def write(self, offset, data) -> None:
        super().write(offset, data)
        self.log.append((offset, bytes(data)))


def crash_cuts_preen_clean(img: Path, template: bytes, first, second, cuts) -> list:
    """Run first() and sync, then second() and sync; for each cut, replay only
    that many writes of the second sync and return the cuts e2fsck -p refuses."""
    dev = RecordingDevice(template)
    vol = Ext2Volume.open(dev)
    first(vol)
    vol.sync()
    base = bytes(dev.data)
    dev.log.clear()
    second(vol)
    vol.sync()
    writes = list(dev.log)
    bad = []
    for k in cuts(len(writes)):
        state = bytearray(base)
        for off, data in writes[:k]:
            state[off:off + len(data)] = data
        img.write_bytes(state)
        r = subprocess.run(["e2fsck", "-fp", str(img)], capture_output=True, text=True)
        if r.returncode > 1:
            bad.append((k, r.stdout.strip().splitlines()[-2:]))
    return bad


@pytest.mark.parametrize("fstype", ["ext2", "ext4"])
def test_crash_between_syncs_is_preen_fixable(tmp_path, fstype):
    img = mke2fs(tmp_path / "img", fstype, 1024, "4M")
    template = img.read_bytes()
    r = ROOT_INO

    def first(vol):
        d = vol.mkdir(r, b"d", 0o755, 0, 0)
        vol.mkdir(d, b"sub", 0o755, 0, 0)
        for i in range(40):
            vol.write(vol.create(d, b"f%d" % i, 0o644, 0, 0), 0, b"%d" % i * (3000 * (i % 5 + 1)))
        vol.symlink(d, b"s", b"x" * 100, 0, 0)

    def second(vol):
        d = vol.lookup(r, b"d")
        for i in range(0, 40, 2):
            vol.unlink(d, b"f%d" % i)
        e = vol.mkdir(r, b"e", 0o755, 0, 0)
        for i in range(1, 40, 4):
            vol.rename(d, b"f%d" % i, e, b"g%d" % i)        # files change directory
        vol.create(d, b"f0", 0o644, 0, 0)                     # a removed name comes back
        vol.rename(r, b"d", r, b"d2")
        vol.rmdir(d, b"sub")
        for i in range(10):
            vol.write(vol.create(e, b"new%d" % i, 0o644, 0, 0), 0, bytes(9000))
        big = vol.create(r, b"big", 0o644, 0, 0)
        for i in range(0, 300, 2):
            vol.write(big, i * 1024, b"b" * 1024)
        vol.truncate(vol.lookup(e, b"g1"), 100)

    bad = crash_cuts_preen_clean(img, template, first, second,
                                 lambda n: range(0, n + 1, 3))
    assert not bad


@pytest.mark.slow
@pytest.mark.parametrize("fstype", ["ext2", "ext4"])
def test_crash_between_random_syncs_is_preen_fixable(tmp_path, fstype):
    img = mke2fs(tmp_path / "img", fstype, 1024, "8M")
    template = img.read_bytes()
    rnd = random.Random(fstype)

    def ops(vol):
        for _ in range(30):
            dirs = [ROOT_INO] + [i for _, i, t in vol.readdir(ROOT_INO) if t == FT_DIR]
            d = rnd.choice(dirs)
            name = b"%s%d" % (rnd.choice([b"a", b"b", b"c"]), rnd.randint(0, 3))
            entries = list(vol.readdir(d))
            pick = rnd.choice(entries) if entries else None
            try:
                kind = rnd.choice(["create", "mkdir", "unlink", "rmdir", "rename", "link",
                                   "write", "truncate", "symlink"])
                if kind == "create":
                    vol.write(vol.create(d, name, 0o644, 0, 0), 0, os.urandom(rnd.randint(1, 30000)))
                elif kind == "mkdir":
                    vol.mkdir(d, name, 0o755, 0, 0)
                elif kind == "symlink":
                    vol.symlink(d, name, b"t" * rnd.randint(1, 200), 0, 0)
                elif pick and kind == "unlink" and pick[2] != FT_DIR:
                    vol.unlink(d, pick[0])
                elif pick and kind == "rmdir" and pick[2] == FT_DIR:
                    vol.rmdir(d, pick[0])
                elif pick and kind == "rename":
                    vol.rename(d, pick[0], d, name)              # within one directory
                elif pick and kind == "link" and pick[2] != FT_DIR:
                    vol.link(rnd.choice(dirs), name, pick[1])
                elif pick and kind == "write" and pick[2] == FT_REG:
                    vol.write(pick[1], rnd.randint(0, 300_000), os.urandom(rnd.randint(1, 40_000)))
                elif pick and kind == "truncate" and pick[2] == FT_REG:
                    vol.truncate(pick[1], rnd.randint(0, 100_000))
            except OSError:
                pass

    for _ in range(25):
        bad = crash_cuts_preen_clean(img, template, ops, ops,
                                     lambda n: sorted(rnd.sample(range(n + 1), min(n + 1, 12))))
        assert not bad
