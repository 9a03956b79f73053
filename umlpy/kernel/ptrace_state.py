"""Guest ptrace: who traces whom, and the stop a guest tracee is held in.

The kernel is the host tracer of every guest task, so a guest tracer's ptrace
is virtual: a tracee's host stop that the guest tracer must see is not
resumed; it becomes a Stop the tracer collects with wait and ends with
PTRACE_CONT and friends (see ptrace_stops, ptrace_wait, syscalls/ptrace).
"""
from __future__ import annotations

import errno
import signal
from typing import Optional

from umlpy.record import Record

# requests' options (PTRACE_O_*) and events (PTRACE_EVENT_*)
O_TRACESYSGOOD, O_TRACEFORK, O_TRACEVFORK, O_TRACECLONE = 0x1, 0x2, 0x4, 0x8
O_TRACEEXEC, O_TRACEVFORKDONE, O_TRACEEXIT, O_TRACESECCOMP = 0x10, 0x20, 0x40, 0x80
O_EXITKILL, O_SUSPEND_SECCOMP = 0x100000, 0x200000
O_MASK = 0xFF | O_EXITKILL | O_SUSPEND_SECCOMP
EVENT_FORK, EVENT_VFORK, EVENT_CLONE, EVENT_EXEC = 1, 2, 3, 4
EVENT_VFORK_DONE, EVENT_EXIT, EVENT_SECCOMP, EVENT_STOP = 5, 6, 7, 128

# the host options every guest task carries (csrc/accel.c uml_spawn)
HOST_OPTIONS = (O_TRACESYSGOOD | O_TRACEFORK | O_TRACEVFORK | O_TRACECLONE | O_TRACEEXEC
                | O_TRACESECCOMP | O_EXITKILL)

# how the guest tracer last resumed its tracee
MODE_CONT, MODE_SYSCALL, MODE_STEP = 0, 1, 2

# kinds of stop
SYSCALL_ENTRY, SYSCALL_EXIT, SIGNAL, GROUP, EVENT, TRAP = range(6)


class Stop(Record):
    """A stop the guest tracer sees. `how`/`value`: what the kernel was about
    to do with the host task (tracer.RESUME_*), done when the tracer resumes it."""
    __slots__ = _fields = ("kind", "sig", "event", "how", "value", "siginfo", "fake",
                           "continued", "reported", "host_listening")

    def __init__(self, kind: int, sig: int = 0, event: int = 0, how: int = 0, value: int = 0,
                 siginfo: Optional[bytes] = None, fake: bool = False, continued: bool = False,
                 reported: bool = False, host_listening: bool = False) -> None:
        self.kind = kind
        self.sig = sig                  # SIGNAL: the signal to deliver; GROUP: the stop signal
        self.event = event
        self.how = how
        self.value = value
        self.siginfo = siginfo          # SIGNAL: as the guest sees it
        self.fake = fake                # a signal stop with no host signal behind it
        self.continued = continued      # GROUP: SIGCONT came while the tracer looked at it
        self.reported = reported        # wait returned it
        # GROUP at attach: the host thread is still in LISTEN
        self.host_listening = host_listening


class Link:
    """One tracee's side of a ptrace relationship. Equal only to itself (hashable
    by identity)."""
    __slots__ = _fields = ("tracer", "seized", "options", "mode", "stop", "msg", "entry_nr",
                           "want_trap", "new_child", "listen_retrap", "host_options")
    __repr__ = Record.__repr__     # a record's repr, without its field equality

    def __init__(self, tracer: object, seized: bool, options: int = 0, mode: int = MODE_CONT,
                 stop: Optional[Stop] = None, msg: int = 0, entry_nr: Optional[int] = None,
                 want_trap: int = 0, new_child: bool = False, listen_retrap: bool = False,
                 host_options: int = HOST_OPTIONS) -> None:
        self.tracer = tracer            # the tracer's Task (a thread, as in Linux)
        self.seized = seized
        self.options = options
        self.mode = mode
        self.stop = stop
        self.msg = msg                  # PTRACE_GETEVENTMSG
        self.entry_nr = entry_nr        # the guest's syscall number at the last entry stop
        self.want_trap = want_trap      # guest PTRACE_INTERRUPTs not yet seen as a trap stop
        self.new_child = new_child      # auto-attached: its first host stop is shown
        # LISTEN came before the host re-trapped (attach_stopped)
        self.listen_retrap = listen_retrap
        self.host_options = host_options    # what the host tracee carries now

    def wanted_host_options(self) -> int:
        return HOST_OPTIONS | (self.options & O_TRACEEXIT)

    def status(self) -> int:
        """The wait status of the current stop."""
        s = self.stop
        k = s.kind
        if k in (SYSCALL_ENTRY, SYSCALL_EXIT):
            sig = signal.SIGTRAP | (0x80 if self.options & O_TRACESYSGOOD else 0)
            return sig << 8 | 0x7F
        if k == SIGNAL:
            return s.sig << 8 | 0x7F
        if k == GROUP:
            return (EVENT_STOP << 16 if self.seized else 0) | s.sig << 8 | 0x7F
        if k == EVENT:
            return s.event << 16 | signal.SIGTRAP << 8 | 0x7F
        return EVENT_STOP << 16 | signal.SIGTRAP << 8 | 0x7F     # TRAP


def may_attach(tracer, target) -> bool:
    """Linux's PTRACE_MODE_ATTACH_REALCREDS on guest credentials: every id of
    the target is the caller's real one, or the caller is guest root."""
    c, t = tracer.creds, target.creds
    if c.euid == 0:
        return True
    return (c.ruid == t.ruid == t.euid == t.suid) and (c.rgid == t.rgid == t.egid == t.sgid)


def link(k, tracer, tracee, seized: bool, options: int, on_resume) -> Link:
    """Make `tracer` (a Task) the tracer of `tracee`; EPERM as Linux gives."""
    if tracee.ptrace is not None or tracee.group is tracer.group:
        raise OSError(errno.EPERM, "already traced, or tracing itself")
    lk = Link(tracer, seized, options)
    tracee.ptrace = lk
    group = tracer.group
    if group.tracees is None:
        group.tracees, group.ptrace_exits = {}, []
    group.tracees[tracee] = None
    k.tracer.holds[tracee.host_tid] = on_resume
    k.tracer.block_fast_stops("guest ptrace")   # a tracer sees every stop, from now on
    return lk


def unlink(k, tracee) -> Optional[Link]:
    lk = tracee.ptrace
    if lk is None:
        return None
    tracee.ptrace = None
    tracees = lk.tracer.group.tracees
    if tracees is not None:
        tracees.pop(tracee, None)
    if tracee.ptrace_park is None:
        k.tracer.holds.pop(tracee.host_tid, None)
    return lk
