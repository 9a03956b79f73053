"""The task limit, and births refused after the host made the child.

fork, vfork and a process's clone run on the host without an entry stop
(their seccomp verdict is ALLOW: one ptrace stop fewer per fork), so the kernel
first hears of them at the fork event, when the host has made the child.
Past the limit there, the child is killed before it runs an instruction of
its own; at the call's exit its parent reaps it with a wait4 the kernel
injects (the call's `syscall` instruction run again with other registers),
and the call then returns EAGAIN, as Linux does at RLIMIT_NPROC. What the
guest can tell: a SIGCHLD from the dead child may reach the parent, naming
pid 0 like a sender from outside.

A thread's clone, and CLONE_PARENT's, still stop at their entry (a thread
cannot be killed alone, and a sibling is not its caller's to reap): there the
limit refuses them before they exist (syscalls/process.py).
"""
from __future__ import annotations

import errno
import os
import signal

from umlpy.host import tracer as host
from umlpy.kernel import orphans
from umlpy.syscalls.numbers import NR

# The most tasks (threads included) a guest may have at once: past it fork and
# clone fail with EAGAIN, as at RLIMIT_NPROC, so a fork bomb cannot take the host.
MAX_TASKS = int(os.environ.get("UMLPY_MAX_TASKS", "4096"))

SYSCALL_INSN_LEN = 2        # `syscall` (0f 05): rip - 2 runs the call again
WALL = 0x40000000
# wait4 interrupted by a signal: run it again after the handler
_RESTART = {errno.EINTR, 512, 513, 514, 516}    # + ERESTARTSYS..ERESTART_RESTARTBLOCK


def over_limit(k) -> bool:
    return len(k.pids.tasks) + len(k.early_stops) >= MAX_TASKS


def refuse(k, parent, child_host: int) -> None:
    """At the parent's fork event, past the limit: kill the new child, and
    have the call's exit reap it (at_exit)."""
    try:
        os.kill(child_host, signal.SIGKILL)
    except ProcessLookupError:
        pass
    parent.refused_child = child_host
    k.tracer.arm_exit(parent.host_tid, host.FIX_FORK)
    k.tracer.cont(parent.host_tid)


def at_exit(k, task, ret: int) -> bool:
    """The exit of a refused call (ret: the child's host pid): the parent's
    registers become wait4(child, NULL, __WALL, NULL) at the same
    instruction. False when the exit is not that of a refused call."""
    child = task.refused_child
    if not child or ret != child:
        return False
    task.refused_child = 0
    saved = k.tracer.get_regs(task.host_tid)
    saved.rax = -errno.EAGAIN
    task.reaping = (child, saved)
    _inject_wait(k, task.host_tid, child)
    return True


def _inject_wait(k, tid: int, child: int) -> None:
    regs = k.tracer.get_regs(tid)
    regs.rax = NR["wait4"]
    regs.rdi, regs.rsi, regs.rdx, regs.r10 = child, 0, WALL, 0
    regs.rip = regs.rip - SYSCALL_INSN_LEN
    k.tracer.set_regs(tid, regs)


def at_entry(k, task) -> None:
    """The injected wait4 stops at its entry: run it to its exit."""
    k.tracer.cont_to_exit(task.host_tid)


def at_reap_exit(k, task, ret: int) -> None:
    """The injected wait4's exit: the call's own registers back, with EAGAIN;
    or, interrupted by a signal, the wait again after the handler."""
    child, saved = task.reaping
    if ret < 0 and -ret in _RESTART:
        _inject_wait(k, task.host_tid, child)
        return
    # reaped (or ECHILD: another thread of the parent reaped it first)
    task.reaping = None
    orphans.release(k, child)       # (a first stop it reported after the kill)
    k.tracer.set_regs(task.host_tid, saved)
