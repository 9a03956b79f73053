"""The guest's /dev as devfs builds it."""
import errno
import os
import stat as st

import pytest

from umlpy.fs.devfs import DevFs
from umlpy.fs.tmpfs import TMPFS_MAGIC


def test_standard_nodes(tmp_path):
    fs = DevFs(scratch_dir=str(tmp_path))
    r = fs.root
    want = {"null": (1, 3, 0o666), "zero": (1, 5, 0o666), "full": (1, 7, 0o666),
            "random": (1, 8, 0o666), "urandom": (1, 9, 0o666), "tty": (5, 0, 0o666),
            "console": (5, 1, 0o600), "ptmx": (5, 2, 0o666)}
    for name, (major, minor, mode) in want.items():
        a = r.lookup(name).getattr()
        assert st.S_ISCHR(a.mode) and st.S_IMODE(a.mode) == mode, name
        assert (os.major(a.rdev), os.minor(a.rdev)) == (major, minor), name
    assert r.lookup("tty").getattr().gid == 5 and r.lookup("console").getattr().gid == 0
    assert st.S_IMODE(r.lookup("shm").getattr().mode) == 0o1777
    assert r.lookup("pts").is_dir()
    assert r.lookup("fd").readlink() == "/proc/self/fd"
    assert [r.lookup(n).readlink() for n in ("stdin", "stdout", "stderr")] == \
        ["/proc/self/fd/0", "/proc/self/fd/1", "/proc/self/fd/2"]
    assert st.S_IMODE(r.getattr().mode) == 0o755
    assert fs.statfs().f_type == TMPFS_MAGIC and fs.type_name == "devtmpfs"
    # devices are opened by the VFS's device table, not by the file system
    with pytest.raises(OSError) as e:
        r.lookup("null").open(os.O_RDWR)
    assert e.value.errno == errno.ENXIO
    # root may add nodes: it is a tmpfs
    r.mknod("loop0", st.S_IFBLK | 0o660, os.makedev(7, 0), 0, 6)
    assert st.S_ISBLK(r.lookup("loop0").mode)
    fs.close()
