"""Kernel state for file-system unit tests (no guest): real ThreadGroup, Task,
Creds and PidNamespace objects describing this test process itself, a real
mount table and handle registry, and a small descriptor table answering from
this process's own /proc/self/fd."""
from __future__ import annotations

import errno
import os
from typing import Dict, Optional

from umlpy.fs.devpts import PtyTable
from umlpy.fs.procfs import ProcFs
from umlpy.fs.synthetic import StaticDir, SynthFs
from umlpy.fs.sysfs import SysFs
from umlpy.host import procinfo
from umlpy.kernel.fds import FdInfo
from umlpy.kernel.task import Creds, FsContext, PidNamespace, Task, ThreadGroup
from umlpy.vfs.handles import Handles
from umlpy.vfs.mount import MountTable, Path
from umlpy.vfs.namei import Walker


class TreeFs(SynthFs):
    """A small fixed tree to serve as the root file system."""
    type_name = "treefs"

    def __init__(self, kernel, dirs=("proc", "sys", "dev/pts", "home/user", "srv")) -> None:
        super().__init__(kernel)
        self.root = StaticDir(self, ino=1, perm=0o755)
        for d in dirs:
            self.root.makedirs(d)


class SelfFds:
    """kernel.fds for tests: this process's real descriptors; `paths` says
    which of them the 'VFS' knows a Path for."""

    def __init__(self) -> None:
        self.paths: Dict[int, Path] = {}

    def list(self, task):
        return sorted(int(n) for n in os.listdir("/proc/self/fd"))

    def info(self, task, fd: int) -> FdInfo:
        try:
            text = os.readlink(f"/proc/self/fd/{fd}")
            with open(f"/proc/self/fdinfo/{fd}") as f:
                lines = dict(line.split(":", 1) for line in f if ":" in line)
        except FileNotFoundError:
            raise OSError(errno.EBADF, "bad file descriptor") from None
        path = self.paths.get(fd)
        return FdInfo(path, text if path is None else "/guest/known", int(lines["flags"], 8),
                      int(lines["pos"]), int(lines["mnt_id"]))

    def reopen(self, task, fd: int, flags: int) -> int:
        return os.open(f"/proc/self/fd/{fd}", flags | os.O_CLOEXEC)


class VfsState:
    def __init__(self, scratch: str) -> None:
        self.mounts = MountTable()
        self.handles = Handles(scratch)


class KernelState:
    """The attributes procfs, sysfs, devpts and the device table read from the kernel."""

    def __init__(self, scratch: str) -> None:
        self.pids = PidNamespace()
        self.current: Optional[Task] = None
        self.fds = SelfFds()
        self.vfs = VfsState(scratch)
        self.hostname = "guesthost"
        self.domainname = "(none)"
        self.mem_limit: Optional[int] = None
        self.ptys = PtyTable(adopt_terminal=False)


def add_process(k: KernelState, host_pid: int, parent: Optional[ThreadGroup] = None,
                creds: Optional[Creds] = None, comm: str = "init") -> Task:
    """Register a real host process (by host pid) as a guest process."""
    tgid = k.pids.alloc(host_pid)
    group = ThreadGroup(tgid, host_pid, parent)
    group.comm = comm
    root = k.vfs.mounts.root_path()
    task = Task(tgid, host_pid, group, creds or Creds(), FsContext(root, root))
    group.threads[host_pid] = task
    k.pids.groups[tgid] = group
    k.pids.tasks[host_pid] = task
    return task


def add_thread(k: KernelState, group: ThreadGroup, host_tid: int) -> Task:
    tid = k.pids.alloc(host_tid)
    lead = group.threads[group.host_tgid]
    task = Task(tid, host_tid, group, lead.creds, lead.fs)
    group.threads[host_tid] = task
    k.pids.tasks[host_tid] = task
    return task


def boot(scratch: str):
    """A kernel state with a root tree, /proc and /sys mounted, and this test
    process as guest pid 1, the current task."""
    k = KernelState(scratch)
    tree = TreeFs(k)
    table = k.vfs.mounts
    table.set_root(tree, "rootfs")
    walker = Walker(table)
    root = table.root_path()
    proc = ProcFs(k)
    table.attach(proc, walker.walk("/proc", root, root, None).path, "proc")
    sysfs = SysFs(k)
    table.attach(sysfs, walker.walk("/sys", root, root, None).path, "sysfs")
    task = add_process(k, os.getpid(), comm="pytest-init")
    k.current = task
    return k, walker, task


def walk(walker: Walker, task: Task, path: str, follow: bool = True):
    return walker.walk(path, task.fs.cwd, task.fs.root, task.creds, follow)


def read_path(walker: Walker, task: Task, path: str) -> bytes:
    lk = walk(walker, task, path)
    fd = lk.must_exist().inode.open(os.O_RDONLY)
    try:
        return procinfo.read_fd(fd)
    finally:
        os.close(fd)
