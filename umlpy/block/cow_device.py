"""A block device made of a UML COW file over a read-only backing file.

Reads: a sector whose bitmap bit is set comes from the COW file's data area, any other
from the backing file (zeros past its end: the device is its size rounded up to 512).
Writes always go to the COW file, whole sectors at a time for sectors not yet there (a
partial write to such a sector first takes the rest of it from the backing file), and
set the sectors' bits.

Crash safety (kill -9 at any moment, or the host losing power after a flush):

  1. write():  data pwrite into the COW data area; bits set in memory only.
  2. flush():  fdatasync(COW)            -- the new sectors' data is on disk
               pwrite the changed bitmap pages
               fdatasync(COW)            -- now the bits that vouch for it
So a bit on disk never claims a sector whose data may not be there. A write not yet
flushed may be lost (as with a disk's write cache), never half-claimed. With the `s`
flag the files are O_SYNC and each write() stores its data and then its bitmap bytes
before returning, in that order. Sectors already in the COW file are overwritten in
place, like any disk sector.
"""
from __future__ import annotations

import errno
import os
import threading
from typing import Iterator, Tuple

from .bitmap import SectorBitmap
from .cow import CowHeader
from .device import DeviceBase
from .errors import io_error
from .hostfile import pread_full, pwrite_full


class CowDevice(DeviceBase):
    """Takes ownership of both descriptors (and so of their locks)."""

    def __init__(self, cow_fd: int, backing_fd: int, header: CowHeader, name: str,
                 readonly: bool = False, sync: bool = False) -> None:
        self._cow_fd = cow_fd
        self._backing_fd = backing_fd
        self.header = header
        self.name = name
        self.readonly = readonly
        self.sync = sync
        self.sector_size = header.sector_size
        self.size = header.sectors * header.sector_size
        self._data_offset = header.data_offset
        self._bitmap = SectorBitmap(
            pread_full(cow_fd, header.bitmap_len, header.bitmap_offset), header.sectors)
        self._data_dirty = False
        self._lock = threading.Lock()

    @property
    def backing_file(self) -> str:
        return self.header.backing_file

    @property
    def backing_fd(self) -> int:
        """The backing file's descriptor (read-write only for an in-place merge)."""
        return self._backing_fd

    def sectors_in_cow(self) -> int:
        return self._bitmap.count()

    def cow_extents(self) -> Iterator[Tuple[int, int]]:
        """(first sector, count) of every run of sectors held by the COW file."""
        for start, count, in_cow in self._bitmap.runs(0, self.header.sectors):
            if in_cow:
                yield start, count

    # reading

    def read(self, offset: int, length: int) -> bytes:
        self._check_read(offset, length)
        if not length:
            return b""
        ss, end = self.sector_size, offset + length
        first = offset // ss
        count = (end - 1) // ss + 1 - first
        parts = []
        with self._lock:
            whole = self._bitmap.uniform(first, count)
            if whole is not None:               # the common case: one source for all
                if whole:
                    return self._read_from(self._cow_fd, self._data_offset, offset, length)
                return self._read_from(self._backing_fd, 0, offset, length)
            for start, count, in_cow in self._bitmap.runs(first, count):
                lo, hi = max(offset, start * ss), min(end, (start + count) * ss)
                if in_cow:
                    parts.append(self._read_from(self._cow_fd, self._data_offset, lo, hi - lo))
                else:
                    parts.append(self._read_from(self._backing_fd, 0, lo, hi - lo))
        return parts[0] if len(parts) == 1 else b"".join(parts)

    def _read_from(self, fd: int, base: int, offset: int, length: int) -> bytes:
        """Device bytes [offset, offset + length) stored at `base` + offset in `fd`;
        the part past the backing size reads as zeros."""
        data = pread_full(fd, length, base + offset)
        if len(data) < length:
            if offset + len(data) < self.header.size:
                raise io_error(errno.EIO, f"{self.name}: short read at {offset}")
            data = data.ljust(length, b"\0")
        return data

    # writing

    def write(self, offset: int, data: bytes) -> None:
        length = len(data)
        self._check_write(offset, length)
        if not length:
            return
        ss, end = self.sector_size, offset + length
        first, last = offset // ss, (end - 1) // ss
        if last >= self.header.covered_sectors:
            raise io_error(errno.EIO, f"{self.name}: sector {last} has no bit in this "
                                      f"version {self.header.version} COW bitmap")
        with self._lock:
            start, parts = offset, [data]
            head, tail = offset % ss, end % ss
            if head and not self._bitmap.test(first):
                parts.insert(0, self._read_from(self._backing_fd, 0, first * ss, head))
                start = first * ss
            if tail and not self._bitmap.test(last):
                parts.append(self._read_from(self._backing_fd, 0, end, ss - tail))
            buf = data if len(parts) == 1 else b"".join(parts)
            pwrite_full(self._cow_fd, buf, self._data_offset + start)
            if self._bitmap.set_range(first, last - first + 1) and self.sync:
                self._write_bitmap()            # O_SYNC: the data above is already durable
            self._data_dirty = not self.sync

    def _write_bitmap(self) -> None:
        base = self.header.bitmap_offset
        for offset, chunk in self._bitmap.dirty_extents(self.header.bitmap_len):
            pwrite_full(self._cow_fd, chunk, base + offset)
        self._bitmap.clear_dirty()

    def flush(self) -> None:
        with self._lock:
            if self._cow_fd < 0 or self.readonly:
                return
            if self._bitmap.dirty:
                os.fdatasync(self._cow_fd)      # 1. data of the newly claimed sectors
                self._write_bitmap()            # 2. the bits claiming them
                os.fdatasync(self._cow_fd)      # 3. the bits
            elif self._data_dirty:
                os.fdatasync(self._cow_fd)
            self._data_dirty = False

    def close(self) -> None:
        if self._cow_fd < 0:
            return
        try:
            self.flush()
        finally:
            os.close(self._cow_fd)
            os.close(self._backing_fd)
            self._cow_fd = self._backing_fd = -1
