"""Signals between guest processes: targets are guest pids, translated to host
ones so the host delivers them; the sender's pid is translated back when the
signal reaches its target (see kernel.lifecycle.on_signal)."""
from __future__ import annotations

import errno
import signal
import struct

from umlpy.host import procinfo
from umlpy.kernel import lifecycle
from umlpy.syscalls.call import PASS, Call
from umlpy.syscalls.process import host_pid
from umlpy.syscalls.registry import TRACE, syscall


def _init_ignores(c: Call, pid: int, sig: int) -> bool:
    """A booted machine's init (pid 1) gets from its own processes only the
    signals it has a handler for, as Linux's namespace init does."""
    k = c.kernel
    if not getattr(k, "init_protected", False) or k.init is None or sig == 0:
        return False
    if k.pids.to_host(pid) != k.init.host_tgid:
        return False
    try:
        return not procinfo.caught_signals(k.init.host_tgid) >> (sig - 1) & 1
    except OSError:
        return False


def _kill_everyone(c: Call, sig: int) -> int:
    """kill(-1): every guest process but the first one and the caller."""
    k = c.kernel
    return 0 if k.signal_all(sig, spare=(k.init, c.task.group)) else -errno.ESRCH


@syscall("kill", mode=TRACE)
def sys_kill(c: Call):
    pid, sig = c.int(0), c.int(1)
    if not 0 <= sig <= 64:
        return -errno.EINVAL
    if pid == -1:
        return _kill_everyone(c, sig)
    if pid > 0 and _init_ignores(c, pid, sig):
        return 0
    if pid > 0:
        c.set_arg(0, host_pid(c, pid))
    elif pid < -1:
        c.set_arg(0, -host_pid(c, -pid))
    return PASS


@syscall("tkill", mode=TRACE)
def sys_tkill(c: Call):
    tid = c.int(0)
    if tid <= 0:
        return -errno.EINVAL
    c.set_arg(0, host_pid(c, tid))
    return PASS


@syscall("tgkill", "rt_tgsigqueueinfo", mode=TRACE)
def sys_tgkill(c: Call):
    tgid, tid = c.int(0), c.int(1)
    if tgid <= 0 or tid <= 0:
        return -errno.EINVAL
    c.set_arg(0, host_pid(c, tgid))
    c.set_arg(1, host_pid(c, tid))
    return PASS


@syscall("rt_sigqueueinfo", mode=TRACE)
def sys_rt_sigqueueinfo(c: Call):
    c.set_arg(0, host_pid(c, c.int(0)))
    return PASS




def _siginfo_exit(c: Call, ret: int):
    """A signal taken synchronously never passes a delivery stop: fix si_pid here."""
    info_ptr = c.ptr(1)
    if ret <= 0 or not info_ptr:
        return None
    info = bytearray(c.mem.read(info_ptr, 24))
    signo, _err, code, _pad, pid = struct.unpack_from("<iiiii", info)
    if (code in lifecycle.SENDER_CODES or signo == signal.SIGCHLD) and pid > 0:
        struct.pack_into("<i", info, 16, c.kernel.pids.to_guest(pid))
        c.mem.write(info_ptr, bytes(info))
    return None


@syscall("rt_sigtimedwait", mode=TRACE)
def sys_rt_sigtimedwait(c: Call):
    c.on_exit(_siginfo_exit)
    return PASS
