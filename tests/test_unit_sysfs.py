"""sysfs with no guest."""
import errno
import os
import stat as st

import pytest

from umlpy.fs.synthetic import cpu_list, parse_cpu_list
from umlpy.fs.sysfs import SYSFS_MAGIC, SysFs
from unit_kernel_state import boot, read_path, walk


@pytest.fixture
def sys_(tmp_path):
    return boot(str(tmp_path / "scratch"))


def host(name):
    with open(f"/sys/devices/system/cpu/{name}") as f:
        return f.read()


def test_cpu_lists_follow_the_host(sys_):
    k, w, t = sys_
    for name in ("online", "possible", "present"):
        got = read_path(w, t, f"/sys/devices/system/cpu/{name}").decode()
        assert parse_cpu_list(got) == parse_cpu_list(host(name))
    assert int(read_path(w, t, "/sys/devices/system/cpu/kernel_max")) > 0


def test_one_directory_per_cpu(sys_):
    k, w, t = sys_
    names = [n for n, _i, _d in walk(w, t, "/sys/devices/system/cpu").path.inode.readdir()]
    cpus = sorted(n for n in names if n.startswith("cpu") and n[3:].isdigit())
    assert cpus == sorted(f"cpu{i}" for i in parse_cpu_list(host("possible")))
    assert walk(w, t, "/sys/devices/system/cpu/cpu0/online").path is None
    if len(cpus) > 1:
        assert read_path(w, t, "/sys/devices/system/cpu/cpu1/online") in (b"0\n", b"1\n")


def test_fixed_directories_and_thp(sys_):
    k, w, t = sys_
    for d in ("/sys/fs/cgroup", "/sys/class", "/sys/block"):
        inode = walk(w, t, d).must_exist().inode
        assert st.S_ISDIR(inode.getattr().mode) and list(inode.readdir()) == []
    assert b"[" in read_path(w, t, "/sys/kernel/mm/transparent_hugepage/enabled")
    assert walk(w, t, "/sys").path.fs.statfs().f_type == SYSFS_MAGIC


def test_driver_hooks(sys_):
    k, w, t = sys_
    fs = walk(w, t, "/sys").path.fs
    assert isinstance(fs, SysFs)
    fs.add_file("block/ubda/size", lambda: "2048\n")
    fs.add_link("class/block/ubda", "../../block/ubda")
    assert read_path(w, t, "/sys/class/block/ubda/size") == b"2048\n"
    fs.remove("block/ubda")
    assert walk(w, t, "/sys/block/ubda").path is None


def test_read_only(sys_):
    k, w, t = sys_
    inode = walk(w, t, "/sys/devices/system/cpu/online").path.inode
    with pytest.raises(OSError) as e:
        inode.open(os.O_WRONLY)
    assert e.value.errno == errno.EACCES


def test_cpu_list_format():
    assert cpu_list([0, 1, 2, 3, 5, 7, 8]) == "0-3,5,7-8"
    assert parse_cpu_list("0-3,5\n") == [0, 1, 2, 3, 5]
    assert cpu_list([]) == ""
