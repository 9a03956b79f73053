"""What the host knows about a guest task, read from /proc/<host tid>."""
from __future__ import annotations

import errno
import os
from typing import Tuple


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
