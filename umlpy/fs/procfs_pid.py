"""/proc/PID and /proc/PID/task/TID: one guest process or thread.

Every inode here holds the ThreadGroup and Task objects it describes, not
their numbers: once the process is gone (or its pid reused) the inode finds
its objects no longer in the pid namespace and answers ESRCH/ENOENT, never
another process's data. Contents are the host's /proc/<host tid> files with
pids, credentials and paths replaced by the guest's (procfs_text.py).
"""
from __future__ import annotations

import errno
import os
import stat as st
from typing import Iterable, Optional, Tuple

from umlpy.fs import procfs_text as text
from umlpy.fs.synthetic import GenFile, SynthDir, SynthInode, fail
from umlpy.host import procinfo
from umlpy.vfs.inode import Inode
from umlpy.vfs.mountinfo import mountinfo_text, mounts_text

FILE, DIR, LINK = "file", "dir", "link"
# name, kind, permission bits, guarded by the ptrace access rule
PID_ENTRIES = (
    ("auxv", FILE, 0o400, True),       # gdb finds a PIE's load address in it
    ("cgroup", FILE, 0o444, False),
    ("cmdline", FILE, 0o444, False),
    ("comm", FILE, 0o444, False),
    ("cwd", LINK, 0o777, True),
    ("environ", FILE, 0o400, True),
    ("exe", LINK, 0o777, True),
    ("fd", DIR, 0o500, True),
    ("fdinfo", DIR, 0o555, True),
    ("io", FILE, 0o400, True),
    ("limits", FILE, 0o444, False),
    ("maps", FILE, 0o444, True),
    ("mem", FILE, 0o600, True),         # gdb reads and writes tracee memory through it
    ("mountinfo", FILE, 0o444, False),
    ("mounts", FILE, 0o444, False),
    ("root", LINK, 0o777, True),
    ("stat", FILE, 0o444, False),
    ("statm", FILE, 0o444, False),
    ("status", FILE, 0o444, False),
    ("task", DIR, 0o555, False),
)
_ENTRY = {e[0]: (i + 1, e) for i, e in enumerate(PID_ENTRIES)}
FD_LINK, FDINFO_FILE = 100, 101
SCOPE_PID, SCOPE_TASK = 0, 1
CLK_TCK = os.sysconf("SC_CLK_TCK")
# memfds the kernel itself makes (exec images): never named to the guest
KERNEL_MEMFD = "/memfd:umlpy"


def pid_ino(tid: int, scope: int, entry: int = 0, n: int = 0) -> int:
    """Stable inode numbers: one per (thread, view, entry, fd); all above 2**32,
    clear of the static entries' small numbers."""
    return ((tid << 1 | scope) << 32) | (entry << 24) | (n & 0xFFFFFF)


def may_ptrace(kernel, group, target_creds) -> bool:
    """Linux's ptrace access rule (PTRACE_MODE_READ_FSCREDS): the same process,
    a caller whose fsuid/fsgid match all the target's ids, or guest root."""
    cur = kernel.current
    if cur is None or cur.group is group:
        return True                 # the kernel itself, or the process looking at itself
    c = cur.creds
    if c.euid == 0:
        return True                 # CAP_SYS_PTRACE
    if target_creds is None:
        return False
    t = target_creds
    return (c.fsuid == t.ruid == t.euid == t.suid) and (c.fsgid == t.rgid == t.egid == t.sgid)


class ProcTarget:
    """One process (or thread) as a set of generators for its files."""

    def __init__(self, fs, group, task, scope: int) -> None:
        self.fs = fs
        self.kernel = fs.kernel
        self.group = group
        self.task = task                # None for a zombie with no thread left
        self.scope = scope

    # ---- identity and liveness ----
    @property
    def tid(self) -> int:
        return self.task.tid if self.task is not None else self.group.tgid

    def exists(self) -> bool:
        return self.kernel.pids.groups.get(self.group.tgid) is self.group

    def live(self) -> bool:
        t = self.task
        return (t is not None and not self.group.zombie and self.exists()
                and self.kernel.pids.tasks.get(t.host_tid) is t)

    def require(self) -> None:
        if not self.exists():
            raise fail(errno.ESRCH)

    def creds(self):
        return self.task.creds if self.task is not None else getattr(self.group, "creds", None)

    def check_ptrace(self) -> None:
        if not may_ptrace(self.kernel, self.group, self.creds()):
            raise fail(errno.EACCES)

    def owner(self) -> Tuple[int, int]:
        c = self.creds()
        return (c.euid, c.egid) if c is not None else (0, 0)

    def comm(self) -> str:
        return (getattr(self.task, "comm", None) if self.task is not None else None) \
            or self.group.comm

    # ---- host reads ----
    def host(self, name: str) -> str:
        if not self.live():
            raise ProcessLookupError(errno.ESRCH, "no such process")
        t = self.task
        if self.scope == SCOPE_TASK:
            raw = procinfo.read_proc_file(self.group.host_tgid, f"task/{t.host_tid}/{name}")
        else:
            raw = procinfo.read_proc_file(t.host_tid, name)
        return raw.decode("utf-8", "surrogateescape")

    def host_or(self, name: str, default: str = "") -> str:
        try:
            return self.host(name)
        except (ProcessLookupError, FileNotFoundError):
            return default

    def start_ns(self) -> int:
        return self.fs.start_ns(self.group, self.task)

    # ---- the guest's view of ids and state ----
    def guest_id(self, host_id: int) -> int:
        return self.kernel.pids.to_guest(host_id) if host_id > 0 else host_id

    def state(self, host_letter: str) -> str:
        """The state the guest should see: a task stopped only because the
        kernel is serving it (ptrace stop) is running or asleep in a syscall."""
        if not self.live():
            return "Z"
        if self.task is self.kernel.current:
            return "R"
        if host_letter == "t":
            return "T" if getattr(self.task, "stopped", False) else "S"
        return host_letter

    def ids(self, raw_stat: Optional[str]) -> Tuple[str, int, int, int]:
        """(state, pgrp, session, tpgid) from a host stat line (None: a zombie)."""
        if raw_stat is None:
            return "Z", getattr(self.group, "pgid", 0), getattr(self.group, "sid", 0), -1
        _p, _c, f = text.split_stat(raw_stat)
        return (self.state(f[0]), self.guest_id(int(f[2])), self.guest_id(int(f[3])),
                self.guest_id(int(f[5])))

    def _raw_stat(self) -> Optional[str]:
        try:
            return self.host("stat")
        except (ProcessLookupError, FileNotFoundError):
            return None

    # ---- generators ----
    def gen_stat(self) -> str:
        raw = self._raw_stat()
        state, pgrp, sid, tpgid = self.ids(raw)
        v = text.StatView(self.tid, self.comm(), state, self.group.ppid, pgrp, sid, tpgid,
                          hide_addrs=not may_ptrace(self.kernel, self.group, self.creds()))
        if raw is None:
            start = max(0, (self.start_ns() - self.fs.host_boot_ns()) * CLK_TCK // 10**9)
            return text.synth_stat(v, start, max(1, len(self.group.threads)))
        return text.rewrite_stat(raw, v)

    def status_view(self, raw_stat: Optional[str]) -> text.StatusView:
        state, pgrp, sid, _tpgid = self.ids(raw_stat)
        c = self.creds()
        t = self.task
        uids = (c.ruid, c.euid, c.suid, c.fsuid) if c else (0, 0, 0, 0)
        gids = (c.rgid, c.egid, c.sgid, c.fsgid) if c else (0, 0, 0, 0)
        full = text.CAP_FULL
        return text.StatusView(
            name=self.comm(), state=state, tgid=self.group.tgid, pid=self.tid,
            ppid=self.group.ppid, pgrp=pgrp, session=sid,
            umask=t.fs.umask if t is not None else 0o022, uids=uids, gids=gids,
            groups=list(c.groups) if c else [],
            tracer=getattr(t, "tracer_pid", 0) or 0,
            cap_prm=full if (uids[0] == 0 or uids[1] == 0) else 0,
            cap_eff=full if uids[1] == 0 else 0,
            no_new_privs=int(bool(getattr(t, "no_new_privs", False))),
            seccomp=int(getattr(t, "seccomp_mode", 0) or 0),
            threads=max(1, len(self.group.threads)))

    def gen_status(self) -> str:
        raw_stat = self._raw_stat()
        view = self.status_view(raw_stat)
        if raw_stat is None:
            return text.synth_status(view)
        try:
            return text.rewrite_status(self.host("status"), view)
        except (ProcessLookupError, FileNotFoundError):
            return text.synth_status(view)

    def gen_statm(self) -> str:
        return self.host_or("statm", "0 0 0 0 0 0 0\n")

    def gen_cmdline(self) -> bytes:
        return self.host_or("cmdline").encode("utf-8", "surrogateescape")

    def gen_auxv(self) -> bytes:
        return self.host_or("auxv").encode("utf-8", "surrogateescape")

    def gen_environ(self) -> bytes:
        return self.host_or("environ").encode("utf-8", "surrogateescape")

    def gen_comm(self) -> str:
        return self.comm() + "\n"

    def gen_limits(self) -> str:
        return self.host_or("limits")

    def gen_io(self) -> str:
        return self.host_or("io")

    def gen_cgroup(self) -> str:
        return text.cgroup_text()

    def gen_mounts(self) -> str:
        if not self.live():
            return ""
        return mounts_text(self.kernel.vfs.mounts, self.task.fs.root)

    def gen_mountinfo(self) -> str:
        if not self.live():
            return ""
        return mountinfo_text(self.kernel.vfs.mounts, self.task.fs.root)

    def gen_maps(self) -> str:
        raw = self.host_or("maps")
        if not raw:
            return ""
        try:
            exe_key = procinfo.exe_identity(self.task.host_tid)
        except OSError:
            exe_key = None
        return text.rewrite_maps(raw, lambda dev, ino, name: self.map_name(dev, ino, name,
                                                                            exe_key))

    def map_name(self, dev: int, ino: int, name: str, exe_key) -> str:
        """A mapping's name for the guest: its guest path when the VFS knows the
        file, the guest's own memfds and shared memory as Linux names them,
        and nothing (rather than a host path) otherwise."""
        p = self.kernel.vfs.handles.path_of_key((dev, ino))
        if p is not None:
            return self.fs.path_text(p)
        if exe_key is not None and (dev, ino) == exe_key:
            exe = getattr(self.group, "exe_path", None)
            return self.fs.path_text(exe) if exe is not None else ""
        if name.startswith("/memfd:") and not name.startswith(KERNEL_MEMFD):
            return name
        if name == "/dev/zero (deleted)" or name.startswith("/SYSV"):
            return name
        return ""

    def gen_fdinfo(self, fd: int) -> str:
        info = self.fd_info(fd)
        host = self.host_or(f"fdinfo/{fd}")
        ino = info.path.inode.ino if info.path is not None else _host_ino(host)
        return text.fdinfo_text(info.pos, info.flags, info.mnt_id, ino, host)

    def fd_info(self, fd: int):
        if not self.live():
            raise fail(errno.ENOENT)
        try:
            return self.kernel.fds.info(self.task, fd)
        except OSError as e:
            if e.errno == errno.EBADF:
                raise fail(errno.ENOENT) from None
            raise

    def fd_list(self):
        if not self.live():
            return []
        return sorted(self.kernel.fds.list(self.task))


def _host_ino(fdinfo: str) -> int:
    for line in fdinfo.splitlines():
        if line.startswith("ino:"):
            return int(line.split()[1])
    return 0


class _Bound:
    """Mixin for inodes of one process: owner and times follow the process."""
    target: ProcTarget

    def owner(self) -> Tuple[int, int]:
        return self.target.owner()

    def time_ns(self) -> int:
        return self.target.start_ns()


class PidFile(_Bound, GenFile):
    def __init__(self, target: ProcTarget, ino: int, gen, perm: int, guarded: bool) -> None:
        GenFile.__init__(self, target.fs, ino, gen, perm)
        self.target = target
        self.guarded = guarded

    def check_access(self) -> None:
        self.target.require()
        if self.guarded:
            self.target.check_ptrace()


class MemFile(PidFile):
    """/proc/PID/mem: the host's, opened by the kernel once the guest's ptrace
    rule allows it; reads and writes then run natively."""

    def __init__(self, target: ProcTarget, ino: int, perm: int) -> None:
        super().__init__(target, ino, lambda: b"", perm, True)

    def open(self, flags: int) -> int:
        self.check_access()
        t = self.target
        if not t.live():
            raise fail(errno.ESRCH)
        return procinfo.open_mem(t.task.host_tid, flags)


class MagicLink(_Bound, SynthInode):
    """exe, cwd, root, fd/N: readlink shows the text, a walk jumps to the object."""

    def __init__(self, target: ProcTarget, ino: int, which: str, fd: int = -1,
                 perm: int = 0o777) -> None:
        SynthInode.__init__(self, target.fs, ino, st.S_IFLNK | perm)
        self.target = target
        self.which = which
        self.fd = fd

    def _check(self) -> None:
        if not self.target.live():
            raise fail(errno.ENOENT)
        self.target.check_ptrace()

    def _path(self):
        t = self.target
        if self.which == "exe":
            p = getattr(t.group, "exe_path", None)
        elif self.which == "cwd":
            p = t.task.fs.cwd
        else:
            p = t.task.fs.root
        if p is None:
            raise fail(errno.ENOENT)
        return p

    def readlink(self) -> str:
        self._check()
        if self.which == "fd":
            return self.target.fd_info(self.fd).text
        p = self._path()
        text_ = self.fs.path_text(p) or "/"
        try:
            gone = p.inode.getattr().nlink == 0
        except OSError:
            gone = True
        return text_ + " (deleted)" if gone else text_

    def magic_target(self):
        self._check()
        if self.which == "fd":
            return self.target.fd_info(self.fd).path
        return self._path()

    def open(self, flags: int) -> int:
        """Reached only for descriptors with no path (pipes, sockets...): a new
        host descriptor of the same object."""
        self._check()
        if self.which != "fd":
            raise fail(errno.ENOENT)
        self.target.fd_info(self.fd)
        return self.target.kernel.fds.reopen(self.target.task, self.fd, flags)

    def getattr(self):
        a = super().getattr()
        a.size = 64
        return a


class _PidDirBase(_Bound, SynthDir):
    def __init__(self, target: ProcTarget, ino: int, perm: int) -> None:
        SynthDir.__init__(self, target.fs, ino, perm)
        self.target = target


class PidDir(_PidDirBase):
    """/proc/PID (scope PID) or /proc/PID/task/TID (scope TASK)."""

    def __init__(self, target: ProcTarget) -> None:
        super().__init__(target, pid_ino(target.tid, target.scope), 0o555)

    def _names(self) -> Iterable[str]:
        for name, kind, _perm, _g in PID_ENTRIES:
            if name == "task" and self.target.scope == SCOPE_TASK:
                continue
            yield name

    def child(self, name: str) -> Optional[Inode]:
        t = self.target
        if name not in _ENTRY or (name == "task" and t.scope == SCOPE_TASK):
            return None
        if not t.exists():
            return None
        idx, (_n, kind, perm, guarded) = _ENTRY[name]
        ino = pid_ino(t.tid, t.scope, idx)
        if name == "mem":
            return MemFile(t, ino, perm)
        if kind == FILE:
            return PidFile(t, ino, getattr(t, "gen_" + name), perm, guarded)
        if kind == LINK:
            return MagicLink(t, ino, name)
        if name == "fd":
            return FdDir(t, ino, perm, FD_LINK)
        if name == "fdinfo":
            return FdDir(t, ino, perm, FDINFO_FILE)
        return TaskListDir(t, ino, perm)

    def children(self):
        pairs = ((n, self.child(n)) for n in self._names())
        return [(n, c) for n, c in pairs if c is not None]

    def nlink(self) -> int:
        return 2 + sum(1 for e in PID_ENTRIES if e[1] == DIR)


class FdDir(_PidDirBase):
    """fd/ (magic links) or fdinfo/ (files), one entry per open descriptor."""

    def __init__(self, target: ProcTarget, ino: int, perm: int, kind: int) -> None:
        super().__init__(target, ino, perm)
        self.kind = kind

    def _entry(self, fd: int) -> Inode:
        t = self.target
        ino = pid_ino(t.tid, t.scope, self.kind, fd)
        if self.kind == FDINFO_FILE:
            return PidFile(t, ino, lambda: t.gen_fdinfo(fd), 0o444, True)
        try:
            acc = t.fd_info(fd).flags & os.O_ACCMODE
        except OSError:
            acc = os.O_RDWR
        perm = {os.O_RDONLY: 0o500, os.O_WRONLY: 0o300}.get(acc, 0o700)
        return MagicLink(t, ino, "fd", fd, perm)

    def child(self, name: str) -> Optional[Inode]:
        if not name.isdigit() or (name.startswith("0") and name != "0"):
            return None
        self.target.check_ptrace()
        fd = int(name)
        try:
            self.target.fd_info(fd)
        except OSError:
            return None
        return self._entry(fd)

    def children(self):
        self.target.check_ptrace()
        return [(str(fd), self._entry(fd)) for fd in self.target.fd_list()]


class TaskListDir(_PidDirBase):
    """/proc/PID/task: one directory per thread."""

    def _threads(self):
        return sorted(self.target.group.threads.values(), key=lambda t: t.tid)

    def child(self, name: str) -> Optional[Inode]:
        if not name.isdigit():
            return None
        g = self.target.group
        for task in self._threads():
            if task.tid == int(name):
                return PidDir(ProcTarget(self.fs, g, task, SCOPE_TASK))
        return None

    def children(self):
        g = self.target.group
        return [(str(t.tid), PidDir(ProcTarget(self.fs, g, t, SCOPE_TASK)))
                for t in self._threads()]


def leader(group):
    """The task that speaks for a process: its leader thread, else any thread."""
    t = group.threads.get(group.host_tgid)
    if t is None and group.threads:
        t = next(iter(group.threads.values()))
    return t


def pid_dir(fs, kernel, name: str) -> Optional[PidDir]:
    """/proc/<name>: a process by its guest pid, or a thread by its tid (Linux
    resolves both, and lists only processes)."""
    if not name.isdigit() or (name.startswith("0")):
        return None
    nr = int(name)
    group = kernel.pids.groups.get(nr)
    if group is not None:
        return PidDir(ProcTarget(fs, group, leader(group), SCOPE_PID))
    host = kernel.pids.to_host(nr)
    task = kernel.pids.tasks.get(host) if host is not None else None
    if task is None or task.tid != nr:
        return None
    return PidDir(ProcTarget(fs, task.group, task, SCOPE_PID))
