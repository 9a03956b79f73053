"""Guest ptrace stops: when a guest tracee's host stop is shown to its tracer.

Every resumption the kernel asks of a guest tracee's host thread (Tracer.holds)
comes here first. A syscall stop the tracer asked for (PTRACE_SYSCALL) is not
resumed: it is held as a Stop and the tracer is told (a wait under way ends,
SIGCHLD if it catches it). The lifecycle hands over signal-delivery, group,
event and trap stops the same way. When the tracer resumes the tracee, what
the kernel meant to do with it is done, in the tracer's chosen mode: host
PTRACE_SYSCALL gives the host syscall-entry and -exit stops of every call the
tracee makes (native ones too), PTRACE_SINGLESTEP steps the real thread.
"""
from __future__ import annotations

import os
import signal
import struct
from typing import Optional

from umlpy.host import procinfo
from umlpy.host import ptrace_host as hp
from umlpy.host import tracer as host
from umlpy.kernel import ptrace_state as ps
from umlpy.kernel import ptrace_wait
from umlpy.syscalls.numbers import NR

SIGCHLD_BIT = 1 << (signal.SIGCHLD - 1)
CLONE_VFORK, CSIGNAL = 0x4000, 0xFF
WAIT_NRS = (NR["wait4"], NR["waitid"])


def hold_fn(k):
    """The Tracer.holds callback for this kernel."""
    def on_resume(tid: int, how: int, sig: int, value: int) -> int:
        return intercept(k, tid, how, sig, value)
    if getattr(k, "_ptrace_hold", None) is None:
        k._ptrace_hold = on_resume
    return k._ptrace_hold


def intercept(k, tid: int, how: int, sig: int, value: int) -> int:
    task = k.pids.tasks.get(tid)
    if task is None:
        k.tracer.holds.pop(tid, None)
        return _raw(tid, how, sig, value, hp.PTRACE_CONT)
    if task.ptrace_park is not None and how == host.RESUME_SKIP and task.ptrace_park.armed:
        task.ptrace_park.armed = False      # a parked wait: the task stays stopped
        return 0
    lk = task.ptrace
    if lk is None:
        if task.ptrace_park is None:
            k.tracer.holds.pop(tid, None)
        return host_go(k, task, how, sig, value)
    if lk.mode == ps.MODE_SYSCALL and how != host.RESUME_LISTEN:
        info = _syscall_info(tid)
        op = info[0] if info else hp.OP_NONE
        if op == hp.OP_ENTRY:
            lk.entry_nr = struct.unpack_from("<q", info, 24)[0]
            present(k, task, ps.Stop(ps.SYSCALL_ENTRY, how=how, value=value))
            return 0
        if op == hp.OP_EXIT:
            present(k, task, ps.Stop(ps.SYSCALL_EXIT, how=how, value=value))
            return 0
    return host_go(k, task, how, sig, value)


def _syscall_info(tid: int) -> bytes:
    try:
        return hp.syscall_info(tid)
    except OSError:
        return b""


def _raw(tid: int, how: int, sig: int, value: int, req: int) -> int:
    if how == host.RESUME_LISTEN:
        return hp.resume(tid, hp.PTRACE_LISTEN)
    if how == host.RESUME_SKIP:
        return hp.skip_and_resume(tid, value, req)
    return hp.resume(tid, req, sig)


def host_go(k, task, how: int, sig: int = 0, value: int = 0) -> int:
    """Do what the kernel meant (resume, skip the call, listen), stopping again
    where the guest tracer's mode or the kernel's pending syscall needs it."""
    lk = task.ptrace
    mode = lk.mode if lk is not None else ps.MODE_CONT
    if mode == ps.MODE_SYSCALL or how == host.RESUME_TO_EXIT or task.pending_call is not None:
        req = hp.PTRACE_SYSCALL
    elif mode == ps.MODE_STEP:
        req = hp.PTRACE_SINGLESTEP
    else:
        req = hp.PTRACE_CONT
    return _raw(task.host_tid, how, sig, value, req)


# ---- presenting a stop ----
def present(k, task, stop: ps.Stop) -> None:
    lk = task.ptrace
    lk.stop = stop
    if stop.kind != ps.EVENT:
        lk.msg = 0          # as Linux: only event stops carry a message
    want = lk.wanted_host_options()
    if want != lk.host_options:         # the host tracee is stopped: options can change now
        try:
            hp.set_options(task.host_tid, want)
            lk.host_options = want
        except OSError:
            pass
    notify_tracer(k, lk.tracer)


def notify_tracer(k, tracer) -> None:
    """A tracee has something to report: end a wait of the tracer, or wake it."""
    group = tracer.group
    for t in list(group.threads.values()):
        if t.ptrace_park is not None:
            ptrace_wait.try_complete(k, t)
        elif t.pending_call is not None and t.pending_call.nr in WAIT_NRS:
            # its host wait returns -ERESTARTSYS and restarts into ptrace_wait
            if hp.interrupt(t.host_tid) == 0:
                t.ptrace_kicks += 1
    try:
        if procinfo.caught_signals(group.host_tgid) & SIGCHLD_BIT:
            os.kill(group.host_tgid, signal.SIGCHLD)
    except OSError:
        pass


# ---- the lifecycle's stops ----
def signal_stop(k, task, sig: int, info: Optional[bytes]) -> bool:
    """A signal is about to be delivered: the tracer decides (signal-delivery-stop)."""
    if sig == signal.SIGKILL:
        return False
    present(k, task, ps.Stop(ps.SIGNAL, sig=sig, siginfo=bytes(info) if info else None))
    return True


def group_stop(k, task, sig: int) -> None:
    lk = task.ptrace
    if lk.listen_retrap:            # the tracer said LISTEN already: do it now
        lk.listen_retrap = False
        hp.resume(task.host_tid, hp.PTRACE_LISTEN)
        return
    if not _retrapped(task, False):
        present(k, task, ps.Stop(ps.GROUP, sig=sig, how=host.RESUME_LISTEN))


def _retrapped(task, continued: bool) -> bool:
    """The host stop that follows attaching to a task in a group stop: the tracer
    has seen that stop already (Linux reports it before PTRACE_ATTACH returns)."""
    stop = task.ptrace.stop
    if stop is None or not stop.host_listening:
        return False
    stop.host_listening = False
    stop.continued = continued
    return True


def attach_stopped(k, task) -> None:
    """Attaching to a task in a group stop: the tracer sees the stop at once; the
    host thread is made to re-trap (out of LISTEN) so that requests reach it."""
    stop = ps.Stop(ps.GROUP, sig=task.ptrace_jobstop, how=host.RESUME_LISTEN,
                   host_listening=True)
    if hp.interrupt(task.host_tid) != 0:
        stop.host_listening = False
    present(k, task, stop)


def trap_stop(k, task, status: int, msg: int) -> bool:
    """A host PTRACE_EVENT_STOP or an event the kernel does not use (exit)."""
    lk = task.ptrace
    event = (status >> 16) & 0xFF
    if event == ps.EVENT_STOP and _retrapped(task, True):
        return True
    if event == ps.EVENT_STOP and lk.listen_retrap:
        lk.listen_retrap = False
        present(k, task, ps.Stop(ps.TRAP))
        return True
    if event == ps.EVENT_EXIT:
        if lk.options & ps.O_TRACEEXIT:
            lk.msg = msg
            present(k, task, ps.Stop(ps.EVENT, event=event))
            return True
        return False
    if task.ptrace_kicks > 0:
        task.ptrace_kicks -= 1          # one the kernel made to end a host wait
        return False
    if not lk.seized:
        return False
    lk.want_trap = max(0, lk.want_trap - 1)
    present(k, task, ps.Stop(ps.TRAP))
    return True


def initial_stop(k, task) -> bool:
    """An auto-attached child's first stop: a trap (seized) or SIGSTOP (not)."""
    lk = task.ptrace
    if not lk.new_child:        # attached by a request before its first stop: runs on
        return False
    lk.new_child = False
    if lk.seized:
        present(k, task, ps.Stop(ps.TRAP))
    else:
        present(k, task, ps.Stop(ps.SIGNAL, sig=signal.SIGSTOP, fake=True))
    return True


def attach_child(k, parent, child, kind: int, flags: int) -> int:
    """Fork, vfork or clone by a tracee: the event its options ask for (or 0);
    the child is then traced by the same tracer (as CLONE_PTRACE does)."""
    lk = parent.ptrace
    if flags & CLONE_VFORK or kind == host.EV_VFORK:
        event, opt = ps.EVENT_VFORK, ps.O_TRACEVFORK
    elif kind == host.EV_CLONE and (flags & CSIGNAL) != signal.SIGCHLD:
        event, opt = ps.EVENT_CLONE, ps.O_TRACECLONE
    else:
        event, opt = ps.EVENT_FORK, ps.O_TRACEFORK
    if not lk.options & opt:
        return 0
    try:
        clk = ps.link(k, lk.tracer, child, lk.seized, lk.options, hold_fn(k))
    except OSError:
        return 0
    clk.mode = ps.MODE_CONT
    clk.new_child = True
    lk.msg = child.tid
    return event


def event_stop(k, task, event: int, msg: Optional[int] = None) -> bool:
    lk = task.ptrace
    if msg is not None:
        lk.msg = msg
    present(k, task, ps.Stop(ps.EVENT, event=event))
    return True


def exec_stop(k, task, former_tid: int) -> bool:
    lk = task.ptrace
    if lk.options & ps.O_TRACEEXEC:
        return event_stop(k, task, ps.EVENT_EXEC, former_tid)
    if not lk.seized:       # the old-style tracee gets a SIGTRAP after exec
        present(k, task, ps.Stop(ps.SIGNAL, sig=signal.SIGTRAP, fake=True))
        return True
    return False


def on_death(k, task, status: int) -> None:
    """A task is gone: its tracer learns it (unless the host tells its real
    parent, the tracer, anyway), and a dead tracer lets its tracees go."""
    k.tracer.holds.pop(task.host_tid, None)
    task.ptrace_park = None
    lk = ps.unlink(k, task)
    if lk is not None:
        tracer = lk.tracer
        native = task.is_leader and task.group.parent is tracer.group
        if not native and tracer.group.ptrace_exits is not None:
            tracer.group.ptrace_exits.append((task.tid, status, task.group))
        notify_tracer(k, tracer)
    group = task.group
    if group.tracees:
        for tracee in list(group.tracees):
            tlk = tracee.ptrace
            if tlk is not None and tlk.tracer is task:
                release(k, tracee, kill=bool(tlk.options & ps.O_EXITKILL))


def release(k, tracee, kill: bool = False, sig: int = 0) -> None:
    """The tracer detaches (or dies): the tracee runs on as if never traced."""
    lk = ps.unlink(k, tracee)
    if lk is None:
        return
    if kill:
        try:
            os.kill(tracee.host_tid, signal.SIGKILL)
        except OSError:
            pass
    stop = lk.stop
    if lk.host_options != ps.HOST_OPTIONS and stop is not None:
        try:
            hp.set_options(tracee.host_tid, ps.HOST_OPTIONS)
        except OSError:
            pass
    if stop is not None:
        _go_on(k, tracee, stop, sig)


def guest_resume(k, tracee, mode: int, sig: int) -> None:
    lk = tracee.ptrace
    stop, lk.stop = lk.stop, None
    lk.mode = mode
    _go_on(k, tracee, stop, sig)


def _go_on(k, tracee, stop: ps.Stop, sig: int) -> None:
    deliver = inject = 0
    if stop.kind == ps.SIGNAL and not stop.fake:
        deliver = sig
    elif stop.kind in (ps.SYSCALL_ENTRY, ps.SYSCALL_EXIT) or stop.fake:
        inject = sig            # Linux sends it as a new signal
    how = host.RESUME_CONT if stop.how == host.RESUME_LISTEN else stop.how
    host_go(k, tracee, how, deliver, stop.value)
    if inject:
        try:
            os.kill(tracee.host_tid, inject)
        except OSError:
            pass


def listen(k, tracee) -> None:
    stop = tracee.ptrace.stop
    if stop.continued:          # SIGCONT came meanwhile: the trap stop it makes, now
        present(k, tracee, ps.Stop(ps.TRAP))
        return
    tracee.ptrace.stop = None
    if stop.host_listening:
        tracee.ptrace.listen_retrap = True
        return
    hp.resume(tracee.host_tid, hp.PTRACE_LISTEN)


def view_regs(k, tracee):
    """The tracee's registers as the guest sees them: at a syscall-exit stop,
    orig_rax is the guest's call even where the kernel skipped or changed it."""
    regs = k.tracer.get_regs(tracee.host_tid)
    lk = tracee.ptrace
    if lk.stop is not None and lk.stop.kind == ps.SYSCALL_EXIT and lk.entry_nr is not None:
        regs.orig_rax = lk.entry_nr
    return regs
