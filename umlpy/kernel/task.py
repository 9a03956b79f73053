"""Tasks, thread groups, credentials and the guest pid namespace.

A guest task is a host thread. The kernel keeps, for each, what the guest may
see of it (guest pid/tid, parent, credentials, cwd) and what the host needs
to serve it (host tid, pending syscall state).
"""
from __future__ import annotations

import errno
from typing import Callable, Dict, List, Optional

from umlpy.record import Record

# clone(2) flags the process model reads (here, a module that imports no
# syscall table, so that umlpy.syscalls may take them whatever imports first)
CLONE_VM = 0x100
CLONE_FS = 0x200
CLONE_VFORK = 0x4000
CLONE_PARENT = 0x8000
CLONE_THREAD = 0x10000
CLONE_PARENT_SETTID = 0x100000
CLONE_CHILD_SETTID = 0x1000000

CHILDREN_UNKNOWN = 0xFFFFFFFF       # csrc/accel_int.h UML_CHILDREN_UNKNOWN

PID_MAX = 4194304
DEPARTED_MAX = 256              # released ids remembered for late signals (as C keeps them)


class Creds(Record):
    """The guest's view of a task's credentials (the host user never changes)."""
    __slots__ = _fields = ("ruid", "euid", "suid", "fsuid", "rgid", "egid", "sgid", "fsgid",
                           "groups")

    def __init__(self, ruid: int = 0, euid: int = 0, suid: int = 0, fsuid: int = 0,
                 rgid: int = 0, egid: int = 0, sgid: int = 0, fsgid: int = 0,
                 groups: Optional[List[int]] = None) -> None:
        self.ruid = ruid
        self.euid = euid
        self.suid = suid
        self.fsuid = fsuid
        self.rgid = rgid
        self.egid = egid
        self.sgid = sgid
        self.fsgid = fsgid
        self.groups = [] if groups is None else groups     # a fresh list per Creds

    def clone(self) -> "Creds":
        # every fork: slot by slot, 10x faster than copy.copy (its __reduce_ex__)
        new = Creds.__new__(Creds)
        new.ruid = self.ruid
        new.euid = self.euid
        new.suid = self.suid
        new.fsuid = self.fsuid
        new.rgid = self.rgid
        new.egid = self.egid
        new.sgid = self.sgid
        new.fsgid = self.fsgid
        new.groups = list(self.groups)
        return new

    @property
    def privileged(self) -> bool:
        return self.euid == 0


class FsContext(Record):
    """cwd, root (vfs Paths) and umask: shared between tasks cloned with CLONE_FS."""
    __slots__ = _fields = ("cwd", "root", "umask")

    def __init__(self, cwd: object, root: object, umask: int = 0o022) -> None:
        self.cwd = cwd
        self.root = root
        self.umask = umask

    def clone(self) -> "FsContext":
        return FsContext(self.cwd, self.root, self.umask)


class ThreadGroup:
    """A guest process."""

    # guest ptrace (umlpy/kernel/ptrace_*.py): None until a thread of this process
    # traces something, then {Task: None} of its tracees and the exits of those
    # whose death only the tracer can see (threads, other parents' children)
    tracees: Optional[Dict["Task", None]] = None
    ptrace_exits: Optional[List[tuple]] = None

    def __init__(self, tgid: int, host_tgid: int, parent: Optional["ThreadGroup"]) -> None:
        self.tgid = tgid
        self.host_tgid = host_tgid
        self.parent = parent
        # children not seen reaped (lifecycle.py): with none, C fails a wait4
        # at its entry once the host agrees (csrc/faststops.c)
        self.children = 0
        self.in_parent_count = parent is not None   # counted in its parent's
        self.threads: Dict[int, "Task"] = {}     # host tid -> Task
        self._exe = ""          # guest path of the running image, or a function giving it
        self.exe_path = None    # ... and its vfs Path
        self.comm = ""
        self.zombie = False
        self.exit_status: Optional[int] = None    # raw wait status once dead

    def children_for_accel(self) -> int:
        """`children` as C takes it: unknown for a multi-threaded process,
        whose other threads' children C does not look for."""
        return self.children if len(self.threads) <= 1 else CHILDREN_UNKNOWN

    @property
    def exe(self) -> str:
        """The guest path of the running image (worked out when first asked:
        most execs are never asked)."""
        if callable(self._exe):
            self._exe = self._exe()
        return self._exe

    def set_exe(self, path, text) -> None:
        """path: the image's vfs Path; text: its guest path, or a function giving it."""
        self.exe_path, self._exe = path, text

    def inherit_exe(self, parent: "ThreadGroup") -> None:
        self.exe_path, self._exe = parent.exe_path, parent._exe

    @property
    def ppid(self) -> int:
        return self.parent.tgid if self.parent is not None else 0

    def __repr__(self) -> str:
        return f"<ThreadGroup {self.tgid} host={self.host_tgid} {self.comm}>"


class Task:
    """A guest thread."""

    ptrace = None           # a kernel.ptrace_state.Link while a guest tracer traces it
    ptrace_park = None      # a wait of this (tracer) task held until a tracee reports
    ptrace_kicks = 0        # host interrupts the kernel sent it (to end such a wait)
    ptrace_jobstop = 0      # the signal of the group stop it is in (the kernel LISTENs)

    def __init__(self, tid: int, host_tid: int, group: ThreadGroup, creds: Creds,
                 fs: FsContext) -> None:
        self.tid = tid
        self.host_tid = host_tid
        self.group = group
        self.creds = creds
        self.fs = fs
        # state of a syscall under way at a ptrace stop
        self.exit_handler: Optional[Callable] = None
        self.pending_call = None
        self.pending_exec = None
        self.started = False            # first stop seen
        self.start_armed = False        # C may take the first stop (lifecycle.on_fork)
        self.clone_info = None          # (flags, ctid) to apply at first stop
        self.refused_child = 0          # host pid its fork made past the task limit (births.py)
        self.reaping = None             # (child, saved regs) while births.py reaps it
        self.mem = None                 # its GuestMemory, set by the kernel

    @property
    def tracer_pid(self) -> int:
        """TracerPid of /proc/PID/status: the guest tracer's process, or 0."""
        link = self.ptrace
        return link.tracer.group.tgid if link is not None else 0

    @property
    def is_leader(self) -> bool:
        return self.host_tid == self.group.host_tgid

    def __repr__(self) -> str:
        return f"<Task {self.tid}/{self.group.tgid} host={self.host_tid}>"


class PidNamespace:
    """Guest pids: allocation and translation to and from host ids."""

    def __init__(self) -> None:
        self._next = 1
        self.by_guest: Dict[int, int] = {}    # guest id -> host id
        self.by_host: Dict[int, int] = {}     # host id -> guest id
        self.tasks: Dict[int, Task] = {}      # host tid -> Task (live)
        self.groups: Dict[int, ThreadGroup] = {}   # guest tgid -> ThreadGroup (live or zombie)
        # host id -> guest id of released ids, until the host id is used again:
        # a SIGCHLD delivered after its child was reaped still names the child
        self.departed: Dict[int, int] = {}

    def alloc(self, host_id: int) -> int:
        self.departed.pop(host_id, None)
        old = self.by_host.get(host_id)
        if old is not None:             # a host pid reused: its previous owner is gone
            self.release(old)
        for _ in range(PID_MAX):
            nr = self._next
            self._next = nr + 1 if nr + 1 < PID_MAX else 300   # Linux wraps to 300
            if nr not in self.by_guest:
                self.by_guest[nr] = host_id
                self.by_host[host_id] = nr
                return nr
        raise OSError(errno.EAGAIN, "no free pid")

    def release(self, guest_id: int) -> None:
        host = self.by_guest.pop(guest_id, None)
        if host is not None and self.by_host.get(host) == guest_id:
            del self.by_host[host]
            self.departed[host] = guest_id
            if len(self.departed) > DEPARTED_MAX:
                del self.departed[next(iter(self.departed))]
        self.groups.pop(guest_id, None)

    def to_host(self, guest_id: int) -> Optional[int]:
        return self.by_guest.get(guest_id)

    def to_guest(self, host_id: int) -> int:
        """A host id as the guest sees it: 0 when outside the namespace, as Linux does."""
        return self.by_host.get(host_id, 0)

    def sender_to_guest(self, host_id: int) -> int:
        """to_guest for a signal's sender: also a process gone since it sent."""
        return self.by_host.get(host_id) or self.departed.get(host_id, 0)

    def live_groups(self) -> List[ThreadGroup]:
        return [g for g in self.groups.values() if not g.zombie]
