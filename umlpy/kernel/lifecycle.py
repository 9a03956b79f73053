"""Births, execs, signals and deaths of guest tasks (the ptrace events).

Events of one birth arrive in either order: the parent's fork/clone event and
the child's first stop. A child whose stop comes first is held stopped until
its parent's event says who it is.
"""
from __future__ import annotations

import os
import signal
import struct

from umlpy.host import procinfo
from umlpy.host import tracer as host
from umlpy.kernel import births, orphans, ptrace_stops
from umlpy.kernel.task import (CLONE_CHILD_SETTID, CLONE_FS, CLONE_PARENT,  # noqa: F401
                               CLONE_PARENT_SETTID, CLONE_THREAD, CLONE_VFORK, CLONE_VM, Task,
                               ThreadGroup)
from umlpy.syscalls.numbers import NR

EXEC_NRS = (NR["execve"], NR["execveat"])

SI_USER, SI_QUEUE, SI_TIMER, SI_MESGQ, SI_ASYNCIO, SI_SIGIO, SI_TKILL = 0, -1, -2, -3, -4, -5, -6
SENDER_CODES = (SI_USER, SI_QUEUE, SI_MESGQ, SI_TKILL)   # si_code of signals that name a sender


def on_event(k, ev) -> None:
    kind = ev.kind
    if kind in (host.EV_FORK, host.EV_VFORK, host.EV_CLONE):
        on_fork(k, ev)
    elif kind == host.EV_EXEC:
        on_exec(k, ev)
    elif kind == host.EV_SIGNAL:
        on_signal(k, ev)
    elif kind == host.EV_GROUPSTOP:
        on_groupstop(k, ev)
    elif kind == host.EV_TRAPSTOP:
        on_trapstop(k, ev)
    elif kind in (host.EV_EXITED, host.EV_KILLED):
        on_death(k, ev)


def _clone_args(k, ev, call) -> tuple:
    """(flags, parent_tid_ptr, child_tid_ptr) of the fork-like call under way."""
    kind = ev.kind
    if call is not None and call.nr == NR["clone"]:     # clone(flags, stack, ptid, ctid, tls)
        return call.args[0], call.args[2], call.args[3]
    if call is None and kind != host.EV_VFORK:
        # no entry reached Python (a thread's: csrc/faststops.c; a process's
        # ran without a stop: births.py): the registers say
        regs = k.tracer.get_regs(ev.tid)
        if regs.orig_rax == NR["clone"]:
            return regs.rdi, regs.rdx, regs.r10
    if kind == host.EV_VFORK:
        return CLONE_VM | CLONE_VFORK | signal.SIGCHLD, 0, 0
    return signal.SIGCHLD, 0, 0


def on_fork(k, ev) -> None:
    parent = k.pids.tasks.get(ev.tid)
    child_tid = ev.msg
    if parent is None:
        k.tracer.cont(ev.tid)
        return
    call = parent.pending_call
    flags, ptid, ctid = _clone_args(k, ev, call)
    held = orphans.release(k, child_tid)
    if call is None and not flags & (CLONE_THREAD | CLONE_PARENT):
        # its entry ran without a stop (births.py): the limit is kept here
        if births.over_limit(k):
            births.refuse(k, parent, child_tid)
            return
        k.tracer.arm_exit(ev.tid, host.FIX_FORK)      # its exit shows the guest pid
    task = new_task(k, parent, child_tid, flags)
    task.clone_info = (flags, ctid)
    event = 0
    if parent.ptrace is not None:       # a guest tracer may follow the child
        event = ptrace_stops.attach_child(k, parent, task, ev.kind, flags)
    if flags & CLONE_PARENT_SETTID and ptid:
        try:
            host.GuestMemory(parent.host_tid).write(ptid, struct.pack("<i", task.tid))
        except OSError:
            pass
    if held:
        first_stop(k, task)
    elif not (flags & CLONE_CHILD_SETTID and ctid) and not event and task.ptrace is None:
        k.tracer.arm_start(child_tid)       # nothing to do there: C may resume it
        task.start_armed = True
    if event and ptrace_stops.event_stop(k, parent, event):
        return
    k.resume(parent)


def new_task(k, parent: Task, host_tid: int, flags: int) -> Task:
    tid = k.pids.alloc(host_tid)
    if flags & CLONE_THREAD:
        group = parent.group
    else:
        pgroup = parent.group.parent if flags & CLONE_PARENT else parent.group
        group = ThreadGroup(tid, host_tid, pgroup)
        group.inherit_exe(parent.group)
        group.comm = parent.group.comm
        k.pids.groups[tid] = group
        if pgroup is not None:      # before it or its parent runs on (faststops.c)
            pgroup.children += 1
            k.mirror_children(pgroup)
    fs = parent.fs if flags & CLONE_FS else parent.fs.clone()
    task = Task(tid, host_tid, group, parent.creds.clone(), fs)
    group.threads[host_tid] = task
    k.pids.tasks[host_tid] = task
    k.mirror(task)
    if flags & CLONE_THREAD:
        k.mirror_children(group)    # now C cannot tell its children from the host's list
    return task


def _started_in_c(k, task: Task) -> bool:
    """C took the task's first stop (armed at its fork): this stop is a later one."""
    if not task.start_armed:
        return False
    task.start_armed = False
    if k.tracer.start_armed(task.host_tid):     # C could not: this is the first
        k.tracer.arm_start(task.host_tid, False)
        return False
    task.started = True
    return True


def first_stop(k, task: Task) -> None:
    """The child's first stop: fix the tid the host wrote for CLONE_CHILD_SETTID."""
    task.started = True
    flags, ctid = task.clone_info or (0, 0)
    task.clone_info = None
    if flags & CLONE_CHILD_SETTID and ctid:
        try:
            host.GuestMemory(task.host_tid).write(ctid, struct.pack("<i", task.tid))
        except OSError:
            pass
    if task.ptrace is not None and ptrace_stops.initial_stop(k, task):
        return
    k.tracer.cont(task.host_tid)


def on_groupstop(k, ev) -> None:
    """A stopping signal took effect: the task waits for SIGCONT (host LISTEN),
    unless a guest tracer is to see the stop."""
    task = k.pids.tasks.get(ev.tid)
    if task is not None and task.ptrace is not None:
        ptrace_stops.group_stop(k, task, (ev.status >> 8) & 0xFF)
        return
    if task is not None:
        task.ptrace_jobstop = (ev.status >> 8) & 0xFF
    k.tracer.listen(ev.tid)


def on_trapstop(k, ev) -> None:
    task = k.pids.tasks.get(ev.tid)
    if task is not None:
        task.ptrace_jobstop = 0     # SIGCONT ended a group stop (or an interrupt)
    if task is None:
        orphans.hold(k, ev.tid)     # our parent's event has not come yet
    elif not task.started and not _started_in_c(k, task):
        first_stop(k, task)
    elif task.ptrace is not None and ptrace_stops.trap_stop(k, task, ev.status, ev.msg):
        return
    elif k.debugger is not None and k.debugger.on_trapstop(task):
        return      # stopped for gdb (all-stop)
    else:
        k.resume(task)


def exec_taken(k, task, plan) -> None:
    """task now runs plan's image (checked): its exe and comm."""
    root = task.fs.root
    task.group.set_exe(plan.guest_path, lambda: k.vfs.path_string(plan.guest_path, root) or "")
    k.vfs.handles.register((plan.image.dev, plan.image.ino), plan.guest_path)
    task.group.comm = plan.name[:15]


def on_exec(k, ev) -> None:
    former, tid = ev.msg, ev.tid
    task = k.pids.tasks.get(former)
    if task is None:
        k.tracer.cont(tid)
        return
    if former != tid:
        # A non-leader thread exec'd: it takes over the leader's host and guest ids.
        old_leader = k.pids.tasks.pop(tid, None)
        if old_leader is not None:
            task.group.threads.pop(tid, None)
        del k.pids.tasks[former]
        task.group.threads.pop(former, None)
        k.tracer.task_del(former)
        k.pids.release(task.tid)
        task.tid, task.host_tid = task.group.tgid, tid
        task.group.threads[tid] = task
        k.pids.tasks[tid] = task
        k.mirror(task)
    plan, task.pending_exec = task.pending_exec, None
    try:
        ident = procinfo.exe_identity(tid)
    except OSError:
        ident = None
    if plan is None or ident != (plan.image.dev, plan.image.ino):
        # Another thread rewrote the path we gave the host: never run what it chose.
        k.klog(f"exec of an unexpected image by task {task.tid}: killed")
        os.kill(tid, signal.SIGKILL)
        k.tracer.cont(tid)
        return
    exec_taken(k, task, plan)
    # The exec succeeded: the registers belong to the new image and execve's
    # exit handler only clears pending_exec, so skip its exit stop altogether
    # (one ptrace stop less per exec).
    if task.pending_call is not None and task.pending_call.nr in EXEC_NRS:
        if k.systrace is not None:
            k.systrace.done(task.pending_call, 0)
        task.pending_call = None
    elif task.pending_call is not None:
        task.pending_call.orig_args = None
    if k.debugger is not None and k.debugger.on_exec(task):
        return      # held at its first instruction for gdb
    if task.ptrace is not None and ptrace_stops.exec_stop(k, task, task.tid):
        return
    k.resume(task)


def on_signal(k, ev) -> None:
    """A signal is about to be delivered: show the sender's guest pid."""
    task = k.pids.tasks.get(ev.tid)
    sig = ev.sig
    try:
        info = k.tracer.get_siginfo(ev.tid)
        code = struct.unpack_from("<i", info, 8)[0]
        if code in SENDER_CODES or sig == signal.SIGCHLD:
            pid = struct.unpack_from("<i", info, 16)[0]
            gpid = k.pids.sender_to_guest(pid) if pid > 0 else 0
            if gpid != pid:
                struct.pack_into("<i", info, 16, gpid)
                k.tracer.set_siginfo(ev.tid, bytes(info))
    except OSError:
        info = None
    if k.systrace is not None:
        k.systrace.signal(task, sig, info)
    if k.debugger is not None and task is not None and k.debugger.on_signal(task, sig):
        return      # a breakpoint or a step: the task stays stopped for gdb
    if task is not None and task.ptrace is not None and ptrace_stops.signal_stop(k, task, sig,
                                                                                 info):
        return      # a guest tracer decides about the signal
    if task is None:
        k.tracer.cont(ev.tid, sig)
    else:
        k.resume(task, sig)


def on_death(k, ev) -> None:
    tid = ev.tid
    orphans.release(k, tid)
    task = k.pids.tasks.pop(tid, None)
    k.tracer.task_del(tid)
    if k.waiting:           # a slow call (FIFO open) this task was waiting for
        k.cancel_orphaned_waits()
    if task is None:
        return
    if k.systrace is not None:
        k.systrace.death(task, ev.status)
    if k.debugger is not None:
        k.debugger.on_death(task, ev.status)
    if task.ptrace is not None or task.group.tracees is not None or task.ptrace_park is not None:
        ptrace_stops.on_death(k, task, ev.status)
    group = task.group
    group.threads.pop(tid, None)
    if not task.is_leader:
        k.pids.release(task.tid)
        return
    group.zombie = True
    group.exit_status = ev.status
    k.fds.forget(group.host_tgid)
    for other in list(group.threads.values()):     # threads whose death we missed
        k.pids.tasks.pop(other.host_tid, None)
        k.tracer.task_del(other.host_tid)
    group.threads.clear()
    reparent_children(k, group)
    if group is k.init:
        k.init_status = ev.status
        k.pids.release(group.tgid)
        k.kill_all()
    elif getattr(group, "reaped", False):
        k.pids.release(group.tgid)


def reparent_children(k, dead: ThreadGroup) -> None:
    """Orphans go to the first process, which is a child subreaper on the host too."""
    heir = k.init if k.init is not None and not k.init.zombie else None
    inherited = 0
    for g in list(k.pids.groups.values()):
        if g.parent is dead:
            g.parent = heir
            if heir is None:
                g.in_parent_count = False
            elif g.in_parent_count:
                inherited += 1
            k.mirror_group(g)
    if inherited:
        heir.children += inherited
        k.mirror_children(heir)


def reaped(k, host_pid: int) -> None:
    """A guest wait returned this child's death: its pid is free again."""
    gid = k.pids.to_guest(host_pid)
    group = k.pids.groups.get(gid)
    if group is None:
        return
    parent = group.parent
    if group.in_parent_count and parent is not None:
        group.in_parent_count = False
        parent.children -= 1
        k.mirror_children(parent)
    if group.zombie:
        k.pids.release(gid)
    else:
        group.reaped = True     # its death event is still on its way
