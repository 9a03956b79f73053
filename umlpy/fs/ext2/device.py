"""Block devices the ext2 layer works on.

The protocol is deliberately tiny so the ubd layer (COW files, caching) can
implement it too: byte-addressed reads and writes, a size, a read-only flag and
flush() for durability. A read past the end is an error, never a short read.
"""
from __future__ import annotations

import errno
import os
from typing import Optional

from umlpy.block.device import BlockDevice  # noqa: F401  (the protocol, re-exported)


def _check_range(offset: int, length: int, size: int) -> None:
    if offset < 0 or length < 0 or offset + length > size:
        raise OSError(errno.EIO, f"device access {offset}+{length} past the end ({size} bytes)")


class FileDevice:
    """A host file (image or block device) accessed with pread/pwrite."""

    def __init__(self, path_or_fd, readonly: bool = False, size: Optional[int] = None) -> None:
        if isinstance(path_or_fd, int):
            self.fd, self._owned = path_or_fd, False
        else:
            flags = (os.O_RDONLY if readonly else os.O_RDWR) | os.O_CLOEXEC
            self.fd, self._owned = os.open(path_or_fd, flags), True
        self.readonly = readonly
        self.size = size if size is not None else os.lseek(self.fd, 0, os.SEEK_END)

    def read(self, offset: int, length: int) -> bytes:
        _check_range(offset, length, self.size)
        data = os.pread(self.fd, length, offset)
        while len(data) < length:          # pread may return less on some files
            more = os.pread(self.fd, length - len(data), offset + len(data))
            if not more:
                raise OSError(errno.EIO, f"short read at {offset + len(data)}")
            data += more
        return data

    def write(self, offset: int, data: bytes) -> None:
        if self.readonly:
            raise OSError(errno.EROFS, "device is read-only")
        _check_range(offset, len(data), self.size)
        view = memoryview(data)
        while view:
            done = os.pwrite(self.fd, view, offset)
            view, offset = view[done:], offset + done

    def flush(self) -> None:
        if not self.readonly:
            os.fsync(self.fd)

    def close(self) -> None:
        if self._owned and self.fd >= 0:
            os.close(self.fd)
        self.fd = -1


class BytesDevice:
    """An in-memory device over a bytearray (tests, scratch images)."""

    def __init__(self, data, readonly: bool = False) -> None:
        self.data = data if isinstance(data, bytearray) else bytearray(data)
        self.readonly = readonly
        self.size = len(self.data)

    def read(self, offset: int, length: int) -> bytes:
        _check_range(offset, length, self.size)
        return bytes(self.data[offset:offset + length])

    def write(self, offset: int, data: bytes) -> None:
        if self.readonly:
            raise OSError(errno.EROFS, "device is read-only")
        _check_range(offset, len(data), self.size)
        self.data[offset:offset + len(data)] = data

    def flush(self) -> None:
        pass
