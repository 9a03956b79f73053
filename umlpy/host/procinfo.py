"""What the host knows about a guest task, read from /proc/<host tid>."""
from __future__ import annotations

import errno
import os
from typing import Optional, Tuple


def _badf(fd: int) -> OSError:
    return OSError(errno.EBADF, f"bad file descriptor {fd}")


def fd_target(tid: int, fd: int) -> str:
    """What the guest's descriptor refers to, as the host names it."""
    if fd < 0:
        raise _badf(fd)
    try:
        return os.readlink(f"/proc/{tid}/fd/{fd}")
    except FileNotFoundError:
        raise _badf(fd) from None


def fd_stat(tid: int, fd: int) -> os.stat_result:
    """fstat of the guest's descriptor (the object it refers to)."""
    if fd < 0:
        raise _badf(fd)
    try:
        return os.stat(f"/proc/{tid}/fd/{fd}")
    except FileNotFoundError:
        raise _badf(fd) from None


def fd_magic_path(tid: int, fd: int) -> str:
    """A host path that reaches the guest's open file (for *at calls on it)."""
    fd_stat(tid, fd)
    return f"/proc/{tid}/fd/{fd}"


def exe_identity(tid: int) -> Tuple[int, int]:
    s = os.stat(f"/proc/{tid}/exe")
    return s.st_dev, s.st_ino


def host_pgid(pid: int) -> int:
    return os.getpgid(pid)


def host_sid(pid: int) -> int:
    return os.getsid(pid)


# ---- raw reads for procfs/sysfs (the only place that opens /proc/<host pid>) ----
def read_fd(fd: int) -> bytes:
    """Everything left to read on a descriptor."""
    chunks = []
    while True:
        b = os.read(fd, 65536)
        if not b:
            return b"".join(chunks)
        chunks.append(b)


def _read_all(path: str) -> bytes:
    fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
    try:
        return read_fd(fd)
    finally:
        os.close(fd)


def read_proc_file(host_tid: int, name: str) -> bytes:
    """/proc/<host tid>/<name> of a guest task; ESRCH once the task is gone."""
    if host_tid <= 0 or name.startswith("/") or ".." in name.split("/"):
        raise OSError(errno.EINVAL, "bad proc file")
    try:
        return _read_all(f"/proc/{host_tid}/{name}")
    except FileNotFoundError:
        if os.path.exists(f"/proc/{host_tid}"):
            raise
        raise ProcessLookupError(errno.ESRCH, "no such process") from None


def read_host_proc(name: str) -> bytes:
    """A system-wide host /proc file (meminfo, stat, cpuinfo, sys/fs/nr_open...)."""
    if name.startswith("/") or ".." in name.split("/") or name.split("/")[0].isdigit() \
            or name.split("/")[0] in ("self", "thread-self"):
        raise OSError(errno.EINVAL, "not a system-wide proc file")
    return _read_all(f"/proc/{name}")


def read_host_sys(name: str) -> bytes:
    """A host /sys file (cpu lists, transparent_hugepage)."""
    if name.startswith("/") or ".." in name.split("/"):
        raise OSError(errno.EINVAL, "bad sys file")
    return _read_all(f"/sys/{name}")


def host_ctty(host_tid: int) -> int:
    """The controlling terminal (tty_nr of stat, a dev_t) of a guest task; 0 if none."""
    raw = read_proc_file(host_tid, "stat")
    fields = raw[raw.rindex(b")") + 2:].split()
    return int(fields[4])           # state ppid pgrp session tty_nr


_libc = None


def pidfd_getfd(pidfd: int, fd: int) -> int:
    """A duplicate, in this process, of descriptor `fd` of the process behind
    `pidfd` (pidfd_getfd(2)): the same open file description, so its offset
    and flags are the guest's own."""
    global _libc
    if _libc is None:
        import ctypes
        _libc = ctypes.CDLL(None, use_errno=True)
        _libc.syscall.restype = ctypes.c_long
    if fd < 0:
        raise _badf(fd)
    r = _libc.syscall(438, pidfd, fd, 0)
    if r < 0:
        import ctypes
        e = ctypes.get_errno()
        raise OSError(e, os.strerror(e))
    os.set_inheritable(r, False)
    return r


def fd_numbers(tid: int) -> list:
    """The descriptor numbers a task holds, ascending."""
    try:
        return sorted(int(n) for n in os.listdir(f"/proc/{tid}/fd"))
    except OSError:
        return []


def fd_info(tid: int, fd: int) -> dict:
    """/proc/<tid>/fdinfo/<fd> as a dict of its "key: value" lines."""
    out = {}
    try:
        with open(f"/proc/{tid}/fdinfo/{fd}") as f:
            for line in f:
                k, _, v = line.partition(":")
                out[k.strip()] = v.strip()
    except FileNotFoundError:
        raise _badf(fd) from None
    return out


def caught_signals(tid: int) -> int:
    """The mask of signals the process has a handler for (SigCgt: bit n-1 is signal n)."""
    for line in read_proc_file(tid, "status").splitlines():
        if line.startswith(b"SigCgt:"):
            return int(line.split()[1], 16)
    return 0


def parent_and_group(tid: int) -> Tuple[int, int]:
    """(PPid, Tgid) of a host task: its real parent process and its own process."""
    ppid = tgid = 0
    for line in read_proc_file(tid, "status").splitlines():
        if line.startswith(b"PPid:"):
            ppid = int(line.split()[1])
        elif line.startswith(b"Tgid:"):
            tgid = int(line.split()[1])
    return ppid, tgid


def current_syscall(tid: int) -> Optional[int]:
    """The syscall number a stopped or sleeping host task is in (-1: none);
    None while it runs."""
    first = read_proc_file(tid, "syscall").split(b" ", 1)[0].strip()
    return None if first == b"running" else int(first)


def open_mem(host_tid: int, flags: int) -> int:
    """/proc/<host tid>/mem of a guest task, for a guest's /proc/PID/mem: the
    descriptor is bound to the task's memory as it is now (as on Linux)."""
    if host_tid <= 0:
        raise OSError(errno.EINVAL, "bad task")
    try:
        return os.open(f"/proc/{host_tid}/mem", (flags & os.O_ACCMODE) | os.O_CLOEXEC)
    except FileNotFoundError:
        raise ProcessLookupError(errno.ESRCH, "no such process") from None
