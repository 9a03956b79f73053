"""Processes: fork and clone, wait, process groups and sessions, pid arguments."""
from __future__ import annotations

import errno
import os
import struct

from umlpy.host import procinfo
from umlpy.kernel import births, lifecycle, ptrace_wait
from umlpy.kernel.task import CLONE_PARENT, CLONE_THREAD
from umlpy.syscalls.call import PASS, Call
from umlpy.syscalls.registry import FAST, TRACE, exit_only_handler, native, syscall

CLONE_UNTRACED = 0x00800000
CLONE_NEW_NAMESPACES = (0x00020000 | 0x02000000 | 0x04000000 | 0x08000000 | 0x10000000
                        | 0x20000000 | 0x40000000 | 0x00000080)
WNOHANG, WUNTRACED, WCONTINUED, WEXITED, WNOWAIT = 1, 2, 8, 4, 0x01000000
_WNOTHREAD, _WCLONE = 0x20000000, 0x80000000
_WAIT4_OPTIONS = WNOHANG | WUNTRACED | WCONTINUED | _WNOTHREAD | _WCLONE    # and births.WALL
INT_MIN = -(1 << 31)
P_ALL, P_PID, P_PGID = 0, 1, 2
CLD_EXITED, CLD_KILLED, CLD_DUMPED = 1, 2, 3


def host_pid(c: Call, guest: int, err: int = errno.ESRCH) -> int:
    """The host id of a guest pid/tid/pgid, or the errno Linux gives for a stranger."""
    h = c.kernel.pids.to_host(guest)
    if h is None:
        raise OSError(err, "no such process")
    return h


def guest_pid(c: Call, host: int) -> int:
    return c.kernel.pids.to_guest(host)


# ---- fork, vfork, clone ----
def _fork_exit(c: Call, ret: int):
    return guest_pid(c, ret) if ret > 0 else None


# Flags of clone(2) that stop at its entry: new namespaces (refused),
# CLONE_UNTRACED (dropped), and a thread or a sibling, whose creation past the
# task limit must be refused before it happens (kernel/births.py). Other clones,
# fork and vfork run without an entry stop: their exits are armed at the fork
# event, where births.py enforces the task limit.
CLONE_TRAPPED = CLONE_NEW_NAMESPACES | CLONE_UNTRACED | CLONE_THREAD | CLONE_PARENT


@syscall("clone", mode=TRACE, support="partial", trap_bits=(0, CLONE_TRAPPED),
         note="new namespaces refused with EPERM; CLONE_UNTRACED is dropped")
def sys_clone(c: Call):
    flags = c.args[0]
    if flags & CLONE_NEW_NAMESPACES:
        return -errno.EPERM
    if births.over_limit(c.kernel):
        return -errno.EAGAIN
    if flags & CLONE_UNTRACED:      # a child must never leave the kernel's sight
        c.set_arg(0, flags & ~CLONE_UNTRACED)
    c.on_exit(_fork_exit)
    return PASS


native("fork", "vfork", note="the exit shows the guest pid: armed at the fork event")


@syscall("set_tid_address", mode=TRACE)
def sys_set_tid_address(c: Call):
    c.on_exit(lambda c, ret: c.task.tid)
    return PASS


@syscall("getpid", "gettid", "getppid", mode=FAST)
def sys_getpid(c: Call) -> int:
    """Only reached when the accelerator has no entry for the task."""
    name = {39: "getpid", 186: "gettid", 110: "getppid"}[c.nr]
    t = c.task
    return {"getpid": t.group.tgid, "gettid": t.tid, "getppid": t.group.ppid}[name]


# ---- wait ----
def _translate_wait_target(c: Call, index: int, pid: int) -> None:
    if pid > 0:
        c.set_arg(index, host_pid(c, pid, errno.ECHILD))
    elif pid < -1:
        c.set_arg(index, -host_pid(c, -pid, errno.ECHILD))


@exit_only_handler("wait4")       # wait4(-1, ...): the accelerator lets its entry run
def _wait4_exit(c: Call, ret: int):
    if ret <= 0:
        return None
    status_ptr = c.ptr(1)       # never rewritten
    dead = True
    if status_ptr:
        try:
            status = struct.unpack("<i", c.mem.read(status_ptr, 4))[0]
            dead = (status & 0x7F) != 0x7F and status != 0xFFFF   # not stopped/continued
        except OSError:
            pass
    elif c.int(2) & (WUNTRACED | WCONTINUED):
        dead = False
    g = guest_pid(c, ret)
    if dead:
        lifecycle.reaped(c.kernel, ret)
    return g


@syscall("wait4", mode=TRACE)
def sys_wait4(c: Call):
    if c.args[2] & 0xFFFFFFFF & ~(_WAIT4_OPTIONS | births.WALL):     # what Linux refuses first
        return -errno.EINVAL
    if c.int(0) == INT_MIN:         # (no -pid to wait for)
        return -errno.ESRCH
    if c.task.group.tracees is not None:        # a guest tracer: its tracees' stops first
        r = ptrace_wait.wait4(c)
        if r is not None:
            return r
    _translate_wait_target(c, 0, c.int(0))
    c.on_exit(_wait4_exit)
    return PASS


def _waitid_exit(c: Call, ret: int):
    infop = c.ptr(2)
    if ret != 0 or not infop:
        return None
    info = bytearray(c.mem.read(infop, 32))
    code, pid = struct.unpack_from("<ii", info, 8)[0], struct.unpack_from("<i", info, 16)[0]
    if pid > 0:
        struct.pack_into("<i", info, 16, guest_pid(c, pid))
        c.mem.write(infop, bytes(info))
        if code in (CLD_EXITED, CLD_KILLED, CLD_DUMPED) and not c.int(3) & WNOWAIT:
            lifecycle.reaped(c.kernel, pid)
    return None


@syscall("waitid", mode=TRACE)
def sys_waitid(c: Call):
    if c.task.group.tracees is not None:
        r = ptrace_wait.waitid(c)
        if r is not None:
            return r
    idtype, ident = c.int(0), c.int(1)
    if idtype == P_PID:
        c.set_arg(1, host_pid(c, ident, errno.ECHILD))
    elif idtype == P_PGID and ident != 0:
        c.set_arg(1, host_pid(c, ident, errno.ECHILD))
    c.on_exit(_waitid_exit)
    return PASS


# ---- process groups and sessions ----
@syscall("setpgid", mode=TRACE)
def sys_setpgid(c: Call):
    pid, pgid = c.int(0), c.int(1)
    if pid < 0 or pgid < 0:
        return -errno.EINVAL
    if pid:
        c.set_arg(0, host_pid(c, pid))
    if pgid:
        c.set_arg(1, host_pid(c, pgid, errno.EPERM))
    return PASS


def _target(c: Call, pid: int) -> int:
    return c.task.host_tid if pid == 0 else host_pid(c, pid)


@syscall("getpgid")
def sys_getpgid(c: Call) -> int:
    return guest_pid(c, procinfo.host_pgid(_target(c, c.int(0))))


@syscall("getpgrp")
def sys_getpgrp(c: Call) -> int:
    return guest_pid(c, procinfo.host_pgid(c.task.host_tid))


@syscall("getsid")
def sys_getsid(c: Call) -> int:
    return guest_pid(c, procinfo.host_sid(_target(c, c.int(0))))


@syscall("setsid", mode=TRACE)
def sys_setsid(c: Call):
    c.on_exit(lambda c, ret: guest_pid(c, ret) if ret > 0 else None)
    return PASS


# ---- calls naming another process in their first argument ----
# sched_{set,get}param, sched_{set,get}scheduler, sched_rr_get_interval,
# sched_{set,get}attr and pidfd_open check the sign; the others just find no process
_NEGATIVE_PID_EINVAL = frozenset((142, 143, 144, 145, 148, 314, 315, 434))

@syscall("prlimit64", "sched_setaffinity", "sched_getaffinity", "sched_setscheduler",
         "sched_getscheduler", "sched_setparam", "sched_getparam", "sched_rr_get_interval",
         "sched_setattr", "sched_getattr", "get_robust_list", "pidfd_open",
         "process_vm_readv", "process_vm_writev", "migrate_pages", "move_pages",
         mode=TRACE, native_if=(0, (0,)))
def sys_pid_first(c: Call):
    """pid 0 (the caller) runs natively; another pid is translated."""
    pid = c.int(0)
    if pid < 0:
        return -errno.EINVAL if c.nr in _NEGATIVE_PID_EINVAL else -errno.ESRCH
    c.set_arg(0, host_pid(c, pid))
    return PASS


@syscall("kcmp", mode=TRACE)
def sys_kcmp(c: Call):
    c.set_arg(0, host_pid(c, c.int(0)))
    c.set_arg(1, host_pid(c, c.int(1)))
    return PASS


PRIO_PROCESS, PRIO_PGRP, PRIO_USER = 0, 1, 2
NZERO = 20          # the raw syscall returns 20 - nice, so that it is never negative


@syscall("getpriority", "setpriority", mode=TRACE, support="partial",
         note="PRIO_USER acts on the guest's processes of that user only")
def sys_priority(c: Call):
    which, who = c.int(0), c.int(1)
    if which == PRIO_USER:
        return _priority_of_user(c, who)
    if which in (PRIO_PROCESS, PRIO_PGRP) and who > 0:
        c.set_arg(1, host_pid(c, who))
    return PASS


def _priority_of_user(c: Call, who: int):
    """PRIO_USER names every process of a user: on the host that would be every
    process of the host user umlpy runs as, so it is served over guest tasks."""
    caller = c.task.creds
    uid = caller.ruid if who == 0 else who & 0xFFFFFFFF
    tasks = [t for g in c.kernel.pids.live_groups() for t in g.threads.values()
             if t.creds.ruid == uid]
    if not tasks:
        return -errno.ESRCH
    if c.nr == 140:                                 # getpriority
        nices = []
        for t in tasks:
            try:
                nices.append(os.getpriority(os.PRIO_PROCESS, t.host_tid))
            except OSError:
                pass
        return NZERO - min(nices) if nices else -errno.ESRCH
    nice = max(-NZERO, min(NZERO - 1, c.int(2)))
    err = 0
    for t in tasks:
        if not caller.privileged and caller.euid not in (t.creds.euid, t.creds.ruid):
            err = err or errno.EPERM
            continue
        try:
            if not caller.privileged and nice < os.getpriority(os.PRIO_PROCESS, t.host_tid):
                err = err or errno.EACCES
                continue
            os.setpriority(os.PRIO_PROCESS, t.host_tid, nice)
        except OSError as e:
            if e.errno != errno.ESRCH:
                err = err or e.errno
    return -err
