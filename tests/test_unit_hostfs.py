"""hostfs on a host directory (no guest): ownership the guest sets lives
beside the file, never in the host's owner."""
import os
import stat as st

import pytest

from umlpy.fs import hostfs
from umlpy.fs.hostfs import META, HostFs
from umlpy.fs.hostfs_meta import LOG_NAME


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


def test_owners_without_xattrs_persist_in_a_hidden_log(fs, tmp_path):
    fs.root.symlink("l", "target", 5, 6)
    fs.root.mknod("p", st.S_IFIFO | 0o600, 0, 7, 8)
    fs.root.mkdir("d", 0o755, 0, 0).symlink("l2", "x", 9, 9)
    fs.root.unlink("p")
    fs.sync()
    again = HostFs(str(tmp_path))
    try:
        assert (again.root.lookup("l").getattr().uid, again.root.lookup("l").getattr().gid) == (5, 6)
        assert again.root.lookup("d").lookup("l2").getattr().uid == 9
        assert (tmp_path / LOG_NAME).exists()
        assert LOG_NAME not in [n for n, _, _ in again.root.readdir()]
        with pytest.raises(FileNotFoundError):
            again.root.lookup(LOG_NAME)
        with pytest.raises(PermissionError):
            again.root.create(LOG_NAME, 0o644, 0, 0)
        with pytest.raises(PermissionError):
            again.root.rename("l", again.root, LOG_NAME)
        os.mkfifo(tmp_path / "p")       # may reuse the inode number: the entry went with unlink
        assert again.root.lookup("p").getattr().uid == os.getuid()
    finally:
        again.close()


def test_a_torn_log_line_is_skipped(tmp_path):
    (tmp_path / "l").symlink_to("t")
    ino = (tmp_path / "l").lstat().st_ino
    (tmp_path / LOG_NAME).write_text(f"{ino} 120000 3 4 120777 0\n{ino} 1200")
    f = HostFs(str(tmp_path))
    try:
        assert f.root.lookup("l").getattr().uid == 3
    finally:
        f.close()


def _open_fds() -> int:
    return len(os.listdir("/proc/self/fd"))


def test_fresh_lookups_serve_the_first_getattr_only_inside_the_scope(fs, tmp_path):
    """A listing's stats published ahead take the attributes each lookup
    read; an inode kept past the scope reads the host again."""
    d = fs.root.mkdir("d", 0o755, 0, 0)
    d.create("f", 0o644, 0, 0)
    before = _open_fds()
    with hostfs.fresh_lookups():
        f = d.lookup("f")
        (tmp_path / "d" / "f").write_bytes(b"12345")      # after the lookup
        assert f.getattr().size == 0                      # the lookup's moment
        assert f.getattr().size == 5                      # served once, then the host's
        kept = d.lookup("f")
        assert _open_fds() == before + 1                  # d's descriptor, held for the scope
    assert _open_fds() == before
    (tmp_path / "d" / "f").write_bytes(b"1234567")
    assert kept.getattr().size == 7                       # past the scope: never the lookup's
