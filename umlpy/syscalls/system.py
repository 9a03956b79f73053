"""uname, host names, and the calls on descriptors whose arguments name pids
(fcntl F_SETOWN, the tty ioctls)."""
from __future__ import annotations

import errno
import stat
import struct
import time

import umlpy
from umlpy.drivers.block_ioctls import BLOCK_IOCTLS
from umlpy.host import procinfo
from umlpy.kernel import memory
from umlpy.syscalls.call import PASS, Call
from umlpy.syscalls.process import guest_pid, host_pid
from umlpy.syscalls.registry import TRACE, syscall
from umlpy.vfs import ops

UTS_LEN = 65
TIOCGPGRP, TIOCSPGRP, TIOCSTI, TIOCGSID = 0x540F, 0x5410, 0x5412, 0x5429
F_SETOWN, F_GETOWN, F_SETOWN_EX, F_GETOWN_EX = 8, 9, 15, 16


def _field(s: str) -> bytes:
    # names set by sethostname are any bytes, kept as surrogate escapes
    return s.encode("utf-8", "surrogateescape")[:UTS_LEN - 1].ljust(UTS_LEN, b"\0")


@syscall("uname")
def sys_uname(c: Call) -> int:
    k = c.kernel
    data = b"".join(_field(s) for s in (
        "Linux", k.hostname, umlpy.RELEASE, f"#1 SMP umlpy {umlpy.__version__}",
        "x86_64", k.domainname))
    c.write(c.ptr(0), data)
    return 0


def _set_name(c: Call, attr: str) -> int:
    if not c.task.creds.privileged:
        return -errno.EPERM
    length = c.long(1)
    if length < 0 or length > UTS_LEN - 1:
        return -errno.EINVAL
    raw = c.mem.read(c.ptr(0), length) if length else b""
    setattr(c.kernel, attr, raw.split(b"\0", 1)[0].decode("utf-8", "surrogateescape"))
    return 0


@syscall("sethostname")
def sys_sethostname(c: Call) -> int:
    return _set_name(c, "hostname")


@syscall("setdomainname")
def sys_setdomainname(c: Call) -> int:
    return _set_name(c, "domainname")


# ---- sysinfo: the machine's own memory size (mem=) and processes ----
_SYSINFO = struct.Struct("<q3Q6QH6x2QI4x")        # struct sysinfo, 112 bytes
SI_LOAD_SHIFT = 16


def _meminfo_kb(text: str) -> dict:
    out = {}
    for line in text.splitlines():
        key, _sep, rest = line.partition(":")
        parts = rest.split()
        if parts and parts[0].isdigit():
            out[key] = int(parts[0]) * 1024
    return out


@syscall("sysinfo")
def sys_sysinfo(c: Call) -> int:
    k = c.kernel
    host = _meminfo_kb(procinfo.read_host_proc("meminfo").decode())
    loads = procinfo.read_host_proc("loadavg").split()[:3]
    total = host.get("MemTotal", 0)
    free = host.get("MemFree", 0)
    limit = getattr(k, "mem_limit", None)
    if limit is not None:
        total = limit
        free = min(free, max(0, limit - memory.resident_total(k)))
    uptime = int(time.monotonic() - k.kmsg.start)
    data = _SYSINFO.pack(uptime, *(int(float(x) * (1 << SI_LOAD_SHIFT)) for x in loads),
                         total, free, min(host.get("Shmem", 0), total),
                         min(host.get("Buffers", 0), total), host.get("SwapTotal", 0),
                         host.get("SwapFree", 0), min(len(k.pids.live_groups()), 0xFFFF),
                         0, 0, 1)
    c.write(c.ptr(0), data)
    return 0


# ---- ioctl: only the pid-carrying and the dangerous requests stop ----
def _pid_out(c: Call, ret: int):
    if ret == 0 and c.ptr(2):
        host = struct.unpack("<i", c.mem.read(c.ptr(2), 4))[0]
        c.mem.write(c.ptr(2), struct.pack("<i", guest_pid(c, host)))
    return None


def _block_ioctl(c: Call, cmd: int):
    """The block requests, for the guest's ubd nodes; the host answers the rest
    (ENOTTY for a file or a pipe)."""
    _s, h = c.kernel.fds.lookup(c.task, c.fd(0))
    if h is None:
        return PASS
    a = ops.getattr_of(h.path)
    if not stat.S_ISBLK(a.mode):
        return -errno.ENOTTY
    table = getattr(c.kernel, "ubd", None)
    unit = table.by_rdev(a.rdev) if table is not None else None
    if unit is None:
        return -errno.ENXIO
    answer = unit.ioctl(cmd)
    if answer is not None:
        value, size = answer
        c.write(c.ptr(2), value.to_bytes(size, "little"))
    return 0


def _restore_word(addr: int, old: bytes):
    def fix(c: Call, ret: int):
        c.mem.write(addr, old)
        return None
    return fix


# Requests that would change host objects through a descriptor the guest holds
# (often read-only, e.g. a host file of the overlay's lower layer), or that need
# a capability of the host's: refused, as for a process without the capability.
FS_IOC_SETFLAGS, FS_IOC32_SETFLAGS, FS_IOC_FSSETXATTR = 0x40086602, 0x40046602, 0x401C5820
FS_IOC_SETVERSION, FS_IOC_ENABLE_VERITY = 0x40087602, 0x40806685
FS_IOC_SET_ENCRYPTION_POLICY = 0x800C6613
FIFREEZE, FITHAW, FITRIM, FS_IOC_SHUTDOWN = 0xC0045877, 0xC0045878, 0xC0185879, 0x8004587D
TIOCCONS, TIOCSETD, TIOCVHANGUP = 0x541D, 0x5423, 0x5437
RNDADDTOENTCNT, RNDADDENTROPY, RNDZAPENTCNT, RNDCLEARPOOL, RNDRESEEDCRNG = (
    0x40045201, 0x40085203, 0x5204, 0x5206, 0x5207)
HOST_CHANGING_IOCTLS = {
    FS_IOC_SETFLAGS: errno.ENOTTY, FS_IOC32_SETFLAGS: errno.ENOTTY,
    FS_IOC_FSSETXATTR: errno.ENOTTY, FS_IOC_SETVERSION: errno.ENOTTY,
    FS_IOC_ENABLE_VERITY: errno.ENOTTY, FS_IOC_SET_ENCRYPTION_POLICY: errno.ENOTTY,
    FIFREEZE: errno.EPERM, FITHAW: errno.EPERM, FITRIM: errno.EPERM, FS_IOC_SHUTDOWN: errno.EPERM,
    TIOCSTI: errno.EPERM, TIOCCONS: errno.EPERM, TIOCSETD: errno.EPERM, TIOCVHANGUP: errno.EPERM,
    RNDADDTOENTCNT: errno.EPERM, RNDADDENTROPY: errno.EPERM, RNDZAPENTCNT: errno.EPERM,
    RNDCLEARPOOL: errno.EPERM, RNDRESEEDCRNG: errno.EPERM,
}


@syscall("ioctl", mode=TRACE,
         trap_if=(1, (TIOCGPGRP, TIOCSPGRP, TIOCGSID) + tuple(HOST_CHANGING_IOCTLS)
                  + BLOCK_IOCTLS),
         support="partial", note="TIOCSTI, file attribute changes and the requests "
         "needing CAP_SYS_ADMIN on host objects are refused")
def sys_ioctl(c: Call):
    cmd = c.args[1] & 0xFFFFFFFF
    if cmd in HOST_CHANGING_IOCTLS:
        return -HOST_CHANGING_IOCTLS[cmd]
    if cmd in BLOCK_IOCTLS:
        return _block_ioctl(c, cmd)
    if cmd in (TIOCGPGRP, TIOCGSID):
        c.on_exit(_pid_out)
        return PASS
    # TIOCSPGRP: the guest's pgid is rewritten in place and put back at exit;
    # a bad descriptor or a non-terminal fails first, as in Linux
    try:
        if not stat.S_ISCHR(c.kernel.fds.stat(c.task, c.fd(0)).st_mode):
            return -errno.ENOTTY
    except OSError:
        return -errno.EBADF
    addr = c.ptr(2)
    old = c.mem.read(addr, 4)
    pgid = struct.unpack("<i", old)[0]
    if pgid < 0:
        return -errno.EINVAL
    c.mem.write(addr, struct.pack("<i", host_pid(c, pgid)))
    c.on_exit(_restore_word(addr, old))
    return PASS


@syscall("fcntl", mode=TRACE, trap_if=(1, (F_SETOWN, F_GETOWN, F_SETOWN_EX, F_GETOWN_EX)),
         support="partial", note="F_SETOWN_EX/F_GETOWN_EX not yet translated (EINVAL)")
def sys_fcntl(c: Call):
    cmd = c.int(1)
    if cmd in (F_SETOWN_EX, F_GETOWN_EX):
        return -errno.EINVAL
    if cmd == F_SETOWN:
        owner = c.int(2)
        if owner > 0:
            c.set_arg(2, host_pid(c, owner))
        elif owner < 0:
            c.set_arg(2, -host_pid(c, -owner))
        return PASS

    def own_exit(c: Call, ret: int):
        return guest_pid(c, ret) if ret > 0 else None
    c.on_exit(own_exit)
    return PASS
