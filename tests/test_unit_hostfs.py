"""hostfs on a host directory (no guest): ownership the guest sets lives
beside the file, never in the host's owner."""
import os
import stat as st

import pytest

from umlpy.fs.hostfs import META, HostFs


@pytest.fixture
def fs(tmp_path):
    f = HostFs(str(tmp_path))
    yield f
    f.close()


def test_owner_mode_and_devices_live_in_the_side_store(fs, tmp_path):
    f = fs.root.create("f", 0o640, 1234, 5678)
    a = f.getattr()
    assert (a.uid, a.gid, st.S_IMODE(a.mode)) == (1234, 5678, 0o640)
    assert (tmp_path / "f").stat().st_uid == os.getuid()
    assert os.getxattr(tmp_path / "f", META) == b"1234:5678:100640"
    n = fs.root.mknod("null", st.S_IFCHR | 0o666, os.makedev(1, 3), 0, 0)
    assert st.S_ISCHR(n.getattr().mode) and n.getattr().rdev == os.makedev(1, 3)
    assert st.S_ISREG((tmp_path / "null").lstat().st_mode)


def test_fifos_and_symlinks_keep_their_owner_without_xattrs(fs, tmp_path):
    p = fs.root.mknod("p", st.S_IFIFO | 0o600, 0, 7, 8)
    assert st.S_ISFIFO(p.getattr().mode) and p.getattr().uid == 7
    assert st.S_ISFIFO((tmp_path / "p").lstat().st_mode)
    s = fs.root.symlink("l", "target", 5, 6)
    assert s.getattr().uid == 5 and s.readlink() == "target"


def test_a_reused_inode_number_does_not_inherit_a_symlink_owner(fs):
    fs.root.symlink("l", "target", 5, 5)
    fs.root.create("f", 0o644, 0, 0)
    fs.root.rename("f", fs.root, "l")           # the symlink's inode is freed
    for i in range(20):                         # ext4 hands its number out again
        g = fs.root.create(f"g{i}", 0o644, 0, 0)
        assert st.S_ISREG(g.getattr().mode), i
