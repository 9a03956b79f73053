"""/proc/mounts and /proc/PID/mountinfo from a real mount table."""
import os

from umlpy.vfs.mount import MS_NOSUID, MS_RDONLY, MountTable
from umlpy.vfs.mountinfo import escape, mountinfo_text, mounts_text, root_in_fs
from umlpy.vfs.namei import Walker
from unit_kernel_state import KernelState, TreeFs


def _table(tmp_path):
    k = KernelState(str(tmp_path / "s"))
    table = MountTable()
    rootfs = TreeFs(k, dirs=("mnt/a b", "mnt/tab\there", "jail/inner", "data/sub/deep"))
    table.set_root(rootfs, "/dev/root")
    w = Walker(table)
    root = table.root_path()

    def at(p):
        return w.walk(p, root, root, None).path
    other = TreeFs(k, dirs=("x/y",))
    m1 = table.attach(other, at("/mnt/a b"), "src with space", MS_NOSUID)
    m2 = table.attach(TreeFs(k, dirs=()), at("/mnt/tab\there"), "", MS_RDONLY)
    # a bind mount of a subtree of `other` onto /jail/inner
    sub = w.walk("/mnt/a b/x", root, root, None).path
    m3 = table.attach(other, at("/jail/inner"), "src with space", 0, root=sub.dentry)
    return table, w, at, (m1, m2, m3), rootfs, other


def test_escape():
    assert escape("a b\tc\nd\\e") == "a\\040b\\011c\\012d\\134e"


def test_mounts_text(tmp_path):
    table, w, at, (m1, m2, m3), rootfs, other = _table(tmp_path)
    lines = mounts_text(table, table.root_path()).splitlines()
    assert lines[0] == "/dev/root / treefs rw 0 0"
    assert lines[1] == "src\\040with\\040space /mnt/a\\040b treefs rw,nosuid 0 0"
    assert lines[2] == "none /mnt/tab\\011here treefs ro 0 0"
    assert lines[3] == "src\\040with\\040space /jail/inner treefs rw 0 0"


def test_mountinfo_text(tmp_path):
    table, w, at, (m1, m2, m3), rootfs, other = _table(tmp_path)
    lines = [ln.split(" ") for ln in mountinfo_text(table, table.root_path()).splitlines()]
    root_id = table.root.id
    assert lines[0][:6] == [str(root_id), str(root_id), f"0:{rootfs.dev}", "/", "/", "rw"]
    assert lines[0][6:] == ["-", "treefs", "/dev/root", "rw"]
    other_dev = f"{os.major(other.dev)}:{os.minor(other.dev)}"
    assert lines[1][:6] == [str(m1.id), str(root_id), other_dev, "/", "/mnt/a\\040b",
                            "rw,nosuid"]
    assert lines[2][5] == "ro" and lines[2][8] == "none"
    assert lines[3][3] == "/x" and lines[3][4] == "/jail/inner"   # the bind's root in its fs
    assert root_in_fs(m3) == "/x"


def test_chrooted_reader_sees_only_mounts_below_its_root(tmp_path):
    table, w, at, (m1, m2, m3), rootfs, other = _table(tmp_path)
    jail = at("/jail")
    lines = mounts_text(table, jail).splitlines()
    assert lines == ["src\\040with\\040space /inner treefs rw 0 0"]
    info = mountinfo_text(table, jail).split()
    assert info[4] == "/inner"
