"""procfs with no guest: this test process plays guest pid 1 (real Task,
ThreadGroup, Creds and PidNamespace objects; its real host /proc data)."""
import errno
import mmap
import os
import stat as st
import threading
import time

import pytest

import umlpy
from umlpy.kernel.task import Creds
from umlpy.vfs.namei import path_string
from unit_kernel_state import add_process, add_thread, boot, read_path, walk


@pytest.fixture
def sys_(tmp_path):
    return boot(str(tmp_path / "scratch"))


def text(walker, task, path):
    return read_path(walker, task, path).decode()


def status_of(walker, task, path):
    return dict(line.split(":\t", 1) for line in text(walker, task, path).splitlines()
                if ":\t" in line)


def errno_of(fn, *a, **kw):
    with pytest.raises(OSError) as e:
        fn(*a, **kw)
    return e.value.errno


def resolve(walker, task, path, follow=True):
    return walk(walker, task, path, follow).must_exist()


# ---- the root ----
def test_root_lists_static_entries_and_guest_pids_only(sys_):
    k, w, t = sys_
    names = [n for n, _i, _d in walk(w, t, "/proc").path.inode.readdir()]
    for n in ("self", "thread-self", "mounts", "meminfo", "cpuinfo", "stat", "sys", "1"):
        assert n in names
    pids = [n for n in names if n.isdigit()]
    assert pids == ["1"]                        # not the host's pids
    host_pid = os.getpid()      # a live host process that is no guest's (nor 1, the guest's own)
    assert host_pid != 1
    assert errno_of(resolve, w, t, "/proc/%d/status" % host_pid) == errno.ENOENT


def test_self_and_thread_self_follow_the_current_task(sys_):
    k, w, t = sys_
    assert walk(w, t, "/proc/self", follow=False).path.inode.readlink() == "1"
    assert walk(w, t, "/proc/thread-self", follow=False).path.inode.readlink() == "1/task/1"
    assert walk(w, t, "/proc/self/status").path.inode.ino == \
        walk(w, t, "/proc/1/status").path.inode.ino
    k.current = None
    assert errno_of(resolve, w, t, "/proc/self/status") == errno.ENOENT


# ---- per-process files ----
def test_status_shows_guest_ids_and_credentials(sys_):
    k, w, t = sys_
    t.creds = Creds(ruid=1000, euid=1001, suid=1002, fsuid=1001, rgid=100, egid=101,
                    sgid=102, fsgid=101, groups=[5, 27])
    s = status_of(w, t, "/proc/self/status")
    assert s["Name"] == "pytest-init"
    assert (s["Pid"], s["Tgid"], s["PPid"], s["TracerPid"]) == ("1", "1", "0", "0")
    assert s["Uid"] == "1000\t1001\t1002\t1001" and s["Gid"] == "100\t101\t102\t101"
    assert s["Groups"] == "5 27 "
    assert s["State"] == "R (running)"         # the caller is running
    assert s["NSpid"] == "1" and s["CapEff"] == "0" * 16
    assert str(os.getpid()) not in (s["Pid"], s["NSpid"], s["Tgid"])
    assert "VmRSS" in s                         # the host's memory lines pass through


def test_stat_rewrites_pids_and_translates_pgrp(sys_):
    k, w, t = sys_
    pgid, sid = os.getpgid(0), os.getsid(0)
    fields = text(w, t, "/proc/1/stat").split(") ")[1].split()
    # pgrp and session are outside the guest's namespace: 0, as Linux shows
    expect_pg = 0 if pgid != os.getpid() else 1
    assert fields[0] == "R" and fields[1] == "0" and int(fields[2]) == expect_pg
    if pgid != os.getpid():
        guest_pg = k.pids.alloc(pgid)
        fields = text(w, t, "/proc/1/stat").split(") ")[1].split()
        assert int(fields[2]) == guest_pg
    assert text(w, t, "/proc/1/stat").startswith("1 (pytest-init) ")
    assert len(text(w, t, "/proc/1/stat").split()) >= 52
    del sid


def test_comm_cmdline_environ_statm_limits(sys_):
    k, w, t = sys_
    assert text(w, t, "/proc/1/comm") == "pytest-init\n"
    with open("/proc/self/cmdline", "rb") as f:
        assert read_path(w, t, "/proc/1/cmdline") == f.read()
    assert b"PATH=" in read_path(w, t, "/proc/1/environ")
    assert len(text(w, t, "/proc/1/statm").split()) == 7
    assert text(w, t, "/proc/1/limits").startswith("Limit")
    assert text(w, t, "/proc/1/cgroup") == "0::/\n"


def test_files_are_read_only_snapshots(sys_):
    k, w, t = sys_
    inode = walk(w, t, "/proc/1/status").path.inode
    assert errno_of(inode.open, os.O_WRONLY) == errno.EACCES
    assert errno_of(inode.open, os.O_RDWR) == errno.EACCES
    fd = inode.open(os.O_RDONLY)
    try:
        assert os.lseek(fd, 0, os.SEEK_CUR) == 0
        assert errno_of(os.write, fd, b"x") == errno.EBADF
        assert os.get_inheritable(fd) is False
        first = os.read(fd, 6)
        assert first == b"Name:\t"
        os.lseek(fd, 0, os.SEEK_SET)
        assert os.read(fd, 6) == first
    finally:
        os.close(fd)


def test_maps_show_guest_paths_and_hide_host_paths(sys_, tmp_path):
    k, w, t = sys_
    f = tmp_path / "mapped.bin"
    f.write_bytes(b"x" * 8192)
    target = walk(w, t, "/home/user").path
    with open(f, "rb") as fh, mmap.mmap(fh.fileno(), 8192, prot=mmap.PROT_READ):
        s = os.stat(f)
        k.vfs.handles.register((s.st_dev, s.st_ino), target)
        t.group.exe_path = walk(w, t, "/srv").path
        maps = text(w, t, "/proc/self/maps")
    lines = maps.splitlines()
    mine = [ln for ln in lines if ln.endswith(" /home/user")]
    assert mine and mine[0].index("/home/user") == 73
    assert f"{s.st_ino}" in mine[0].split()[4]
    exe = [ln for ln in lines if ln.endswith(" /srv")]
    assert exe                                   # the running image shows the exe path
    assert any(ln.endswith("[stack]") for ln in lines)
    assert "/usr/" not in maps and str(tmp_path) not in maps and "python" not in maps


def test_mounts_and_mountinfo(sys_):
    k, w, t = sys_
    mounts = text(w, t, "/proc/self/mounts")
    assert "proc /proc proc rw 0 0\n" in mounts and mounts.startswith("rootfs / treefs rw")
    assert text(w, t, "/proc/mounts") == mounts
    mi = text(w, t, "/proc/1/mountinfo").splitlines()
    root_id = mi[0].split()[0]
    assert mi[1].split()[1] == root_id and mi[1].split()[4] == "/proc"


# ---- magic links ----
def test_exe_cwd_root_are_magic_links(sys_):
    k, w, t = sys_
    srv = walk(w, t, "/srv").path
    t.fs.cwd = walk(w, t, "/home/user").path
    t.group.exe_path = srv
    link = walk(w, t, "/proc/1/cwd", follow=False).path.inode
    assert st.S_ISLNK(link.getattr().mode) and link.getattr().mode & 0o777 == 0o777
    assert link.readlink() == "/home/user"
    assert walk(w, t, "/proc/1/root", follow=False).path.inode.readlink() == "/"
    assert walk(w, t, "/proc/1/exe", follow=False).path.inode.readlink() == "/srv"
    # the walk jumps to the object: .. from the cwd link is /home
    assert path_string(walk(w, t, "/proc/1/cwd/..").path, t.fs.root) == "/home"
    assert walk(w, t, "/proc/self/exe").path.same(srv)
    t.group.exe_path = None
    assert errno_of(walk(w, t, "/proc/1/exe", follow=False).path.inode.readlink) == errno.ENOENT


def test_fd_dir_lists_descriptors_and_reopens_pipes(sys_):
    k, w, t = sys_
    r, wr = os.pipe()
    try:
        fd_dir = walk(w, t, "/proc/self/fd").path.inode
        a = fd_dir.getattr()
        assert st.S_IMODE(a.mode) == 0o500
        names = {n for n, _i, _d in fd_dir.readdir()}
        assert {str(r), str(wr)} <= names
        link = walk(w, t, f"/proc/self/fd/{r}", follow=False).path.inode
        assert link.readlink().startswith("pipe:[")
        assert link.magic_target() is None
        assert st.S_IMODE(link.getattr().mode) == 0o500      # read end: lr-x------
        # a pipe has no path: the walk ends on the link, whose open reopens the pipe
        lk = walk(w, t, f"/proc/self/fd/{r}")
        nfd = lk.path.inode.open(os.O_RDONLY)
        try:
            os.write(wr, b"through proc")
            assert os.read(nfd, 100) == b"through proc"
        finally:
            os.close(nfd)
        assert errno_of(resolve, w, t, "/proc/self/fd/99999") == errno.ENOENT
        assert errno_of(resolve, w, t, f"/proc/self/fd/0{r}") == errno.ENOENT
    finally:
        os.close(r)
        os.close(wr)


def test_fd_link_with_a_path_jumps_to_it(sys_):
    k, w, t = sys_
    r, wr = os.pipe()
    try:
        home = walk(w, t, "/home/user").path
        k.fds.paths[r] = home
        assert walk(w, t, f"/proc/1/fd/{r}").path.same(home)
        assert walk(w, t, f"/proc/1/fd/{r}", follow=False).path.inode.readlink() == "/guest/known"
    finally:
        os.close(r)
        os.close(wr)


def test_fdinfo(sys_):
    k, w, t = sys_
    fd = os.open("/dev/null", os.O_WRONLY | os.O_APPEND)
    try:
        info = dict(line.split(":\t") for line in text(w, t, f"/proc/1/fdinfo/{fd}").splitlines())
        assert info["pos"] == "0" and int(info["flags"], 8) & os.O_APPEND
        assert int(info["ino"]) == os.fstat(fd).st_ino
        assert "mnt_id" in info
        assert st.S_IMODE(walk(w, t, "/proc/1/fdinfo").path.inode.getattr().mode) == 0o555
    finally:
        os.close(fd)


# ---- other processes: the ptrace access rule ----
def test_other_users_processes_are_guarded(sys_):
    k, w, t = sys_
    other = add_process(k, os.getpid(), t.group, Creds(1000, 1000, 1000, 1000, 1000, 1000,
                                                        1000, 1000), comm="other")
    pid = other.group.tgid
    t.creds = Creds(1001, 1001, 1001, 1001, 1001, 1001, 1001, 1001)
    assert status_of(w, t, f"/proc/{pid}/status")["PPid"] == "1"
    for name in ("environ", "maps", "io"):
        inode = walk(w, t, f"/proc/{pid}/{name}").path.inode
        assert errno_of(inode.open, os.O_RDONLY) == errno.EACCES, name
    assert errno_of(walk(w, t, f"/proc/{pid}/exe", follow=False).path.inode.readlink) \
        == errno.EACCES
    assert errno_of(resolve, w, t, f"/proc/{pid}/fd/0") == errno.EACCES    # fd/ is 0500 1000
    stat_fields = text(w, t, f"/proc/{pid}/stat").split(") ")[1].split()
    assert stat_fields[26 - 3] == "0"                  # startcode hidden from a stranger
    a = walk(w, t, f"/proc/{pid}").path.inode.getattr()
    assert (a.uid, a.gid, st.S_IMODE(a.mode)) == (1000, 1000, 0o555)
    assert st.S_IMODE(walk(w, t, f"/proc/{pid}/environ").path.inode.getattr().mode) == 0o400
    # the same user may look; so may root
    t.creds = Creds(1000, 1000, 1000, 1000, 1000, 1000, 1000, 1000)
    os.close(walk(w, t, f"/proc/{pid}/environ").path.inode.open(os.O_RDONLY))
    t.creds = Creds()
    assert walk(w, t, f"/proc/{pid}/fd").path.inode.readdir() is not None


# ---- lifetimes ----
def test_dead_and_zombie_processes(sys_):
    k, w, t = sys_
    other = add_process(k, os.getpid(), t.group, comm="child")
    pid = other.group.tgid
    status = walk(w, t, f"/proc/{pid}/status").path.inode
    exe = walk(w, t, f"/proc/{pid}/exe", follow=False).path.inode
    other.group.zombie = True
    s = status_of(w, t, f"/proc/{pid}/status")
    assert s["State"] == "Z (zombie)" and s["Name"] == "child" and s["PPid"] == "1"
    assert text(w, t, f"/proc/{pid}/stat").startswith(f"{pid} (child) Z 1 ")
    assert read_path(w, t, f"/proc/{pid}/cmdline") == b""
    assert errno_of(exe.readlink) == errno.ENOENT
    # reaped: the directory is gone and old inodes say so
    k.pids.release(pid)
    del k.pids.tasks[other.host_tid]
    assert errno_of(resolve, w, t, f"/proc/{pid}") == errno.ENOENT
    assert errno_of(status.open, os.O_RDONLY) == errno.ESRCH


def test_threads_under_task_and_by_tid(sys_):
    k, w, t = sys_
    ready, done = threading.Event(), threading.Event()
    box = {}

    def body():
        box["tid"] = threading.get_native_id()
        ready.set()
        done.wait(10)
    th = threading.Thread(target=body)
    th.start()
    try:
        ready.wait(10)
        thr = add_thread(k, t.group, box["tid"])
        for _ in range(1000):           # until the thread is asleep in done.wait()
            with open(f"/proc/self/task/{box['tid']}/stat") as f:
                if f.read().rsplit(")", 1)[1].split()[0] == "S":
                    break
            time.sleep(0.005)
        tids = [n for n, _i, _d in walk(w, t, "/proc/1/task").path.inode.readdir()]
        assert tids == ["1", str(thr.tid)]
        s = status_of(w, t, f"/proc/1/task/{thr.tid}/status")
        assert (s["Pid"], s["Tgid"]) == (str(thr.tid), "1")
        assert s["State"] == "S (sleeping)"
        assert text(w, t, f"/proc/1/task/{thr.tid}/stat").startswith(f"{thr.tid} (")
        # /proc/TID resolves but is not listed
        assert status_of(w, t, f"/proc/{thr.tid}/status")["Pid"] == str(thr.tid)
        names = [n for n, _i, _d in walk(w, t, "/proc").path.inode.readdir()]
        assert str(thr.tid) not in names
        assert "task" not in [n for n, _i, _d in
                              walk(w, t, f"/proc/1/task/{thr.tid}").path.inode.readdir()]
        # distinct, stable inode numbers
        a = walk(w, t, "/proc/1/stat").path.inode.ino
        b = walk(w, t, "/proc/1/task/1/stat").path.inode.ino
        assert a != b and a == walk(w, t, "/proc/1/stat").path.inode.ino
        k.current = thr
        assert walk(w, t, "/proc/thread-self", follow=False).path.inode.readlink() \
            == f"1/task/{thr.tid}"
    finally:
        done.set()
        th.join()


def test_directories_refuse_changes(sys_):
    k, w, t = sys_
    d = walk(w, t, "/proc/1").path.inode
    assert errno_of(d.create, "x", 0o644, 0, 0) == errno.EACCES
    assert errno_of(d.mkdir, "x", 0o755, 0, 0) == errno.EPERM
    assert errno_of(d.unlink, "status") == errno.EPERM
    root = walk(w, t, "/proc").path.inode
    assert errno_of(root.mkdir, "x", 0o755, 0, 0) == errno.EPERM
    assert errno_of(walk(w, t, "/proc/meminfo").path.inode.setattr, mode=0o666) == errno.EPERM


# ---- system-wide files ----
def test_meminfo_honours_mem_limit(sys_):
    k, w, t = sys_
    host = dict(line.split(":", 1) for line in open("/proc/meminfo"))
    plain = dict(line.split(":", 1) for line in text(w, t, "/proc/meminfo").splitlines())
    assert plain["MemTotal"].split() == host["MemTotal"].split()
    k.mem_limit = 64 << 20
    lim = {key: int(v.split()[0]) for key, v in
           (line.split(":", 1) for line in text(w, t, "/proc/meminfo").splitlines())}
    assert lim["MemTotal"] == 65536
    assert 0 <= lim["MemFree"] <= lim["MemAvailable"] <= 65536 or lim["MemFree"] <= 65536
    assert lim["MemTotal"] - lim["MemFree"] - lim["Buffers"] - lim["Cached"] >= 0


def test_version_uname_names_and_sysctls(sys_):
    k, w, t = sys_
    assert text(w, t, "/proc/version").startswith(f"Linux version {umlpy.RELEASE} ")
    assert text(w, t, "/proc/sys/kernel/osrelease") == umlpy.RELEASE + "\n"
    assert text(w, t, "/proc/sys/kernel/ostype") == "Linux\n"
    assert text(w, t, "/proc/sys/kernel/hostname") == "guesthost\n"
    k.hostname = "renamed"
    assert text(w, t, "/proc/sys/kernel/hostname") == "renamed\n"
    assert text(w, t, "/proc/sys/kernel/pid_max") == "4194304\n"
    assert int(text(w, t, "/proc/sys/fs/nr_open")) > 0
    a = text(w, t, "/proc/sys/kernel/random/boot_id")
    assert a == text(w, t, "/proc/sys/kernel/random/boot_id") and len(a) == 37
    assert "\tproc\n" in text(w, t, "/proc/filesystems")


def test_stat_loadavg_uptime_cpuinfo(sys_):
    k, w, t = sys_
    stat = dict(line.split(" ", 1) for line in text(w, t, "/proc/stat").splitlines())
    assert stat["procs_running"] == "1" and stat["processes"] == "1"
    assert stat["cpu"].split()[0].isdigit() and "btime" in stat
    la = text(w, t, "/proc/loadavg").split()
    assert la[3] == "1/1" and la[4] == "1"
    assert float(text(w, t, "/proc/uptime").split()[0]) > 0
    assert "processor" in text(w, t, "/proc/cpuinfo")


def test_attributes(sys_):
    k, w, t = sys_
    a = walk(w, t, "/proc").path.inode.getattr()
    assert st.S_ISDIR(a.mode) and st.S_IMODE(a.mode) == 0o555 and a.ino == 1
    m = walk(w, t, "/proc/meminfo").path.inode.getattr()
    assert st.S_IMODE(m.mode) == 0o444 and m.size == 0
    assert st.S_IMODE(walk(w, t, "/proc/self", follow=False).path.inode.getattr().mode) == 0o777
    p = walk(w, t, "/proc/1").path.inode.getattr()
    assert abs(p.mtime_ns - walk(w, t, "/proc/1/stat").path.inode.getattr().mtime_ns) == 0
    assert p.mtime_ns >= k.vfs.mounts.root.fs.boot_ns - 10**12   # process start, host clock
    assert walk(w, t, "/proc").path.fs.statfs().f_type == 0x9FA0
