"""The path walk on a host tree (no guest): nothing resolves outside the root."""
import errno
import os

import pytest

from umlpy.kernel.task import PidNamespace
from umlpy.vfs.vfs import Vfs


@pytest.fixture
def tree(tmp_path):
    outside = tmp_path / "secret"
    outside.write_text("host secret")
    r = tmp_path / "root"
    (r / "a" / "b").mkdir(parents=True)
    (r / "etc").mkdir()
    (r / "etc" / "passwd").write_text("guest")
    os.symlink(str(outside), r / "abs")                         # absolute host path
    os.symlink("../../../../../../secret", r / "a" / "rel")       # climbs with ..
    os.symlink("/etc", r / "a" / "etclink")                      # absolute, guest meaning
    os.symlink("loop2", r / "loop1")
    os.symlink("loop1", r / "loop2")
    v = Vfs(str(r))
    yield v
    v.close()


def resolve(v, path, cwd="/", follow=True):
    with v.lookup(path, cwd, follow) as lk:
        return lk.path, lk.fs.stat(lk.dirfd, lk.name) if lk.name else None


def test_dotdot_stays_at_root(tree):
    assert resolve(tree, "/../../..")[0] == "/"
    assert resolve(tree, "../../etc/passwd", cwd="/a")[0] == "/etc/passwd"


def test_symlinks_resolve_inside_the_guest(tree):
    assert resolve(tree, "/a/etclink/passwd")[0] == "/etc/passwd"
    for p in ("/abs", "/a/rel"):
        with pytest.raises(FileNotFoundError):
            resolve(tree, p)
    assert resolve(tree, "/abs", follow=False)[0] == "/abs"


def test_loops_and_non_directories(tree):
    with pytest.raises(OSError) as e:
        resolve(tree, "/loop1")
    assert e.value.errno == errno.ELOOP
    with pytest.raises(OSError) as e:
        resolve(tree, "/etc/passwd/x")
    assert e.value.errno == errno.ENOTDIR
    with pytest.raises(OSError) as e:
        resolve(tree, "/x" * 3000)
    assert e.value.errno == errno.ENAMETOOLONG


def test_mounts_are_crossed_and_proc_is_not_the_hosts(tree):
    path, s = resolve(tree, "/dev/null")
    assert path == "/dev/null" and os.major(s.st_rdev) == 1
    assert resolve(tree, "/dev/../etc")[0] == "/etc"
    with pytest.raises(FileNotFoundError):
        resolve(tree, f"/proc/{os.getpid()}/root")
    assert tree.guest_path_of("/dev/null") == "/dev/null"
    assert tree.guest_path_of("pipe:[123]") is None


def test_pid_namespace_translation():
    ns = PidNamespace()
    assert ns.alloc(5000) == 1 and ns.alloc(5001) == 2
    assert ns.to_host(1) == 5000 and ns.to_guest(5001) == 2
    assert ns.to_guest(4242) == 0            # outside the namespace reads as 0
    ns.release(1)
    assert ns.to_host(1) is None
    assert ns.alloc(5001) == 3               # a reused host pid gets a fresh guest pid
    assert ns.to_host(2) is None
