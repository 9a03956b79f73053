"""Host files under a block device: opening, fcntl locks, whole-buffer pread/pwrite.

Locks are whole-file fcntl record locks, as UML takes them: a write lock on an image or
COW file opened read-write, a read lock on one opened read-only and on a backing file.
We take them as open-file-description locks (F_OFD_SETLK): they conflict with UML's
classic F_SETLK locks in other processes, and unlike those they also conflict between
two opens inside this process (ubd0 and ubd1 on one file) and are not dropped when
some unrelated descriptor of the same file is closed.
"""
from __future__ import annotations

import errno
import fcntl
import os
import struct

from .errors import BlockError

_SETLK = getattr(fcntl, "F_OFD_SETLK", fcntl.F_SETLK)
_FLOCK = "hhqqi4x"                      # struct flock on Linux x86-64 (32 bytes)


def try_lock(fd: int, write: bool) -> bool:
    """Lock the whole file; False if another holder's lock conflicts."""
    lock = struct.pack(_FLOCK, fcntl.F_WRLCK if write else fcntl.F_RDLCK, os.SEEK_SET,
                       0, 0, 0)
    try:
        fcntl.fcntl(fd, _SETLK, lock)
    except OSError as exc:
        if exc.errno in (errno.EAGAIN, errno.EACCES):
            return False
        raise
    return True


def open_host_file(path: str, what: str, *, writable: bool, sync: bool = False,
                   lock: bool = True, create: bool = False) -> int:
    """Open `path` ("image x", "COW file x", "backing file x" is `what`), locked unless
    `lock` is False; BlockError with one line on any failure."""
    flags = (os.O_RDWR if writable else os.O_RDONLY) | os.O_CLOEXEC
    if sync:
        flags |= os.O_SYNC
    if create:
        flags |= os.O_CREAT | os.O_EXCL
    try:
        fd = os.open(path, flags, 0o644)
    except OSError as exc:
        raise BlockError(f"{what}: {exc.strerror}", exc.errno) from None
    try:
        if lock and not try_lock(fd, write=writable):
            raise BlockError(f"{what} is in use by another process", errno.EBUSY)
    except BaseException:
        os.close(fd)
        raise
    return fd


def pread_full(fd: int, length: int, offset: int) -> bytes:
    """Up to `length` bytes at `offset`; short only at end of file."""
    data = os.pread(fd, length, offset)
    if len(data) == length or not data:
        return data
    parts = [data]
    got = len(data)
    while got < length:
        more = os.pread(fd, length - got, offset + got)
        if not more:
            break
        parts.append(more)
        got += len(more)
    return b"".join(parts)


def pwrite_full(fd: int, data: bytes, offset: int) -> None:
    """Write all of `data` at `offset` (retrying short writes)."""
    view = memoryview(data)
    while view:
        done = os.pwrite(fd, view, offset)
        if done <= 0:
            raise OSError(errno.EIO, "short write to host file")
        view, offset = view[done:], offset + done
