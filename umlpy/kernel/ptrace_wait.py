"""wait4 and waitid of a guest tracer: its tracees' stops and deaths.

A tracee's stop exists only in the kernel, so a tracer's wait first looks for
one. Otherwise, when the tracer has real children the wait may match, the host
runs it (it reports those children's deaths); a stop arriving meanwhile
interrupts it (PTRACE_INTERRUPT, the host restarts the call and it comes back
here). With nothing for the host to wait for, the tracer is parked at its
syscall stop until a tracee reports (or none is left: ECHILD).
"""
from __future__ import annotations

import errno
import os
import signal
import struct
from typing import Optional

from umlpy.host import procinfo
from umlpy.record import Record

WNOHANG, WEXITED, WNOWAIT = 1, 4, 0x01000000
WNOTHREAD = 0x20000000
P_ALL, P_PID, P_PGID = 0, 1, 2
CLD_EXITED, CLD_KILLED, CLD_DUMPED, CLD_TRAPPED = 1, 2, 3, 4
RUSAGE_SIZE, SIGINFO_SIZE = 144, 128
ANY, PID, PGID = 0, 1, 2


class Park:
    """A tracer's wait held at its seccomp stop. Equal only to itself."""
    __slots__ = _fields = ("call", "waitid", "sel", "options", "armed")
    __repr__ = Record.__repr__     # a record's repr, without its field equality

    def __init__(self, call: object, waitid: bool, sel: tuple, options: int,
                 armed: bool = True) -> None:
        self.call = call
        self.waitid = waitid
        self.sel = sel
        self.options = options
        self.armed = armed          # the kernel's skip of this call is still to come


# ---- what a wait may report ----
def _pgid_of(k, host_tid: int) -> Optional[int]:
    try:
        return k.pids.to_guest(procinfo.host_pgid(host_tid))
    except OSError:
        return None


def _matches(k, sel: tuple, tid: int, host_tid: Optional[int]) -> bool:
    kind, ident = sel
    if kind == ANY:
        return True
    if kind == PID:
        return tid == ident
    return host_tid is not None and _pgid_of(k, host_tid) == ident


def _find(k, waiter, sel: tuple, options: int, exits: bool):
    group = waiter.group
    for tracee in group.tracees or ():
        lk = tracee.ptrace
        if lk is None or lk.stop is None or lk.stop.reported:
            continue
        if options & WNOTHREAD and lk.tracer is not waiter:
            continue
        if _matches(k, sel, tracee.tid, tracee.host_tid):
            return ("stop", tracee)
    if exits:
        for i, (tid, _status, _g) in enumerate(group.ptrace_exits or ()):
            if _matches(k, sel, tid, None):
                return ("exit", i)
    return None


def _may_report(k, waiter, sel: tuple) -> bool:
    group = waiter.group
    return (any(_matches(k, sel, t.tid, t.host_tid) for t in group.tracees or ())
            or any(_matches(k, sel, tid, None) for tid, _s, _g in group.ptrace_exits or ()))


def _host_children(k, waiter, sel: tuple) -> bool:
    """Could a host wait of this process report something (a real child)?"""
    for g in k.pids.groups.values():
        if g.parent is waiter.group and not getattr(g, "reaped", False):
            if sel[0] != PID or g.tgid == sel[1]:
                return True
    return False


def _describe(waiter, rep) -> tuple:
    """(guest pid, wait status, waitid code, waitid status, uid) of a report."""
    group = waiter.group
    if rep[0] == "stop":
        tracee = rep[1]
        st = tracee.ptrace.status()
        return tracee.tid, st, CLD_TRAPPED, st >> 8, tracee.creds.ruid
    tid, st, g = group.ptrace_exits[rep[1]]
    if os.WIFEXITED(st):
        code, val = CLD_EXITED, os.WEXITSTATUS(st)
    else:
        code = CLD_DUMPED if os.WCOREDUMP(st) else CLD_KILLED
        val = os.WTERMSIG(st)
    uid = g.threads and next(iter(g.threads.values())).creds.ruid or 0
    return tid, st, code, val, uid


def _consume(waiter, rep, options: int) -> None:
    if options & WNOWAIT:
        return
    if rep[0] == "stop":
        rep[1].ptrace.stop.reported = True
    else:
        del waiter.group.ptrace_exits[rep[1]]


def _deliver(call, rep, waitid: bool, options: int) -> int:
    waiter = call.task
    pid, st, code, val, uid = _describe(waiter, rep)
    try:
        if waitid:
            if call.ptr(2):
                info = struct.pack("<iiiiiIi", signal.SIGCHLD, 0, code, 0, pid, uid, val)
                call.write(call.ptr(2), info.ljust(SIGINFO_SIZE, b"\0"))
            if call.ptr(4):
                call.write(call.ptr(4), bytes(RUSAGE_SIZE))
        else:
            if call.ptr(1):
                call.write(call.ptr(1), struct.pack("<i", st))
            if call.ptr(3):
                call.write(call.ptr(3), bytes(RUSAGE_SIZE))
    except OSError:
        return -errno.EFAULT
    _consume(waiter, rep, options)
    return 0 if waitid else pid


# ---- the calls ----
def _serve(call, sel: tuple, options: int, waitid: bool, exits: bool):
    """A result, or None: let the host run the wait (real children to wait for)."""
    k, waiter = call.kernel, call.task
    rep = _find(k, waiter, sel, options, exits)
    if rep is not None:
        return _deliver(call, rep, waitid, options)
    if _host_children(k, waiter, sel) or not _may_report(k, waiter, sel):
        return None
    if options & WNOHANG:
        if waitid and call.ptr(2):
            call.write(call.ptr(2), bytes(SIGINFO_SIZE))
        return 0
    from umlpy.kernel.ptrace_stops import hold_fn
    waiter.ptrace_park = Park(call, waitid, sel, options)
    k.tracer.holds[waiter.host_tid] = hold_fn(k)
    return 0        # the skip this asks for is held back (ptrace_stops.intercept)


def wait4(call):
    pid, options = call.int(0), call.int(2)
    if pid == -1:
        sel = (ANY, 0)
    elif pid > 0:
        sel = (PID, pid)
    else:
        sel = (PGID, -pid if pid < -1 else _pgid_of(call.kernel, call.task.host_tid))
    return _serve(call, sel, options, False, True)


def waitid(call):
    idtype, ident, options = call.int(0), call.int(1), call.int(3)
    if idtype == P_ALL:
        sel = (ANY, 0)
    elif idtype == P_PID:
        sel = (PID, ident)
    elif idtype == P_PGID:
        sel = (PGID, ident or _pgid_of(call.kernel, call.task.host_tid))
    else:
        return None
    return _serve(call, sel, options, True, bool(options & WEXITED))


def try_complete(k, waiter) -> None:
    """A tracee reported (or went away): end the parked wait if it is answered."""
    pk = waiter.ptrace_park
    if pk is None or pk.armed:
        return
    rep = _find(k, waiter, pk.sel, pk.options, not pk.waitid or bool(pk.options & WEXITED))
    if rep is not None:
        result = _deliver(pk.call, rep, pk.waitid, pk.options)
    elif _may_report(k, waiter, pk.sel) or _host_children(k, waiter, pk.sel):
        return
    else:
        result = -errno.ECHILD
    waiter.ptrace_park = None
    if waiter.ptrace is None:
        k.tracer.holds.pop(waiter.host_tid, None)
    k.tracer.skip(waiter.host_tid, result)
