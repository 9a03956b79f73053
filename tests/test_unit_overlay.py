"""overlayfs over the Inode API, with tmpfs and hostfs layers in every role."""
import errno
import os
import stat as st

import pytest

from umlpy.fs import overlay_copyup as cu
from umlpy.fs.hostfs import HostFs
from umlpy.fs.overlay import OVERLAYFS_SUPER_MAGIC, OverlayFs, tree_names
from umlpy.fs.tmpfs import TmpFs, TmpInode
from umlpy.vfs.inode import RENAME_EXCHANGE, RENAME_NOREPLACE, Inode

T0 = 1_600_000_000 * 10**9          # a fixed past time for lower objects


def err(e) -> int:
    return e.value.errno


def at(d: Inode, path: str) -> Inode:
    for comp in [c for c in path.split("/") if c]:
        d = d.lookup(comp)
    return d


def write(inode: Inode, data: bytes, flags: int = os.O_WRONLY) -> None:
    if flags & os.O_TRUNC:              # as the VFS applies it
        inode.setattr(size=0)
        flags &= ~os.O_TRUNC
    fd = inode.open(flags)
    try:
        os.write(fd, data)
    finally:
        os.close(fd)


def read(inode: Inode) -> bytes:
    fd = inode.open(os.O_RDONLY)
    try:
        out = b""
        while True:
            chunk = os.read(fd, 1 << 20)
            if not chunk:
                return out
            out += chunk
    finally:
        os.close(fd)


def mkfile(d: Inode, name: str, data: bytes, mode: int = 0o644, uid: int = 0,
           gid: int = 0) -> Inode:
    f = d.create(name, mode, uid, gid)
    if data:
        write(f, data)
    f.setattr(atime_ns=T0, mtime_ns=T0)
    return f


def mkfifo(d: Inode, name: str) -> Inode:
    try:
        return d.mknod(name, st.S_IFIFO | 0o644, 0, 0, 0)
    except PermissionError:
        # hostfs of this writing stores no user.* xattr on a FIFO (the host refuses)
        # (it made the FIFO, then failed to record its owner)
        if not hasattr(d, "rel"):
            raise
        return d.lookup(name)


def build_lower(root: Inode) -> None:
    """The same tree on any writable file system, through the Inode API."""
    etc = root.mkdir("etc", 0o755, 0, 0)
    mkfile(etc, "passwd", b"root:x:0:0::/root:/bin/sh\n")
    hosts = mkfile(etc, "hosts", b"127.0.0.1 localhost\n")
    hosts.setxattr("user.tag", b"lower", 0)
    mkfile(etc, "shadow", b"root:*:1::::::\n", 0o640, 0, 42)
    bin_ = root.mkdir("bin", 0o755, 0, 0)
    mkfile(bin_, "sh", b"\x7fELF" + bytes(100), 0o755)
    mkfile(root.mkdir("usr", 0o755, 0, 0).mkdir("lib", 0o755, 0, 0), "libx.so", b"lib")
    d = root.mkdir("dir", 0o750, 1000, 1000)
    sub = d.mkdir("sub", 0o755, 0, 0)
    mkfile(sub, "file", b"deep")
    mkfile(d, "other", b"other")
    root.mkdir("empty", 0o755, 0, 0)
    root.symlink("lnk", "etc/passwd", 0, 0)
    h1 = mkfile(root, "h1", b"linked")
    root.link("h2", h1)
    mkfifo(root, "fifo")
    root.mknod("null", st.S_IFCHR | 0o666, os.makedev(1, 3), 0, 0)
    big = root.create("big", 0o644, 0, 0)
    big.setattr(size=1 << 20)
    fd = big.open(os.O_WRONLY)
    os.pwrite(fd, b"head", 0)
    os.pwrite(fd, b"mid", 512 * 1024)
    os.close(fd)
    mkfile(root, "suid", b"x", 0o4755)
    mkfile(root, "owned", b"mine", 0o600, 1000, 1000)
    for path in ("etc", "bin", "usr", "usr/lib", "dir", "dir/sub", "empty", "big"):
        at(root, path).setattr(atime_ns=T0, mtime_ns=T0)


def snapshot(d: Inode, prefix: str = "") -> dict:
    """Everything observable about a tree but atimes (reads may move those)."""
    out = {}
    for name, _ino, _t in sorted(d.readdir()):
        child = d.lookup(name)
        a = child.getattr()
        rec = (a.mode, a.uid, a.gid, a.size, a.nlink, a.rdev, a.mtime_ns, a.ctime_ns,
               a.ino, sorted((n, child.getxattr(n)) for n in child.listxattr()))
        path = prefix + "/" + name
        if st.S_ISREG(a.mode):
            rec += (read(child),)
        elif st.S_ISLNK(a.mode):
            rec += (child.readlink(),)
        out[path] = rec
        if st.S_ISDIR(a.mode):
            out.update(snapshot(child, path))
    return out


def host_snapshot(top: str) -> dict:
    out = {}
    for dirpath, dirs, files in os.walk(top):
        for name in dirs + files:
            p = os.path.join(dirpath, name)
            s = os.lstat(p)
            xs = sorted((n, os.getxattr(p, n, follow_symlinks=False))
                        for n in os.listxattr(p, follow_symlinks=False))
            rec = (s.st_mode, s.st_uid, s.st_gid, s.st_size, s.st_nlink, s.st_mtime_ns,
                   s.st_ctime_ns, s.st_ino, xs)
            if st.S_ISREG(s.st_mode):
                with open(p, "rb") as f:
                    rec += (f.read(),)
            elif st.S_ISLNK(s.st_mode):
                rec += (os.readlink(p),)
            out[p] = rec
    return out


class Layers:
    def __init__(self, kind: str, tmp_path) -> None:
        self.kind = kind
        lower_kind, upper_kind = kind.split("/")
        self.lower_dir = None
        if lower_kind == "tmp":
            self.lower = TmpFs(scratch_dir=str(tmp_path))
            build_lower(self.lower.root)
            self.lower.remount(readonly=True)       # any write would fail loudly
        else:
            self.lower_dir = str(tmp_path / "lower")
            os.mkdir(self.lower_dir)
            w = HostFs(self.lower_dir)
            build_lower(w.root)
            w.close()
            self.lower = HostFs(self.lower_dir, readonly=True)
        if upper_kind == "tmp":
            self.upper = TmpFs(scratch_dir=str(tmp_path))
        else:
            os.mkdir(tmp_path / "upper")
            self.upper = HostFs(str(tmp_path / "upper"))
        self.before = snapshot(self.lower.root)
        self.host_before = host_snapshot(self.lower_dir) if self.lower_dir else None
        self.ovl = OverlayFs(self.lower, self.upper)

    def remount(self) -> OverlayFs:
        self.ovl = OverlayFs(self.lower, self.upper)
        return self.ovl

    def check_lower_untouched(self) -> None:
        assert snapshot(self.lower.root) == self.before
        if self.lower_dir:
            assert host_snapshot(self.lower_dir) == self.host_before


KINDS = ["tmp/tmp", "host/tmp", "host/host", "tmp/host"]


@pytest.fixture(params=KINDS)
def layers(request, tmp_path):
    lay = Layers(request.param, tmp_path)
    yield lay
    lay.check_lower_untouched()


def upper_at(lay: Layers, path: str):
    try:
        return at(lay.upper.root, path)
    except FileNotFoundError:
        return None


# ---- reading ----

def test_merged_view_reads_the_lower(layers):
    o = layers.ovl.root
    assert tree_names(o) == sorted(["etc", "bin", "usr", "dir", "empty", "lnk", "h1", "h2",
                                    "fifo", "null", "big", "suid", "owned"])
    assert read(at(o, "etc/passwd")).startswith(b"root:x")
    assert at(o, "lnk").readlink() == "etc/passwd"
    a = at(o, "dir").getattr()
    assert (st.S_IMODE(a.mode), a.uid, a.gid, a.mtime_ns) == (0o750, 1000, 1000, T0)
    assert a.dev == layers.ovl.dev
    lower_ino = at(layers.lower.root, "etc/passwd").ino
    assert at(o, "etc/passwd").getattr().ino == lower_ino * 2
    n = at(o, "null").getattr()
    assert st.S_ISCHR(n.mode) and n.rdev == os.makedev(1, 3)
    assert at(o, "etc").getxattr if True else None
    assert at(o, "etc/hosts").getxattr("user.tag") == b"lower"
    # d_ino agrees with st_ino
    for name, ino, _t in o.readdir():
        assert o.lookup(name).getattr().ino == ino, name
    with pytest.raises(OSError) as e:
        o.lookup("nope")
    assert err(e) == errno.ENOENT
    with pytest.raises(OSError) as e:
        at(o, "etc/passwd").lookup("x")
    assert err(e) == errno.ENOTDIR
    assert list(layers.upper.root.readdir()) == []      # reading copies nothing up


def test_lower_files_open_natively(layers):
    f = at(layers.ovl.root, "etc/passwd")
    low = at(layers.lower.root, "etc/passwd")
    assert f.host_key() == low.host_key()
    fd = f.open(os.O_RDONLY)
    s = os.fstat(fd)
    os.close(fd)
    assert (s.st_dev, s.st_ino) == low.host_key()


# ---- copy-up ----

def test_write_copies_up_with_parents(layers):
    o = layers.ovl.root
    f = at(o, "dir/sub/file")
    ino = f.getattr().ino
    dir_ino = at(o, "dir").getattr().ino
    write(f, b"DEEP", os.O_WRONLY)
    assert read(f) == b"DEEP"
    assert f.getattr().ino == ino and at(o, "dir").getattr().ino == dir_ino
    u = upper_at(layers, "dir/sub/file")
    assert u is not None and read(u) == b"DEEP"
    ud = upper_at(layers, "dir").getattr()
    assert (st.S_IMODE(ud.mode), ud.uid, ud.gid, ud.mtime_ns) == (0o750, 1000, 1000, T0)
    assert upper_at(layers, "dir/sub").getattr().mtime_ns == T0
    assert upper_at(layers, "dir/other") is None            # only the chain
    assert tree_names(at(o, "dir")) == ["other", "sub"]      # still merged
    assert f.host_key() == u.host_key()


def test_copy_up_keeps_metadata(layers):
    o = layers.ovl.root
    for path in ("etc/shadow", "suid", "owned", "etc/hosts"):
        before = at(o, path).getattr()
        at(o, path).setattr(atime_ns=T0 + 5, mtime_ns=before.mtime_ns)   # copies up
        a = upper_at(layers, path).getattr()
        assert (a.mode, a.uid, a.gid, a.size, a.mtime_ns) == \
            (before.mode, before.uid, before.gid, before.size, before.mtime_ns), path
    assert upper_at(layers, "etc/hosts").getxattr("user.tag") == b"lower"
    assert read(at(o, "owned")) == b"mine"


def test_copy_up_of_sparse_file_and_truncate(layers):
    o = layers.ovl.root
    big = at(o, "big")
    write(big, b"H", os.O_WRONLY)
    data = read(big)
    assert len(data) == 1 << 20 and data[:4] == b"Head" and data[512 * 1024:][:3] == b"mid"
    if layers.kind.endswith("tmp"):
        assert upper_at(layers, "big").getattr().blocks < 256      # holes stayed holes
    sh = at(o, "bin/sh")
    sh.setattr(size=0)                  # O_TRUNC: no data copied, then truncated
    assert sh.getattr().size == 0 and read(sh) == b""
    assert st.S_IMODE(sh.getattr().mode) == 0o755


def test_symlink_and_node_copy_up(layers):
    o = layers.ovl.root
    at(o, "null").setattr(uid=5)
    n = upper_at(layers, "null").getattr()
    assert st.S_ISCHR(n.mode) and n.rdev == os.makedev(1, 3) and n.uid == 5
    at(o, "fifo").setattr(mode=0o600)
    assert st.S_ISFIFO(upper_at(layers, "fifo").mode)
    at(o, "lnk").setattr(uid=7)
    u = upper_at(layers, "lnk")
    assert u.readlink() == "etc/passwd" and at(o, "lnk").getattr().uid == 7


def test_xattr_changes_copy_up(layers):
    o = layers.ovl.root
    f = at(o, "etc/passwd")
    f.setxattr("user.new", b"1", 0)
    assert sorted(f.listxattr()) == ["user.new"]
    with pytest.raises(OSError) as e:
        at(o, "bin/sh").removexattr("user.none")
    assert err(e) == errno.ENODATA
    assert upper_at(layers, "bin") is None
    with pytest.raises(OSError) as e:
        f.setxattr("trusted.overlay.opaque", b"y", 0)
    assert err(e) == errno.EPERM


# ---- whiteouts and opaque directories ----

def test_unlink_makes_a_whiteout(layers):
    o = layers.ovl.root
    at(o, "etc").unlink("passwd")
    with pytest.raises(OSError) as e:
        at(o, "etc/passwd")
    assert err(e) == errno.ENOENT
    assert "passwd" not in tree_names(at(o, "etc"))
    w = upper_at(layers, "etc/passwd")
    assert st.S_ISCHR(w.mode) and w.getattr().rdev == 0         # Linux's whiteout
    f = at(o, "etc").create("passwd", 0o600, 0, 0)               # over the whiteout
    assert read(f) == b"" and tree_names(at(o, "etc")).count("passwd") == 1
    at(o, "etc").unlink("passwd")
    assert "passwd" not in tree_names(at(o, "etc"))
    # an upper-only file goes without a trace
    at(o, "etc").create("new", 0o644, 0, 0)
    at(o, "etc").unlink("new")
    assert upper_at(layers, "etc/new") is None
    with pytest.raises(OSError) as e:
        o.unlink("etc")
    assert err(e) == errno.EISDIR


def test_rm_r_and_recreate_is_opaque(layers):
    o = layers.ovl.root
    with pytest.raises(OSError) as e:
        o.rmdir("dir")
    assert err(e) == errno.ENOTEMPTY
    d = at(o, "dir")
    ino = d.getattr().ino
    sub = at(o, "dir/sub")
    sub.unlink("file")
    assert at(o, "dir").getattr().ino == ino
    d.rmdir("sub")
    d.unlink("other")
    assert tree_names(d) == []
    o.rmdir("dir")
    assert "dir" not in tree_names(o)
    with pytest.raises(OSError) as e:
        d.create("x", 0o644, 0, 0)
    assert err(e) == errno.ENOENT
    nd = o.mkdir("dir", 0o700, 0, 0)
    assert tree_names(nd) == [] and st.S_IMODE(nd.getattr().mode) == 0o700
    with pytest.raises(OSError) as e:
        nd.lookup("other")
    assert err(e) == errno.ENOENT
    assert cu.is_opaque(upper_at(layers, "dir"))
    # lower-only empty directory: just a whiteout
    o.rmdir("empty")
    assert st.S_ISCHR(upper_at(layers, "empty").mode)
    with pytest.raises(OSError) as e:
        o.rmdir("h1")
    assert err(e) == errno.ENOTDIR


def test_state_survives_a_remount(layers):
    o = layers.ovl.root
    at(o, "etc").unlink("passwd")
    write(at(o, "etc/hosts"), b"changed", os.O_WRONLY | os.O_TRUNC)
    for name in ("file",):
        at(o, "dir/sub").unlink(name)
    at(o, "dir").rmdir("sub")
    at(o, "dir").mkdir("sub", 0o755, 0, 0)
    o2 = layers.remount().root
    assert "passwd" not in tree_names(at(o2, "etc"))
    assert read(at(o2, "etc/hosts")) == b"changed"
    assert tree_names(at(o2, "dir/sub")) == []
    assert tree_names(at(o2, "dir")) == ["other", "sub"]


def test_opaque_marker_fallback(layers, monkeypatch):
    real = TmpInode.setxattr

    def no_trusted(self, name, value, flags):
        if name.startswith("trusted."):
            raise OSError(errno.EPERM, "no trusted xattrs here")
        return real(self, name, value, flags)
    monkeypatch.setattr(TmpInode, "setxattr", no_trusted)
    if layers.kind.endswith("host"):
        from umlpy.fs.hostfs import HostInode
        hreal = HostInode.setxattr

        def host_no_trusted(self, name, value, flags):
            if name.startswith("trusted."):
                raise OSError(errno.EOPNOTSUPP, "no")
            return hreal(self, name, value, flags)
        monkeypatch.setattr(HostInode, "setxattr", host_no_trusted)
    o = layers.ovl.root
    at(o, "dir/sub").unlink("file")
    at(o, "dir").rmdir("sub")
    at(o, "dir").mkdir("sub", 0o755, 0, 0)
    assert upper_at(layers, "dir/sub/" + cu.OPAQUE_MARKER) is not None
    assert tree_names(at(o, "dir/sub")) == []
    assert tree_names(at(layers.remount().root, "dir/sub")) == []
    with pytest.raises(OSError) as e:
        at(o, "dir/sub").create(cu.OPAQUE_MARKER, 0o644, 0, 0)
    assert err(e) == errno.EINVAL
    at(o, "dir").rmdir("sub")           # the marker goes with it
    assert "sub" not in tree_names(at(o, "dir"))


# ---- rename ----

def test_rename_files(layers):
    o = layers.ovl.root
    etc = at(o, "etc")
    ino = at(o, "etc/passwd").getattr().ino
    etc.rename("passwd", o, "passwd2")                  # lower file: copy-up + whiteout
    assert read(at(o, "passwd2")).startswith(b"root:x")
    assert at(o, "passwd2").getattr().ino == ino
    assert "passwd" not in tree_names(etc)
    o.rename("passwd2", etc, "hosts")                   # over a lower-only file
    assert read(at(o, "etc/hosts")).startswith(b"root:x")
    assert "passwd2" not in tree_names(o)
    new = o.create("n", 0o644, 0, 0)
    write(new, b"n")
    o.rename("n", etc, "passwd")                        # over a whiteout
    assert read(at(o, "etc/passwd")) == b"n"
    with pytest.raises(OSError) as e:
        o.rename("h1", etc, "passwd", RENAME_NOREPLACE)
    assert err(e) == errno.EEXIST
    o.rename("h1", o, "h2")                             # two names of one file
    assert "h1" in tree_names(o)
    o.rename("h1", etc, "shadow", RENAME_EXCHANGE)
    assert read(at(o, "etc/shadow")) == b"linked"
    assert read(at(o, "h1")).startswith(b"root:*")
    with pytest.raises(OSError) as e:
        o.rename("nope", o, "x")
    assert err(e) == errno.ENOENT


def test_rename_directories(layers):
    o = layers.ovl.root
    with pytest.raises(OSError) as e:
        o.rename("dir", o, "dir2")                      # lower directory: mv copies
    assert err(e) == errno.EXDEV
    nd = o.mkdir("newdir", 0o755, 0, 0)
    write(nd.create("f", 0o644, 0, 0), b"in newdir")
    o.rename("newdir", at(o, "usr"), "moved")
    assert read(at(o, "usr/moved/f")) == b"in newdir"
    assert read(nd.lookup("f")) == b"in newdir"         # the old object still works
    write(nd.lookup("f"), b"again", os.O_WRONLY | os.O_TRUNC)
    assert read(at(o, "usr/moved/f")) == b"again"
    cases = [("usr", "moved", o, "h1", errno.ENOTDIR), ("", "h1", at(o, "usr"), "moved",
             errno.EISDIR), ("usr", "moved", o, "dir", errno.ENOTEMPTY)]
    for src, name, dst, new, code in cases:
        with pytest.raises(OSError) as e:
            at(o, src).rename(name, dst, new)
        assert err(e) == code
    # onto a lower directory that is empty: it must stay hidden afterwards
    at(o, "usr").rename("moved", o, "empty")
    assert tree_names(at(o, "empty")) == ["f"]
    at(o, "dir/sub").unlink("file")
    o2 = o.mkdir("x", 0o755, 0, 0)
    o.rename("x", at(o, "dir"), "sub")                  # over an emptied merged dir
    assert tree_names(at(o, "dir/sub")) == []
    assert tree_names(at(layers.remount().root, "dir/sub")) == []
    assert o2 is not None


# ---- hard links ----

def test_hard_link_names_stay_one_file_across_remounts(layers):
    o = layers.ovl.root
    ino = at(o, "h1").getattr().ino
    write(at(o, "h1"), b"ONE", os.O_WRONLY | os.O_TRUNC)
    o = layers.remount().root
    assert read(at(o, "h2")) == b"ONE"                  # still lower-only, read via index
    assert at(o, "h1").getattr().ino == at(o, "h2").getattr().ino == ino
    write(at(o, "h2"), b"TWO", os.O_WRONLY | os.O_TRUNC)  # copy-up links to the index
    assert read(at(o, "h1")) == b"TWO"
    assert upper_at(layers, "h1").getattr().ino == upper_at(layers, "h2").getattr().ino


def test_hard_links(layers):
    o = layers.ovl.root
    h1, h2 = at(o, "h1"), at(o, "h2")
    assert h1.getattr().ino == h2.getattr().ino
    write(h1, b"LINKED", os.O_WRONLY)
    assert read(h2) == b"LINKED"                        # the other name reads the copy
    h2.setattr(mode=0o600)                              # its copy-up links, not copies
    assert read(at(o, "h2")) == b"LINKED"
    u1, u2 = upper_at(layers, "h1"), upper_at(layers, "h2")
    assert u1.getattr().ino == u2.getattr().ino and u1.getattr().nlink == 3   # + the index
    assert at(o, "h1").getattr().nlink == 2
    assert st.S_IMODE(at(o, "h1").getattr().mode) == 0o600
    assert cu.INDEX_DIR not in tree_names(o)
    ino = at(o, "h1").getattr().ino
    o.unlink("h1")                                      # the index keeps the copy for h2
    o2 = layers.remount().root
    assert read(at(o2, "h2")) == b"LINKED" and at(o2, "h2").getattr().ino == ino
    o = o2
    o.link("h3", at(o, "etc/passwd"))                   # link of a lower file
    assert at(o, "h3").getattr().ino == at(o, "etc/passwd").getattr().ino
    assert at(o, "h3").getattr().nlink == 2
    with pytest.raises(OSError) as e:
        o.link("d", at(o, "dir"))
    assert err(e) == errno.EPERM
    with pytest.raises(OSError) as e:
        o.link("h2", at(o, "etc/passwd"))
    assert err(e) == errno.EEXIST


# ---- the rest ----

def test_create_kinds_and_exists(layers):
    o = layers.ovl.root
    with pytest.raises(OSError) as e:
        o.create("h1", 0o644, 0, 0)
    assert err(e) == errno.EEXIST
    with pytest.raises(OSError) as e:
        at(o, "dir").mkdir("sub", 0o755, 0, 0)
    assert err(e) == errno.EEXIST
    s = at(o, "dir/sub").symlink("s", "../other", 3, 4)
    assert s.readlink() == "../other" and s.getattr().uid == 3
    d = at(o, "usr/lib").mkdir("new", 0o755, 0, 0)
    assert not cu.is_opaque(upper_at(layers, "usr/lib/new"))
    assert tree_names(at(o, "usr/lib")) == ["libx.so", "new"] and tree_names(d) == []


def test_mknod_fifo(layers):
    o = layers.ovl.root
    p = o.mknod("p", st.S_IFIFO | 0o644, 0, 0, 0)
    assert st.S_ISFIFO(p.mode) and os.path.exists(p.fifo_path())


def test_read_only_overlay(layers):
    ro = OverlayFs(layers.lower, None).root
    assert read(at(ro, "etc/passwd")).startswith(b"root")
    for call in (lambda: ro.create("x", 0o644, 0, 0), lambda: ro.unlink("h1"),
                 lambda: at(ro, "h1").open(os.O_RDWR), lambda: at(ro, "h1").setattr(uid=1),
                 lambda: ro.rename("h1", ro, "h9")):
        with pytest.raises(OSError) as e:
            call()
        assert err(e) == errno.EROFS
    layers.ovl.readonly = True
    with pytest.raises(OSError) as e:
        layers.ovl.root.mkdir("x", 0o755, 0, 0)
    assert err(e) == errno.EROFS


def test_statfs_and_options(layers):
    s = layers.ovl.statfs()
    assert s.f_type == OVERLAYFS_SUPER_MAGIC
    assert s.f_blocks == layers.upper.statfs().f_blocks
    ovl = OverlayFs(layers.lower, layers.upper, options="lowerdir=/l,upperdir=/u,workdir=/w")
    assert ovl.mount_options() == "lowerdir=/l,upperdir=/u,workdir=/w"


def test_work_directory_staging(tmp_path):
    lower = TmpFs()
    build_lower(lower.root)
    lower.remount(readonly=True)
    up = TmpFs()
    u, w = up.root.mkdir("upper", 0o755, 0, 0), up.root.mkdir("work", 0o700, 0, 0)
    o = OverlayFs(lower, u, work=w).root
    write(at(o, "etc/passwd"), b"W", os.O_WRONLY)
    assert read(at(u, "etc/passwd")).startswith(b"Woot")
    assert tree_names(w) == [] and tree_names(up.root) == ["upper", "work"]


def test_battery_leaves_the_lower_identical(layers):
    o = layers.ovl.root
    write(at(o, "etc/passwd"), b"x", os.O_RDWR | os.O_APPEND)
    at(o, "bin/sh").setattr(mode=0o700, uid=3, gid=4, atime_ns=1, mtime_ns=2)
    at(o, "etc/hosts").setxattr("user.tag", b"upper", 0)
    at(o, "etc/hosts").removexattr("user.tag")
    at(o, "etc").unlink("shadow")
    o.link("h9", at(o, "h2"))
    write(at(o, "h2"), b"h2", os.O_WRONLY | os.O_TRUNC)
    at(o, "dir/sub").rename("file", o, "file")
    at(o, "dir").rmdir("sub")
    o.rmdir("empty")
    o.mkdir("empty", 0o755, 0, 0)
    at(o, "usr/lib").unlink("libx.so")
    at(o, "usr").rmdir("lib")
    o.rename("fifo", at(o, "usr"), "fifo")
    at(o, "null").setattr(gid=9)
    at(o, "lnk").setattr(mtime_ns=3)
    at(o, "big").setattr(size=10)
    o.rename("suid", o, "owned", RENAME_EXCHANGE)
    at(o, "dir").mkdir("sub", 0o777, 0, 0)
    snap = snapshot(o)
    assert "/etc/shadow" not in snap and "/usr/lib" not in snap and "/file" in snap
    assert snapshot(layers.remount().root).keys() == snap.keys()
    # the fixture checks the lower tree, byte for byte, at teardown


def test_fifo_writers_and_merged_nlink(layers):
    o = layers.ovl.root
    assert at(o, "fifo").fifo_path()                    # the VFS opens that; no copy-up
    assert upper_at(layers, "fifo") is None
    assert at(o, "etc").getattr().nlink == at(layers.lower.root, "etc").getattr().nlink
    at(o, "etc").setattr(mtime_ns=T0 + 1)               # now merged
    assert at(o, "etc").getattr().nlink == 1 and at(o, "etc").getattr().mtime_ns == T0 + 1
    with pytest.raises(OSError) as e:
        at(o, "null").setattr(size=0)
    assert err(e) == errno.EINVAL
    assert upper_at(layers, "null") is None


# ---- differential: the overlay must behave like one plain file system ----

def view(d: Inode, prefix: str = "") -> dict:
    """What a user sees: names, types, permissions, owners, sizes, data, links, xattrs."""
    out = {}
    for name, _ino, _t in d.readdir():
        child = d.lookup(name)
        a = child.getattr()
        rec = (a.mode, a.uid, a.gid, sorted(n for n in child.listxattr() if n.startswith("user.")))
        if st.S_ISREG(a.mode):
            rec += (a.size, read(child))
        elif st.S_ISLNK(a.mode):
            rec += (child.readlink(),)
        out[prefix + "/" + name] = rec
        if st.S_ISDIR(a.mode):
            out.update(view(child, prefix + "/" + name))
    return out


def random_ops(rng, count: int):
    names = ["a", "b", "c", "etc", "dir", "sub", "h1", "h2", "empty", "passwd", "other", "lnk"]
    dirs = ["", "etc", "dir", "dir/sub", "empty", "usr", "usr/lib", "a", "b", "dir/a"]
    kinds = ["create", "write", "unlink", "mkdir", "rmdir", "rename", "link", "symlink",
             "chmod", "xattr", "truncate"]
    for _ in range(count):
        yield (rng.choice(kinds), rng.choice(dirs), rng.choice(names), rng.choice(dirs),
               rng.choice(names), rng.choice([0, 0, 0, RENAME_NOREPLACE, RENAME_EXCHANGE]),
               rng.randrange(1 << 16))


def apply_op(root: Inode, op) -> object:
    kind, d1, n1, d2, n2, flags, r = op
    try:
        d = at(root, d1)
        if kind == "create":
            d.create(n1, 0o644, 0, 0)
        elif kind == "write":
            f = d.lookup(n1)
            if not st.S_ISREG(f.mode):  # the VFS never opens others through the fs
                return "not a file"
            write(f, b"w%d" % r, os.O_WRONLY | os.O_APPEND)
        elif kind == "truncate":
            d.lookup(n1).setattr(size=r % 7)
        elif kind == "unlink":
            d.unlink(n1)
        elif kind == "mkdir":
            d.mkdir(n1, 0o755, 0, 0)
        elif kind == "rmdir":
            d.rmdir(n1)
        elif kind == "rename":
            src = (d1 + "/" + n1).lstrip("/")
            if (d2 + "/").startswith(src + "/"):
                return errno.EINVAL     # below itself: the VFS refuses this one
            d.rename(n1, at(root, d2), n2, flags)
        elif kind == "link":
            at(root, d2).link(n2, d.lookup(n1))
        elif kind == "symlink":
            d.symlink(n1, "t%d" % r, 0, 0)
        elif kind == "chmod":
            f = d.lookup(n1)
            if st.S_ISLNK(f.mode):
                return errno.EOPNOTSUPP     # the VFS's answer: symlinks have no mode
            f.setattr(mode=r & 0o777)
        elif kind == "xattr":
            d.lookup(n1).setxattr("user.k%d" % (r % 3), b"v", 0)
    except OSError as e:
        return e.errno
    return 0


@pytest.mark.parametrize("kind", ["tmp/tmp", "host/host"])
@pytest.mark.parametrize("seed", [1, 2, 3, 81])
def test_differential_against_a_plain_fs(kind, seed, tmp_path):
    import random
    lay = Layers(kind, tmp_path)
    ref = TmpFs()
    build_lower(ref.root)
    rng = random.Random(seed)
    skipped = 0
    for i, op in enumerate(random_ops(rng, 300)):
        if i == 150:
            lay.remount()               # what is on the upper is all there is
        got = apply_op(lay.ovl.root, op)
        if got == errno.EXDEV and op[0] == "rename":
            skipped += 1                # a directory with a lower part: mv would copy
            continue
        want = apply_op(ref.root, op)
        assert got == want, (i, op, got, want)
        if i % 50 == 49:
            assert view(lay.ovl.root) == view(ref.root), (i, op)
    assert view(lay.ovl.root) == view(ref.root)
    assert view(lay.remount().root) == view(ref.root)
    lay.check_lower_untouched()
    assert skipped < 100


def test_inode_numbers_of_other_host_devices(layers):
    ovl = layers.ovl
    ldev = layers.lower.root.key[0]
    assert ovl.ovl_ino(ldev, 10, 0) == 20 and ovl.ovl_ino(layers.upper.root.key[0], 10, 1) == 21
    other = ovl.ovl_ino(ldev + 1, 10, 0)            # a host file system mounted below
    assert other != 20 and other == ovl.ovl_ino(ldev + 1, 10, 0) and other & 0xFF == 20
    assert other < 1 << 64
    assert len({ovl.ovl_ino(d, 10, 0) for d in range(ldev + 1, ldev + 400)}) == 399
    fresh = OverlayFs(layers.lower, layers.upper)       # the same number on a remount
    assert fresh.ovl_ino(ldev + 1, 10, 0) == other


def test_inodes_share_no_child_cache(layers):
    """An overlay inode's child cache is made at its first child: until
    then every inode reads the same empty one, which nothing may write."""
    from umlpy.fs import overlay
    root = layers.ovl.root
    sub = root.mkdir("newdir", 0o755, 0, 0)
    f = sub.create("f", 0o644, 0, 0)
    sub.link("g", f)
    sub.rename("g", root, "h")
    sub.unlink("f")
    assert root.lookup("h") is not None
    assert read(at(root, "etc/passwd")).startswith(b"root")
    assert len(overlay._NO_CHILDREN) == 0
    assert f._children is overlay._NO_CHILDREN
    assert sub._children is not overlay._NO_CHILDREN
