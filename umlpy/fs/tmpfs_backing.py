"""A size-limited host tmpfs to hold the data of a guest tmpfs mounted with size=.

tmpfs file data is written natively by the guest (write, fallocate and
ftruncate on its descriptor never reach the kernel), so the kernel cannot
refuse a block past size=.  The host can: a private tmpfs made with the mount
API (fsopen/fsconfig/fsmount) is attached nowhere in the host's namespace, lives
as long as its descriptor, and gives ENOSPC past its size exactly as Linux's
tmpfs does.  Files are O_TMPFILE files in it.

Making one needs CAP_SYS_ADMIN; without it (umlpy not run as root) the caller
falls back to memfds and size= is enforced only where the kernel sees a change
(truncate by path, copy-up), as tmpfs.py says.
"""
from __future__ import annotations

import ctypes
import os
from typing import Optional

_SYS_FSOPEN, _SYS_FSCONFIG, _SYS_FSMOUNT, _SYS_FSPICK = 430, 431, 432, 433
_FSOPEN_CLOEXEC = _FSMOUNT_CLOEXEC = _FSPICK_CLOEXEC = 1
_FSPICK_EMPTY_PATH = 8
_FSCONFIG_SET_STRING, _FSCONFIG_CMD_CREATE, _FSCONFIG_CMD_RECONFIGURE = 1, 6, 7

_libc = ctypes.CDLL(None, use_errno=True)
_libc.syscall.restype = ctypes.c_long


def _sys(*args) -> int:
    r = _libc.syscall(*args)
    if r < 0:
        e = ctypes.get_errno()
        raise OSError(e, os.strerror(e))
    return r


def _configure(fc: int, size: int, command: int) -> None:
    _sys(_SYS_FSCONFIG, fc, _FSCONFIG_SET_STRING, b"size", str(size).encode(), 0)
    _sys(_SYS_FSCONFIG, fc, command, None, None, 0)


def make(size: int) -> Optional[int]:
    """The descriptor of a detached host tmpfs of `size` bytes, or None when the
    host does not let us make one."""
    try:
        fc = _sys(_SYS_FSOPEN, b"tmpfs", _FSOPEN_CLOEXEC)
    except OSError:
        return None
    try:
        _configure(fc, size, _FSCONFIG_CMD_CREATE)
        return _sys(_SYS_FSMOUNT, fc, _FSMOUNT_CLOEXEC, 0)
    except OSError:
        return None
    finally:
        os.close(fc)


def resize(mnt: int, size: int) -> None:
    """mount -o remount,size=: the host refuses (EINVAL) a size below what is used."""
    fc = _sys(_SYS_FSPICK, mnt, b"", _FSPICK_CLOEXEC | _FSPICK_EMPTY_PATH)
    try:
        _configure(fc, size, _FSCONFIG_CMD_RECONFIGURE)
    finally:
        os.close(fc)


def new_file(mnt: int) -> int:
    """An unnamed file in the host tmpfs (ENOSPC when it has no inode left)."""
    return os.open(".", os.O_TMPFILE | os.O_RDWR | os.O_CLOEXEC, 0o600, dir_fd=mnt)
