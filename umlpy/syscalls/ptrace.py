"""ptrace(2) for guest tracers: the requests strace and gdb use.

The kernel is the host tracer of every guest task, so a guest tracer's
requests are served here on its tracee's host thread, once the tracee is known
to be the caller's (guest pids only; anything else is ESRCH). Stops and wait
are in umlpy/kernel/ptrace_*.py.
"""
from __future__ import annotations

import errno
import os
import signal
import struct

from umlpy.host import ptrace_host as hp
from umlpy.kernel import ptrace_state as ps
from umlpy.kernel import ptrace_stops as stops
from umlpy.syscalls.call import Call
from umlpy.syscalls.registry import TRACE, syscall

TRACEME, PEEKTEXT, PEEKDATA, PEEKUSER, POKETEXT, POKEDATA, POKEUSER = 0, 1, 2, 3, 4, 5, 6
CONT, KILL, SINGLESTEP, GETREGS, SETREGS, GETFPREGS, SETFPREGS = 7, 8, 9, 12, 13, 14, 15
ATTACH, DETACH, SYSCALL = 16, 17, 24
SETOPTIONS, GETEVENTMSG, GETSIGINFO, SETSIGINFO = 0x4200, 0x4201, 0x4202, 0x4203
GETREGSET, SETREGSET, SEIZE, INTERRUPT, LISTEN = 0x4204, 0x4205, 0x4206, 0x4207, 0x4208
GET_SYSCALL_INFO = 0x420E

NT_PRSTATUS, NT_PRFPREG = 1, 2
FPREGS_SIZE = 512
USER_SIZE = 912             # sizeof(struct user) on x86-64
SIGINFO_SIZE = 128
RESUMES = {CONT: ps.MODE_CONT, SYSCALL: ps.MODE_SYSCALL, SINGLESTEP: ps.MODE_STEP}


# At a ptrace stop, not a notification: a signal to a tracer waiting on a
# notification restarts the call, and a request must not run twice.
@syscall("ptrace", mode=TRACE, support="partial",
         note="virtualized for guest tracers (strace, gdb); no PTRACE_O_TRACESECCOMP stops")
def sys_ptrace(c: Call) -> int:
    req = c.long(0) & 0xFFFFFFFF
    if req == TRACEME:
        return _traceme(c)
    if req in (ATTACH, SEIZE):
        return _attach(c, req)
    tracee = _tracee(c, c.int(1))
    lk = tracee.ptrace
    if req == KILL:
        _kill(tracee)
        return 0
    if req == INTERRUPT:
        if not lk.seized:
            return -errno.EIO
        lk.want_trap += 1
        hp.interrupt(tracee.host_tid)
        return 0
    stop = lk.stop
    if stop is None:
        return -errno.ESRCH         # running: Linux gives ESRCH to a tracer's request
    handler = _STOPPED.get(req)
    if handler is None:
        return -errno.EIO
    return handler(c, tracee, lk)


# ---- becoming a tracer ----
def _traceme(c: Call) -> int:
    k, me = c.kernel, c.task
    parent = me.group.parent
    if me.ptrace is not None or parent is None or parent.zombie or not parent.threads:
        return -errno.EPERM
    tracer = next((t for t in parent.threads.values() if t.is_leader),
                  next(iter(parent.threads.values())))
    ps.link(k, tracer, me, False, 0, stops.hold_fn(k))
    return 0


def _attach(c: Call, req: int) -> int:
    k, me = c.kernel, c.task
    pid = c.int(1)
    target = _task_of(c, pid)
    if req == SEIZE:
        if c.args[2] != 0 or c.args[3] & ~ps.O_MASK & 0xFFFFFFFFFFFFFFFF:
            return -errno.EIO if c.args[2] else -errno.EINVAL
    if target.group is me.group or target.ptrace is not None:
        return -errno.EPERM
    if not ps.may_attach(me, target):
        return -errno.EPERM
    seized = req == SEIZE
    ps.link(k, me, target, seized, c.args[3] & ps.O_MASK if seized else 0,
                 stops.hold_fn(k))
    if target.ptrace_jobstop:       # stopped already (job control): the tracer sees it
        stops.attach_stopped(k, target)
    elif not seized:                # PTRACE_ATTACH stops the tracee with a SIGSTOP
        try:
            os.kill(target.host_tid, signal.SIGSTOP)
        except OSError:
            pass
    return 0


def _task_of(c: Call, pid: int):
    """The live guest task with guest tid `pid` (never a host process): ESRCH else."""
    if pid <= 0:
        raise OSError(errno.ESRCH, "no such process")
    host_tid = c.kernel.pids.to_host(pid)
    task = c.kernel.pids.tasks.get(host_tid) if host_tid is not None else None
    if task is None or task.tid != pid:
        raise OSError(errno.ESRCH, "no such process")
    return task


def _tracee(c: Call, pid: int):
    task = _task_of(c, pid)
    if task.ptrace is None or task.ptrace.tracer is not c.task:
        raise OSError(errno.ESRCH, "not traced by the caller")
    return task


def _kill(tracee) -> None:
    try:
        os.kill(tracee.host_tid, signal.SIGKILL)
    except OSError:
        pass


# ---- requests on a stopped tracee ----
def _valid_sig(c: Call) -> int:
    sig = c.long(3)
    if not 0 <= sig <= 64:
        raise OSError(errno.EIO, "bad signal")
    return sig


def _resume(c: Call, tracee, lk) -> int:
    sig = _valid_sig(c)
    stops.guest_resume(c.kernel, tracee, RESUMES[c.long(0)], sig)
    return 0


def _listen(c: Call, tracee, lk) -> int:
    if not lk.seized or lk.stop.kind != ps.GROUP:
        return -errno.EIO
    stops.listen(c.kernel, tracee)
    return 0


def _detach(c: Call, tracee, lk) -> int:
    stops.release(c.kernel, tracee, sig=_valid_sig(c))
    return 0


def _peek(c: Call, tracee, lk) -> int:
    req, addr = c.long(0), c.ptr(2)
    if req == PEEKUSER:
        word = _peek_user(c, tracee, addr)
    else:
        word = hp.peek(tracee.host_tid, addr)
    c.write(c.ptr(3), hp.pack_word(word))
    return 0


def _user_offset(addr: int) -> int:
    if addr & 7 or addr >= USER_SIZE:
        raise OSError(errno.EIO, "bad offset")
    return addr


def _peek_user(c: Call, tracee, addr: int) -> int:
    if _user_offset(addr) < hp.REGS_SIZE:
        regs = hp.regs_bytes(stops.view_regs(c.kernel, tracee))
        return struct.unpack_from("<Q", regs, addr)[0]
    return hp.peek(tracee.host_tid, addr, user=True)


def _poke(c: Call, tracee, lk) -> int:
    req = c.long(0)
    if req == POKEUSER:
        hp.poke(tracee.host_tid, _user_offset(c.ptr(2)), c.args[3], user=True)
    else:
        hp.poke(tracee.host_tid, c.ptr(2), c.args[3])
    return 0


def _getregs(c: Call, tracee, lk) -> int:
    c.write(c.ptr(3), hp.regs_bytes(stops.view_regs(c.kernel, tracee)))
    return 0


def _setregs(c: Call, tracee, lk) -> int:
    regs = hp.regs_from_bytes(c.mem.read(c.ptr(3), hp.REGS_SIZE))
    c.kernel.tracer.set_regs(tracee.host_tid, regs)
    return 0


def _fpregs(c: Call, tracee, lk) -> int:
    if c.long(0) == GETFPREGS:
        c.write(c.ptr(3), hp.get_regset(tracee.host_tid, NT_PRFPREG, FPREGS_SIZE))
    else:
        hp.set_regset(tracee.host_tid, NT_PRFPREG, c.mem.read(c.ptr(3), FPREGS_SIZE))
    return 0


def _regset(c: Call, tracee, lk) -> int:
    kind, iov_ptr = c.ptr(2), c.ptr(3)
    base, length = struct.unpack("<QQ", c.mem.read(iov_ptr, 16))
    if c.long(0) == GETREGSET:
        if kind == NT_PRSTATUS:
            data = hp.regs_bytes(stops.view_regs(c.kernel, tracee))[:length]
            data = data[:len(data) // 8 * 8]
        else:
            data = hp.get_regset(tracee.host_tid, kind, length)
        c.write(base, data)
        c.write(iov_ptr + 8, struct.pack("<Q", len(data)))
        return 0
    data = c.mem.read(base, min(length, hp.REGSET_MAX))
    hp.set_regset(tracee.host_tid, kind, data)
    return 0


def _getsiginfo(c: Call, tracee, lk) -> int:
    stop = lk.stop
    if stop.kind == ps.GROUP:
        return -errno.EINVAL
    if stop.kind == ps.SIGNAL and stop.siginfo is not None:
        info = stop.siginfo
    elif stop.kind == ps.SIGNAL:            # made up (SIGSTOP at attach, SIGTRAP at exec)
        info = struct.pack("<iiiiiI", stop.sig, 0, 0, 0, 0, 0)
    else:                                   # a ptrace stop: SIGTRAP with the stop's code
        code = lk.status() >> 8
        info = struct.pack("<iiiiiI", signal.SIGTRAP, 0, code, 0, tracee.tid, tracee.creds.ruid)
    c.write(c.ptr(3), info.ljust(SIGINFO_SIZE, b"\0"))
    return 0


def _setsiginfo(c: Call, tracee, lk) -> int:
    info = c.mem.read(c.ptr(3), SIGINFO_SIZE)
    stop = lk.stop
    if stop.kind == ps.GROUP:
        return -errno.EINVAL
    if stop.kind == ps.SIGNAL and not stop.fake:
        c.kernel.tracer.set_siginfo(tracee.host_tid, info)
        stop.siginfo = info
    return 0


def _setoptions(c: Call, tracee, lk) -> int:
    opts = c.args[3]
    if opts & ~ps.O_MASK:
        return -errno.EINVAL
    lk.options = opts
    want = lk.wanted_host_options()
    if want != lk.host_options:         # stopped: the host tracee takes options now
        hp.set_options(tracee.host_tid, want)
        lk.host_options = want
    return 0


def _geteventmsg(c: Call, tracee, lk) -> int:
    c.write(c.ptr(3), hp.pack_word(lk.msg))
    return 0


def _syscall_info(c: Call, tracee, lk) -> int:
    """The host's answer (the entry stop is the guest's own call, before the
    kernel touched it), as op NONE when the guest's stop is not a syscall stop."""
    size, ptr = c.ptr(2), c.ptr(3)
    info = bytearray(hp.syscall_info(tracee.host_tid))
    kind = lk.stop.kind
    if kind not in (ps.SYSCALL_ENTRY, ps.SYSCALL_EXIT) or info[0] not in (hp.OP_ENTRY,
                                                                            hp.OP_EXIT):
        info = info[:24]
        info[0] = hp.OP_NONE
    elif kind == ps.SYSCALL_ENTRY and lk.entry_nr is not None:
        struct.pack_into("<q", info, 24, lk.entry_nr)
    n = min(size, len(info))
    if n:
        c.write(ptr, bytes(info[:n]))
    return len(info)


_STOPPED = {
    CONT: _resume, SYSCALL: _resume, SINGLESTEP: _resume, LISTEN: _listen, DETACH: _detach,
    PEEKTEXT: _peek, PEEKDATA: _peek, PEEKUSER: _peek,
    POKETEXT: _poke, POKEDATA: _poke, POKEUSER: _poke,
    GETREGS: _getregs, SETREGS: _setregs, GETFPREGS: _fpregs, SETFPREGS: _fpregs,
    GETREGSET: _regset, SETREGSET: _regset,
    GETSIGINFO: _getsiginfo, SETSIGINFO: _setsiginfo,
    SETOPTIONS: _setoptions, GETEVENTMSG: _geteventmsg, GET_SYSCALL_INFO: _syscall_info,
}
