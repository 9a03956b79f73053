"""The path walk on a host tree with mounts (no guest): nothing resolves
outside the root, `..` crosses mounts both ways, openat2's RESOLVE_* rules."""
import errno
import os
import stat

import pytest

from umlpy.fs.devfs import DevFs
from umlpy.fs.hostfs import HostFs
from umlpy.fs.tmpfs import TmpFs
from umlpy.kernel.task import Creds, PidNamespace
from umlpy.vfs import namei, ops
from umlpy.vfs.vfs import Vfs


@pytest.fixture
def tree(tmp_path):
    outside = tmp_path / "secret"
    outside.write_text("host secret")
    r = tmp_path / "root"
    (r / "a" / "b").mkdir(parents=True)
    (r / "etc").mkdir()
    (r / "dev").mkdir()
    (r / "mnt").mkdir()
    (r / "etc" / "passwd").write_text("guest")
    os.symlink(str(outside), r / "abs")                         # absolute host path
    os.symlink("../../../../../../secret", r / "a" / "rel")       # climbs with ..
    os.symlink("/etc", r / "a" / "etclink")                      # absolute, guest meaning
    os.symlink("loop2", r / "loop1")
    os.symlink("loop1", r / "loop2")
    v = Vfs()
    v.set_root(HostFs(str(r)), str(r))
    v.mount(DevFs(), "/dev", "udev")
    v.mount(TmpFs(), "/mnt", "tmpfs")
    yield v
    v.close()


def resolve(v, path, cwd="/", follow=True, resolve=0, root="/"):
    rootp = v.lookup(root).must_exist()
    start = v.lookup(cwd, root=rootp).must_exist()
    lk = v.lookup(path, start, rootp, Creds(), follow, resolve)
    return v.path_string(lk.must_exist(), rootp), lk.inode.getattr()


def test_dotdot_stays_at_root(tree):
    assert resolve(tree, "/../../..")[0] == "/"
    assert resolve(tree, "../../etc/passwd", cwd="/a")[0] == "/etc/passwd"
    assert resolve(tree, "/../..", root="/a")[0] == "/"          # a chroot's own root


def test_symlinks_resolve_inside_the_guest(tree):
    assert resolve(tree, "/a/etclink/passwd")[0] == "/etc/passwd"
    for p in ("/abs", "/a/rel"):
        with pytest.raises(FileNotFoundError):
            resolve(tree, p)
    assert resolve(tree, "/abs", follow=False)[0] == "/abs"


def test_loops_and_non_directories(tree):
    for path, code in (("/loop1", errno.ELOOP), ("/etc/passwd/x", errno.ENOTDIR),
                       ("/x" * 3000, errno.ENAMETOOLONG), ("/etc/passwd/", errno.ENOTDIR)):
        with pytest.raises(OSError) as e:
            resolve(tree, path)
        assert e.value.errno == code, path


def test_mounts_are_crossed_both_ways(tree):
    path, a = resolve(tree, "/dev/null")
    assert path == "/dev/null" and stat.S_ISCHR(a.mode) and os.major(a.rdev) == 1
    assert resolve(tree, "/dev/../etc")[0] == "/etc"
    assert resolve(tree, "/mnt/..")[0] == "/"
    tree.root_path()
    mnt = tree.lookup("/mnt").must_exist()
    mnt.inode.mkdir("sub", 0o755, 0, 0)
    assert resolve(tree, "/mnt/sub/../../etc/passwd")[0] == "/etc/passwd"


def test_a_missing_mount_point_is_made_up_not_created(tree, tmp_path):
    tree.mount(TmpFs(), "/run", "tmpfs")
    assert not (tmp_path / "root" / "run").exists()
    path, a = resolve(tree, "/run/..")
    assert path == "/" and stat.S_ISDIR(a.mode)
    run = tree.lookup("/run").must_exist()
    run.inode.create("pidfile", 0o644, 0, 0)        # the tmpfs on it, not the host
    assert resolve(tree, "/run/pidfile")[0] == "/run/pidfile"
    assert not (tmp_path / "root" / "run").exists()
    assert tree.lookup("/nothing").path is None


def test_host_proc_is_never_reached(tree):
    v = Vfs()
    v.set_root(HostFs("/", readonly=True), "/")
    try:
        with pytest.raises(FileNotFoundError):
            v.lookup(f"/proc/{os.getpid()}/root")
        assert list(v.lookup("/proc").must_exist().inode.readdir()) == []
    finally:
        v.close()


def test_resolve_flags(tree):
    B, R = namei.RESOLVE_BENEATH, namei.RESOLVE_IN_ROOT
    for path, flags, code in (("../etc", B, errno.EXDEV), ("/etc", B, errno.EXDEV),
                              ("etclink", B, errno.EXDEV), ("etclink", namei.RESOLVE_NO_SYMLINKS,
                                                            errno.ELOOP),
                              ("../dev/null", namei.RESOLVE_NO_XDEV, errno.EXDEV)):
        with pytest.raises(OSError) as e:
            resolve(tree, path, cwd="/a", resolve=flags)
        assert e.value.errno == code, (path, flags)
    # IN_ROOT: absolute symlinks and .. stay below the starting directory
    with pytest.raises(FileNotFoundError):
        resolve(tree, "etclink/passwd", cwd="/a", resolve=R)
    assert resolve(tree, "../../b", cwd="/a", resolve=R)[0] == "/a/b"


def test_search_permission_is_checked(tree):
    d = tree.lookup("/a/b").must_exist()
    d.inode.setattr(mode=0o700)
    user = Creds(ruid=1000, euid=1000, suid=1000, fsuid=1000, rgid=1000, egid=1000,
                 sgid=1000, fsgid=1000)
    d.inode.create("f", 0o644, 0, 0)
    with pytest.raises(PermissionError):
        tree.lookup("/a/b/f", creds=user)
    assert tree.lookup("/a/b/f", creds=Creds()).path is not None


def test_pid_namespace_translation():
    ns = PidNamespace()
    assert ns.alloc(5000) == 1 and ns.alloc(5001) == 2
    assert ns.to_host(1) == 5000 and ns.to_guest(5001) == 2
    assert ns.to_guest(4242) == 0            # outside the namespace reads as 0
    ns.release(1)
    assert ns.to_host(1) is None
    assert ns.alloc(5001) == 3               # a reused host pid gets a fresh guest pid
    assert ns.to_host(2) is None


# ---- the walk cache: never a stale answer ----
@pytest.fixture
def tmproot(tmp_path):
    v = Vfs()
    v.set_root(TmpFs(mode=0o755), "tmpfs")
    (tmp_path / "host").mkdir()
    v.mount(HostFs(str(tmp_path / "host")), "/host", "hostfs")
    yield v
    v.close()


def test_cached_walks_follow_every_name_change(tmproot):
    v, root = tmproot, Creds()
    lk = v.lookup("/d", creds=root)
    assert lk.path is None                              # cached as missing
    ops.mkdir(lk, root, 0o755)
    lk = v.lookup("/d/f", creds=root)
    assert lk.path is None
    assert ops.open_(v, lk, root, os.O_CREAT | os.O_WRONLY, 0o644, None).path is not None
    assert v.lookup("/d/f", creds=root).path is not None
    ops.rename(v.lookup("/d/f", creds=root), v.lookup("/d/g", creds=root), root, 0, v.mounts)
    assert v.lookup("/d/f", creds=root).path is None
    ops.symlink(v.lookup("/d/l", creds=root), root, "g")
    assert v.lookup("/d/l", creds=root).path.inode is v.lookup("/d/g", creds=root).path.inode
    ops.unlink(v.lookup("/d/g", creds=root), root, v.mounts)
    assert v.lookup("/d/l", creds=root).path is None    # the link dangles now
    user = Creds(ruid=1000, euid=1000, suid=1000, fsuid=1000, rgid=1000, egid=1000,
                 sgid=1000, fsgid=1000)
    assert v.lookup("/d/l", creds=user).path is None
    ops.chmod(v.lookup("/d", creds=root).path, root, 0o700)
    with pytest.raises(PermissionError):                # search permission re-checked
        v.lookup("/d/l", creds=user)
    v.mount(TmpFs(), "/d", "tmpfs")
    assert v.lookup("/d/l", creds=root).path is None    # the mount hides the old contents


def test_host_directories_are_never_cached(tmproot, tmp_path):
    v = tmproot
    assert v.lookup("/host/new", creds=Creds()).path is None
    (tmp_path / "host" / "new").write_text("made by the host")
    assert v.lookup("/host/new", creds=Creds()).path is not None


@pytest.mark.parametrize("where", ["/", "/host"])
def test_a_rename_moves_the_paths_below_it(tmproot, where):
    v, root = tmproot, Creds()
    base = where.rstrip("/")
    for d in ("a", "a/b", "x"):
        ops.mkdir(v.lookup(f"{base}/{d}", creds=root), root, 0o755)
    cwd = v.lookup(f"{base}/a/b", creds=root).must_exist()
    ops.rename(v.lookup(f"{base}/a", creds=root), v.lookup(f"{base}/x/c", creds=root), root, 0,
               v.mounts)
    assert v.path_string(cwd) == f"{base}/x/c/b"
    ops.mkdir(v.lookup("new", start=cwd, creds=root), root, 0o755)     # relative to the cwd
    assert v.lookup(f"{base}/x/c/b/new", creds=root).path is not None


# ---- the directory cache: "DIR/name" walks reuse DIR across file changes ----
def test_directory_walks_follow_links_and_directories_that_change(tmproot):
    v, root = tmproot, Creds()
    for d in ("a", "b"):
        ops.mkdir(v.lookup(f"/{d}", creds=root), root, 0o755)
    ops.symlink(v.lookup("/l", creds=root), root, "a")
    ops.open_(v, v.lookup("/l/f", creds=root), root, os.O_CREAT | os.O_WRONLY, 0o644, None)
    assert v.lookup("/a/f", creds=root).path is not None
    # a new name in the same directory is found with the cached prefix
    ops.open_(v, v.lookup("/l/g", creds=root), root, os.O_CREAT | os.O_WRONLY, 0o644, None)
    assert v.lookup("/l/g", creds=root).path.inode is v.lookup("/a/g", creds=root).path.inode
    # the link now leads elsewhere: so must every walk through it
    ops.unlink(v.lookup("/l", creds=root, follow=False), root, v.mounts)
    ops.symlink(v.lookup("/l", creds=root, follow=False), root, "b")
    assert v.lookup("/l/f", creds=root).path is None
    # a directory removed and made again is the new one
    ops.unlink(v.lookup("/a/f", creds=root), root, v.mounts)
    ops.unlink(v.lookup("/a/g", creds=root), root, v.mounts)
    ops.rmdir(v.lookup("/a", creds=root), root, v.mounts)
    with pytest.raises(FileNotFoundError):
        v.lookup("/a/f", creds=root)
    ops.mkdir(v.lookup("/a", creds=root), root, 0o755)
    ops.open_(v, v.lookup("/a/h", creds=root), root, os.O_CREAT | os.O_WRONLY, 0o644, None)
    assert v.lookup("/a/h", creds=root).path is not None
    # a file where a directory is expected
    with pytest.raises(NotADirectoryError):
        v.lookup("/a/h/x", creds=root)


def test_names_below_a_volatile_root_are_never_cached(tmp_path):
    """A tmpfs mounted on a host directory: a name the kernel adds behind the
    VFS (a hot-plugged /dev node) is seen at once, even after a walk missed it."""
    (tmp_path / "dev").mkdir()
    v = Vfs()
    v.set_root(HostFs(str(tmp_path)), str(tmp_path))
    v.mount(TmpFs(), "/dev", "tmpfs")
    try:
        assert v.lookup("/dev/ubdb", creds=Creds()).path is None
        v.lookup("/dev").must_exist().inode.mknod("ubdb", stat.S_IFBLK | 0o660,
                                                 os.makedev(98, 16), 0, 6)
        assert v.lookup("/dev/ubdb", creds=Creds()).path is not None
    finally:
        v.close()
