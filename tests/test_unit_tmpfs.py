"""tmpfs on its own: directories, memfd-backed files, links, renames, xattrs, limits."""
import errno
import gc
import os
import stat as st
import time

import pytest

from umlpy.fs.tmpfs import TMPFS_MAGIC, TmpFs
from umlpy.vfs.inode import RENAME_EXCHANGE, RENAME_NOREPLACE, DT_DIR, DT_REG, DT_LNK


def err(exc_info) -> int:
    return exc_info.value.errno


@pytest.fixture
def fs(tmp_path):
    f = TmpFs(scratch_dir=str(tmp_path))
    yield f
    f.close()


def names(d) -> list:
    return sorted(n for n, _, _ in d.readdir())


def fd_count() -> int:
    gc.collect()                        # earlier tests' inodes close their memfds
    return len(os.listdir("/proc/self/fd"))


# ---- files ----

def test_create_write_read_natively(fs):
    f = fs.root.create("a", 0o644, 1000, 100)
    w = f.open(os.O_WRONLY)
    try:
        assert os.write(w, b"hello") == 5
    finally:
        os.close(w)
    r = f.open(os.O_RDONLY)
    try:
        assert os.read(r, 100) == b"hello"
        assert os.get_inheritable(r) is False
        flags = os.get_blocking(r)
        assert flags is True
    finally:
        os.close(r)
    a = f.getattr()
    assert a.size == 5 and a.uid == 1000 and a.gid == 100 and a.nlink == 1
    assert st.S_ISREG(a.mode) and st.S_IMODE(a.mode) == 0o644
    assert a.dev == fs.dev and a.ino == f.ino


def test_opens_share_one_page_cache_and_flags_are_kept(fs):
    f = fs.root.create("a", 0o644, 0, 0)
    w = f.open(os.O_WRONLY | os.O_APPEND | os.O_NONBLOCK)
    r = f.open(os.O_RDONLY)
    try:
        fl = __import__("fcntl").fcntl(w, __import__("fcntl").F_GETFL)
        assert fl & os.O_APPEND and fl & os.O_NONBLOCK and fl & os.O_ACCMODE == os.O_WRONLY
        os.write(w, b"x" * 10)
        os.lseek(w, 0, os.SEEK_SET)
        os.write(w, b"y")               # O_APPEND: goes to the end
        assert os.read(r, 100) == b"x" * 10 + b"y"
        key = f.host_key()
        s = os.fstat(r)
        assert key == (s.st_dev, s.st_ino) == (os.fstat(w).st_dev, os.fstat(w).st_ino)
    finally:
        os.close(w)
        os.close(r)


def test_native_write_updates_size_mtime_ctime(fs):
    f = fs.root.create("a", 0o644, 0, 0)
    f.setattr(atime_ns=10**9, mtime_ns=2 * 10**9)
    a0 = f.getattr()
    assert a0.mtime_ns == 2 * 10**9 and a0.atime_ns == 10**9
    fd = f.open(os.O_RDWR)
    try:
        os.write(fd, b"abc")
    finally:
        os.close(fd)
    a1 = f.getattr()
    assert a1.size == 3 and a1.mtime_ns > a0.mtime_ns and a1.ctime_ns >= a0.ctime_ns
    # utimens wins over the native mtime until the next native write
    f.setattr(mtime_ns=5 * 10**9)
    a2 = f.getattr()
    assert a2.mtime_ns == 5 * 10**9 and a2.atime_ns == 10**9
    assert a2.ctime_ns >= a1.ctime_ns


def test_chmod_changes_ctime_not_mtime(fs):
    f = fs.root.create("a", 0o644, 0, 0)
    fd = f.open(os.O_WRONLY)
    os.write(fd, b"1")
    os.close(fd)
    a0 = f.getattr()
    time.sleep(0.002)
    f.setattr(mode=0o4755)
    a1 = f.getattr()
    assert st.S_IMODE(a1.mode) == 0o4755 and st.S_ISREG(a1.mode)
    assert a1.mtime_ns == a0.mtime_ns and a1.ctime_ns > a0.ctime_ns
    f.setattr(uid=5, gid=-1)
    assert (f.getattr().uid, f.getattr().gid) == (5, 0)


def test_truncate(fs):
    f = fs.root.create("a", 0o644, 0, 0)
    f.setattr(size=0)                   # O_TRUNC on an empty file: no memfd needed
    assert f.getattr().size == 0
    f.setattr(size=8192)
    assert f.getattr().size == 8192
    fd = f.open(os.O_RDONLY)
    assert os.read(fd, 10) == bytes(10)
    os.close(fd)
    f.setattr(size=1)
    assert f.getattr().size == 1
    with pytest.raises(OSError) as e:
        fs.root.setattr(size=0)
    assert err(e) == errno.EISDIR
    s = fs.root.symlink("l", "a", 0, 0)
    with pytest.raises(OSError) as e:
        s.setattr(size=0)
    assert err(e) == errno.EINVAL


def test_empty_files_hold_no_descriptor(fs):
    before = fd_count()
    for i in range(50):
        fs.root.create(f"f{i}", 0o644, 0, 0)
    assert fd_count() == before
    assert fs.root.lookup("f1").getattr().size == 0


def test_open_of_non_files(fs):
    d = fs.root.mkdir("d", 0o755, 0, 0)
    with pytest.raises(OSError) as e:
        d.open(os.O_RDONLY)
    assert err(e) == errno.EISDIR
    for mode in (st.S_IFCHR, st.S_IFBLK, st.S_IFIFO, st.S_IFSOCK):
        n = fs.root.mknod(f"n{mode}", mode | 0o600, os.makedev(1, 3), 0, 0)
        with pytest.raises(OSError) as e:
            n.open(os.O_RDONLY)
        assert err(e) == errno.ENXIO


def test_unlinked_open_file_keeps_working_and_memfd_is_freed(fs):
    f = fs.root.create("a", 0o644, 0, 0)
    fd = f.open(os.O_RDWR)
    os.write(fd, b"data")
    before = fs.statfs().f_ffree
    fs.root.unlink("a")
    assert fs.statfs().f_ffree == before + 1
    assert f.getattr().nlink == 0
    os.lseek(fd, 0, 0)
    assert os.read(fd, 10) == b"data"
    memfd = f._fd
    del f
    gc.collect()
    with pytest.raises(OSError):
        os.fstat(memfd)                 # our page-cache descriptor is closed...
    os.write(fd, b"more")              # ...and the guest's description lives on
    os.lseek(fd, 0, 0)
    assert os.read(fd, 10) == b"datamore"
    os.close(fd)


def test_tmpfile_can_be_linked_once(fs):
    t = fs.root.tmpfile(0o600, 0, 0)
    assert t.getattr().nlink == 0
    fd = t.open(os.O_RDWR)
    os.write(fd, b"t")
    os.close(fd)
    fs.root.link("named", t)
    assert fs.root.lookup("named") is t and t.getattr().nlink == 1
    fs.root.unlink("named")
    with pytest.raises(OSError) as e:
        fs.root.link("again", t)        # an ordinary unlinked file cannot come back
    assert err(e) == errno.ENOENT


# ---- directories ----

def test_mkdir_nlink_and_readdir(fs):
    r = fs.root
    assert r.getattr().nlink == 2 and r.ino == 1
    d = r.mkdir("d", 0o755, 0, 0)
    r.create("f", 0o644, 0, 0)
    r.symlink("l", "f", 0, 0)
    assert r.getattr().nlink == 3 and d.getattr().nlink == 2
    d.mkdir("e", 0o755, 0, 0)
    assert d.getattr().nlink == 3
    ents = {n: (i, t) for n, i, t in r.readdir()}
    assert ents == {"d": (d.ino, DT_DIR), "f": (r.lookup("f").ino, DT_REG),
                    "l": (r.lookup("l").ino, DT_LNK)}
    assert list(r.readdir()) == list(r.readdir())       # stable
    with pytest.raises(OSError) as e:
        r.mkdir("d", 0o755, 0, 0)
    assert err(e) == errno.EEXIST
    with pytest.raises(OSError) as e:
        r.lookup("nope")
    assert err(e) == errno.ENOENT
    with pytest.raises(OSError) as e:
        r.lookup("f").lookup("x")
    assert err(e) == errno.ENOTDIR


def test_parent_times_change_with_entries(fs):
    r = fs.root
    r.setattr(atime_ns=1, mtime_ns=1)
    r.create("f", 0o644, 0, 0)
    a = r.getattr()
    assert a.mtime_ns > 1 and a.ctime_ns == a.mtime_ns
    r.setattr(mtime_ns=1)
    r.unlink("f")
    assert r.getattr().mtime_ns > 1


def test_rmdir_and_unlink_rules(fs):
    r = fs.root
    d = r.mkdir("d", 0o755, 0, 0)
    d.create("x", 0o644, 0, 0)
    with pytest.raises(OSError) as e:
        r.rmdir("d")
    assert err(e) == errno.ENOTEMPTY
    with pytest.raises(OSError) as e:
        r.unlink("d")
    assert err(e) == errno.EISDIR
    with pytest.raises(OSError) as e:
        d.rmdir("x")
    assert err(e) == errno.ENOTDIR
    d.unlink("x")
    r.rmdir("d")
    assert r.getattr().nlink == 2 and d.getattr().nlink == 0
    with pytest.raises(OSError) as e:
        d.create("y", 0o644, 0, 0)      # a removed directory takes no new entries
    assert err(e) == errno.ENOENT


def test_bad_names(fs):
    for bad in ("", ".", "..", "a/b"):
        with pytest.raises(OSError) as e:
            fs.root.create(bad, 0o644, 0, 0)
        assert err(e) == errno.EINVAL
    with pytest.raises(OSError) as e:
        fs.root.create("x" * 256, 0o644, 0, 0)
    assert err(e) == errno.ENAMETOOLONG


# ---- links ----

def test_hard_links(fs):
    r = fs.root
    f = r.create("a", 0o644, 0, 0)
    d = r.mkdir("d", 0o755, 0, 0)
    d.link("b", f)
    assert f.getattr().nlink == 2 and d.lookup("b") is f
    with pytest.raises(OSError) as e:
        r.link("dd", d)
    assert err(e) == errno.EPERM
    with pytest.raises(OSError) as e:
        r.link("a", f)
    assert err(e) == errno.EEXIST
    other = TmpFs()
    with pytest.raises(OSError) as e:
        other.root.link("x", f)
    assert err(e) == errno.EXDEV
    r.unlink("a")
    assert f.getattr().nlink == 1


def test_symlink(fs):
    s = fs.root.symlink("l", "/some/where", 7, 8)
    a = s.getattr()
    assert st.S_ISLNK(a.mode) and st.S_IMODE(a.mode) == 0o777 and a.size == 11
    assert s.readlink() == "/some/where"
    with pytest.raises(OSError) as e:
        fs.root.readlink()
    assert err(e) == errno.EINVAL
    with pytest.raises(OSError) as e:
        fs.root.symlink("m", "x" * 5000, 0, 0)
    assert err(e) == errno.ENAMETOOLONG


def test_mknod_and_fifo_path(fs, tmp_path):
    r = fs.root
    n = r.mknod("null", st.S_IFCHR | 0o666, os.makedev(1, 3), 0, 0)
    a = n.getattr()
    assert st.S_ISCHR(a.mode) and a.rdev == os.makedev(1, 3)
    p = r.mknod("p", st.S_IFIFO | 0o644, 0, 0, 0)
    assert p.getattr().rdev == 0
    path = p.fifo_path()
    assert path.startswith(str(tmp_path)) and st.S_ISFIFO(os.stat(path).st_mode)
    assert p.fifo_path() == path
    rfd = os.open(path, os.O_RDONLY | os.O_NONBLOCK)
    wfd = os.open(path, os.O_WRONLY)
    os.write(wfd, b"z")
    assert os.read(rfd, 1) == b"z"
    os.close(rfd)
    os.close(wfd)
    r.unlink("p")
    del p
    gc.collect()
    assert not os.path.exists(path)
    with pytest.raises(OSError) as e:
        n.fifo_path()
    assert err(e) == errno.ENXIO
    reg = r.mknod("reg", st.S_IFREG | 0o600, 0, 0, 0)
    assert st.S_ISREG(reg.getattr().mode)


# ---- rename ----

@pytest.fixture
def tree(fs):
    r = fs.root
    d1 = r.mkdir("d1", 0o755, 0, 0)
    d2 = r.mkdir("d2", 0o755, 0, 0)
    d1.create("f", 0o644, 0, 0)
    d2.create("g", 0o644, 0, 0)
    d1.mkdir("sub", 0o755, 0, 0)
    return fs


def test_rename_file_across_directories(tree):
    r = tree.root
    d1, d2 = r.lookup("d1"), r.lookup("d2")
    f = d1.lookup("f")
    c0 = f.getattr().ctime_ns
    time.sleep(0.002)
    d1.rename("f", d2, "h")
    assert names(d1) == ["sub"] and names(d2) == ["g", "h"] and d2.lookup("h") is f
    assert f.getattr().ctime_ns > c0
    g = d2.lookup("g")
    d2.rename("h", d2, "g")             # replaces g
    assert names(d2) == ["g"] and d2.lookup("g") is f and g.getattr().nlink == 0


def test_rename_directory_moves_dotdot_link(tree):
    r = tree.root
    d1, d2 = r.lookup("d1"), r.lookup("d2")
    assert d1.getattr().nlink == 3 and d2.getattr().nlink == 2
    d1.rename("sub", d2, "sub2")
    assert d1.getattr().nlink == 2 and d2.getattr().nlink == 3
    d2.mkdir("empty", 0o755, 0, 0)
    d2.rename("sub2", d2, "empty")      # over an empty directory
    assert names(d2) == ["empty", "g"] and d2.getattr().nlink == 3


def test_rename_type_rules(tree):
    r = tree.root
    d1, d2 = r.lookup("d1"), r.lookup("d2")
    cases = [
        (d1, "sub", d2, "g", 0, errno.ENOTDIR),     # dir over file
        (d2, "g", d1, "sub", 0, errno.EISDIR),      # file over dir
        (r, "d2", r, "d1", 0, errno.ENOTEMPTY),     # dir over non-empty dir
        (d1, "f", d2, "g", RENAME_NOREPLACE, errno.EEXIST),
        (d1, "nope", d2, "x", 0, errno.ENOENT),
        (d1, "f", d2, "nope", RENAME_EXCHANGE, errno.ENOENT),
        (d1, "f", d2, "x", RENAME_EXCHANGE | RENAME_NOREPLACE, errno.EINVAL),
    ]
    for src, n, dst, nn, flags, code in cases:
        with pytest.raises(OSError) as e:
            src.rename(n, dst, nn, flags)
        assert err(e) == code, (n, nn, flags)
    d1.rename("f", d2, "new", RENAME_NOREPLACE)
    assert d2.lookup("new")


def test_rename_same_inode_is_a_no_op(tree):
    r = tree.root
    d1 = r.lookup("d1")
    f = d1.lookup("f")
    d1.link("f2", f)
    d1.rename("f", d1, "f2")
    assert sorted(names(d1)) == ["f", "f2", "sub"] and f.getattr().nlink == 2
    d1.rename("f", d1, "f")
    assert "f" in names(d1)


def test_rename_exchange(tree):
    r = tree.root
    d1, d2 = r.lookup("d1"), r.lookup("d2")
    sub, g = d1.lookup("sub"), d2.lookup("g")
    d1.rename("sub", d2, "g", RENAME_EXCHANGE)
    assert d1.lookup("sub") is g and d2.lookup("g") is sub
    assert d1.getattr().nlink == 2 and d2.getattr().nlink == 3


def test_readonly(fs):
    f = fs.root.create("f", 0o644, 0, 0)
    fs.remount(readonly=True)
    for call in (lambda: fs.root.create("g", 0o644, 0, 0),
                 lambda: fs.root.mkdir("g", 0o755, 0, 0),
                 lambda: fs.root.unlink("f"),
                 lambda: fs.root.rename("f", fs.root, "g"),
                 lambda: f.setattr(mode=0o600),
                 lambda: f.setxattr("user.a", b"1", 0),
                 lambda: f.open(os.O_WRONLY),
                 lambda: f.open(os.O_RDWR)):
        with pytest.raises(OSError) as e:
            call()
        assert err(e) == errno.EROFS
    os.close(f.open(os.O_RDONLY))
    fs.remount(readonly=False)
    fs.root.create("g", 0o644, 0, 0)


# ---- xattrs ----

def test_xattrs(fs):
    f = fs.root.create("f", 0o644, 0, 0)
    f.setxattr("user.a", b"1", 0)
    f.setxattr("trusted.b", b"", 0)
    f.setxattr("security.selinux", b"ctx", 0)
    assert sorted(f.listxattr()) == ["security.selinux", "trusted.b", "user.a"]
    assert f.getxattr("user.a") == b"1" and f.getxattr("trusted.b") == b""
    checks = [
        (lambda: f.setxattr("user.a", b"2", 1), errno.EEXIST),
        (lambda: f.setxattr("user.z", b"2", 2), errno.ENODATA),
        (lambda: f.getxattr("user.z"), errno.ENODATA),
        (lambda: f.removexattr("user.z"), errno.ENODATA),
        (lambda: f.setxattr("user.big", bytes(65537), 0), errno.E2BIG),
        (lambda: f.setxattr("system.posix_acl_access", b"", 0), errno.EOPNOTSUPP),
        (lambda: f.setxattr("foo", b"", 0), errno.EOPNOTSUPP),
        (lambda: f.setxattr("user." + "x" * 300, b"", 0), errno.ERANGE),
        (lambda: fs.root.symlink("l", "f", 0, 0).setxattr("user.x", b"", 0), errno.EPERM),
    ]
    for call, code in checks:
        with pytest.raises(OSError) as e:
            call()
        assert err(e) == code
    f.setxattr("user.a", b"2", 2)
    f.setxattr("user.max", bytes(65536), 0)
    assert f.getxattr("user.a") == b"2"
    f.removexattr("user.a")
    assert "user.a" not in f.listxattr()
    fs.root.lookup("l").setxattr("trusted.overlay.x", b"y", 0)


# ---- limits and statfs ----

def test_nr_inodes(tmp_path):
    fs = TmpFs(nr_inodes=4)             # the root is one
    fs.root.create("a", 0o644, 0, 0)
    fs.root.mkdir("b", 0o755, 0, 0)
    fs.root.symlink("c", "a", 0, 0)
    for call in (lambda: fs.root.create("d", 0o644, 0, 0),
                 lambda: fs.root.mkdir("d", 0o755, 0, 0),
                 lambda: fs.root.mknod("d", st.S_IFIFO | 0o644, 0, 0, 0),
                 lambda: fs.root.symlink("d", "a", 0, 0)):
        with pytest.raises(OSError) as e:
            call()
        assert err(e) == errno.ENOSPC
    assert fs.statfs().f_ffree == 0 and fs.statfs().f_files == 4
    fs.root.unlink("c")
    fs.root.create("d", 0o644, 0, 0)
    fs.root.rmdir("b")
    fs.root.mkdir("b", 0o755, 0, 0)


def test_size_limit_and_statfs(tmp_path):
    fs = TmpFs(size=64 * 1024)
    sf = fs.statfs()
    assert sf.f_type == TMPFS_MAGIC == 0x01021994 and sf.f_bsize == 4096
    assert sf.f_blocks == 16 and sf.f_bfree == 16
    f = fs.root.create("a", 0o644, 0, 0)
    fd = f.open(os.O_WRONLY)
    os.write(fd, b"x" * 40960)
    os.close(fd)
    assert fs.statfs().f_bfree == 6
    g = fs.root.create("b", 0o644, 0, 0)
    with pytest.raises(OSError) as e:
        g.setattr(size=32 * 1024)
    assert err(e) == errno.ENOSPC
    g.setattr(size=16 * 1024)
    f.setattr(size=64 * 1024 - 16 * 1024)    # f may grow into what is left
    fs.root.unlink("a")
    del f, fd
    gc.collect()
    assert fs.statfs().f_bfree == 16         # b is sparse


def test_mount_options(tmp_path):
    assert TmpFs().mount_options() == "inode64"
    fs = TmpFs.from_options("size=64k,mode=755,uid=1000,gid=1000,nr_inodes=100")
    assert fs.mount_options() == "size=64k,nr_inodes=100,mode=755,uid=1000,gid=1000,inode64"
    a = fs.root.getattr()
    assert st.S_IMODE(a.mode) == 0o755 and (a.uid, a.gid) == (1000, 1000)
    assert TmpFs.from_options("size=1m").statfs().f_blocks == 256
    fs.remount("size=128k")
    assert fs.statfs().f_blocks == 32
    with pytest.raises(OSError) as e:
        TmpFs.from_options("bogus=1")
    assert err(e) == errno.EINVAL


def test_options_parsing_and_unlimited():
    from umlpy.fs import tmpfs_options as to
    assert to.memparse("64k") == 65536 and to.memparse("2M") == 2 << 20
    assert to.parse("size=1g,nr_inodes=1k,mode=1777,uid=5,gid=6,inode64,huge=never") == \
        {"size": 1 << 30, "nr_inodes": 1024, "mode": 0o1777, "uid": 5, "gid": 6}
    assert to.parse("nr_blocks=10") == {"size": 40960}
    assert 0 < to.parse("size=10%")["size"] < to.ram_bytes()
    for bad in ("size=abc", "mode=9", "uid=-1", "nosuchopt"):
        with pytest.raises(OSError) as e:
            to.parse(bad)
        assert err(e) == errno.EINVAL, bad
    fs = TmpFs.from_options("size=0,nr_inodes=0")       # no limits, as Linux
    sf = fs.statfs()
    assert sf.f_blocks == 0 and sf.f_files == 0
    for i in range(20):
        fs.root.create(f"f{i}", 0o644, 0, 0).setattr(size=1 << 40)
    assert fs.mount_options().startswith("size=0k,nr_inodes=0")
    fs2 = TmpFs(nr_inodes=3)
    fs2.root.create("a", 0o644, 0, 0)
    with pytest.raises(OSError) as e:
        fs2.remount("nr_inodes=1")
    assert err(e) == errno.EINVAL
