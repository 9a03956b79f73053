"""The block device protocol, a plain image file, and the ioctl answers.

Every device (plain image, COW, the cache over either) offers exactly:

    size: int                               bytes
    readonly: bool
    read(offset, length) -> bytes           past the end: OSError(EIO)
    write(offset, data) -> None             EROFS if readonly; ENOSPC if it starts at
                                            or past the end, EIO if it straddles it
                                            (nothing is written in either case)
    flush() -> None                         everything written before is durable

plus close() (flushes, releases the host locks) and use as a context manager.
"""
from __future__ import annotations

import errno
import os
from typing import Optional, Protocol, runtime_checkable

from .errors import io_error
from .hostfile import pread_full, pwrite_full

SECTOR_SIZE = 512


@runtime_checkable
class BlockDevice(Protocol):
    size: int
    readonly: bool

    def read(self, offset: int, length: int) -> bytes: ...

    def write(self, offset: int, data: bytes) -> None: ...

    def flush(self) -> None: ...


class DeviceBase:
    """Range checks, close() and the context manager shared by the devices."""
    size: int = 0
    readonly: bool = False
    name: str = "?"

    def _check_read(self, offset: int, length: int) -> None:
        if offset < 0 or length < 0:
            raise io_error(errno.EINVAL, f"{self.name}: read at {offset} of {length}")
        if offset + length > self.size:
            raise io_error(errno.EIO, f"{self.name}: read of {length} bytes at {offset} "
                                      f"past the end ({self.size})")

    def _check_write(self, offset: int, length: int) -> None:
        if self.readonly:
            raise io_error(errno.EROFS, f"{self.name} is read-only")
        if offset < 0:
            raise io_error(errno.EINVAL, f"{self.name}: write at {offset}")
        if offset + length > self.size:
            code = errno.ENOSPC if offset >= self.size else errno.EIO
            raise io_error(code, f"{self.name}: write of {length} bytes at {offset} past "
                                 f"the end ({self.size})")

    def flush(self) -> None:
        raise NotImplementedError

    def close(self) -> None:
        raise NotImplementedError

    def __enter__(self):
        return self

    def __exit__(self, *exc) -> None:
        self.close()


class FileDevice(DeviceBase):
    """A raw image: device byte N is file byte N. Takes ownership of `fd`."""

    def __init__(self, fd: int, name: str, readonly: bool = False, sync: bool = False,
                 size: Optional[int] = None) -> None:
        self._fd = fd
        self.name = name
        self.readonly = readonly
        self.sync = sync                        # fd was opened O_SYNC
        self.size = os.lseek(fd, 0, os.SEEK_END) if size is None else size
        self._dirty = False

    @property
    def fd(self) -> int:
        return self._fd

    def read(self, offset: int, length: int) -> bytes:
        self._check_read(offset, length)
        data = pread_full(self._fd, length, offset)
        if len(data) != length:                 # the file shrank under us
            raise io_error(errno.EIO, f"{self.name}: short read at {offset}")
        return data

    def write(self, offset: int, data: bytes) -> None:
        self._check_write(offset, len(data))
        pwrite_full(self._fd, data, offset)
        self._dirty = not self.sync

    def flush(self) -> None:
        if self._dirty and self._fd >= 0:
            os.fdatasync(self._fd)              # the length never changes: data is enough
            self._dirty = False

    def close(self) -> None:
        if self._fd < 0:
            return
        try:
            self.flush()
        finally:
            os.close(self._fd)
            self._fd = -1


# The block ioctls a guest issues on /dev/ubdX.

def blkgetsize64(dev: BlockDevice) -> int:
    """BLKGETSIZE64: the size in bytes."""
    return dev.size


def blkgetsize(dev: BlockDevice) -> int:
    """BLKGETSIZE: the size in 512-byte sectors."""
    return dev.size // SECTOR_SIZE


def blksszget(dev: BlockDevice) -> int:
    """BLKSSZGET (and BLKPBSZGET): the logical sector size."""
    return SECTOR_SIZE


def blkroget(dev: BlockDevice) -> int:
    """BLKROGET: 1 if read-only."""
    return int(dev.readonly)


def blkflsbuf(dev: BlockDevice) -> None:
    """BLKFLSBUF: write back everything and make it durable."""
    dev.flush()
