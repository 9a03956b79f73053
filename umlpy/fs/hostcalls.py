"""Host calls Python's os module lacks (renameat2, utimensat with UTIME_OMIT, fstatfs),
and a cheaper reopen of one of our own descriptors."""
from __future__ import annotations

import ctypes
import errno
import os
from typing import Optional

_libc = ctypes.CDLL(None, use_errno=True)     # (find_library would run ldconfig)
_libc.renameat2.argtypes = [ctypes.c_int, ctypes.c_char_p, ctypes.c_int, ctypes.c_char_p, ctypes.c_uint]
_libc.utimensat.argtypes = [ctypes.c_int, ctypes.c_char_p, ctypes.c_void_p, ctypes.c_int]
_libc.fstatfs.argtypes = [ctypes.c_int, ctypes.c_void_p]

_libc.syscall.restype = ctypes.c_long

SYS_OPENAT2 = 437
RESOLVE_NO_MAGICLINKS, RESOLVE_NO_SYMLINKS, RESOLVE_BENEATH = 0x02, 0x04, 0x08
# Stay inside the directory, interpret no symlink: the guest's symlinks are the VFS's.
RESOLVE_CONFINED = RESOLVE_BENEATH | RESOLVE_NO_SYMLINKS | RESOLVE_NO_MAGICLINKS


class _OpenHow(ctypes.Structure):
    _fields_ = [("flags", ctypes.c_uint64), ("mode", ctypes.c_uint64), ("resolve", ctypes.c_uint64)]


AT_SYMLINK_NOFOLLOW = 0x100
AT_EMPTY_PATH = 0x1000
STATFS_SIZE = 120


def _fail(what: str) -> None:
    e = ctypes.get_errno()
    raise OSError(e, f"{what}: {os.strerror(e)}")


def openat2(dirfd: int, path: str, flags: int, mode: int = 0,
            resolve: int = RESOLVE_CONFINED) -> int:
    """openat2(2): open `path` below `dirfd` without leaving it or following symlinks."""
    how = _OpenHow(flags, mode, resolve)
    fd = _libc.syscall(SYS_OPENAT2, dirfd, os.fsencode(path), ctypes.byref(how),
                       ctypes.sizeof(how))
    if fd < 0:
        _fail(path)
    return fd


_self_fds = -1      # /proc/self/fd, held: a reopen then walks one name, not four


def self_fds() -> int:
    """Our descriptor of /proc/self/fd (opened once, kept)."""
    global _self_fds
    if _self_fds < 0:
        _self_fds = os.open("/proc/self/fd", os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    return _self_fds


def reopen(fd: int, flags: int) -> int:
    """A new open file description of the object behind our descriptor fd
    (a memfd has no other name), with `flags`."""
    return os.open(str(fd), flags, dir_fd=self_fds())


def renameat2(odirfd: int, oname: str, ndirfd: int, nname: str, flags: int) -> None:
    if _libc.renameat2(odirfd, os.fsencode(oname), ndirfd, os.fsencode(nname), flags) != 0:
        _fail("renameat2")


def utimensat(dirfd: int, name: str, times: Optional[bytes], nofollow: bool) -> None:
    """times: the guest's two struct timespec (32 bytes), or None for now."""
    buf = ctypes.create_string_buffer(times, 32) if times is not None else None
    flags = AT_SYMLINK_NOFOLLOW if nofollow else 0
    path = os.fsencode(name)
    if name == "":      # the directory descriptor itself, through its magic link
        dirfd, path, flags = -100, os.fsencode(f"/proc/self/fd/{dirfd}"), 0
    if _libc.utimensat(dirfd, path, buf, flags) != 0:
        _fail("utimensat")


def fstatfs(fd: int) -> bytes:
    """struct statfs of an open (or O_PATH) descriptor, as raw bytes."""
    buf = ctypes.create_string_buffer(STATFS_SIZE)
    if _libc.fstatfs(fd, buf) != 0:
        _fail("fstatfs")
    return buf.raw


__all__ = ["openat2", "renameat2", "utimensat", "fstatfs", "errno"]
