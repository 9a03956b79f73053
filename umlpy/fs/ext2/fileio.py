"""File data operations of Ext2Volume: read, write, truncate, read_extents.

Data goes straight to the device (no data cache: the VFS keeps its own page
cache and can fill it quickly from read_extents()). Newly allocated blocks are
written whole, zeros around the data, since they may hold a previous owner's
bytes; truncate() zeroes the tail of the new last block so a later extension
reads zeros there.
"""
from __future__ import annotations

import errno
import stat as st
from typing import List, Tuple

from . import constants as c
from .blockmap import BlockMap
from .errors import corrupt, fail
from .extents import MAX_FILE_BLOCKS
from .inline import inline_bytes
from .inode import Inode


class FileDataOps:
    """Mixed into Ext2Volume."""

    def _regular(self, ino: int) -> Inode:
        inode = self._iget(ino)
        if st.S_ISDIR(inode.i_mode):
            raise fail(errno.EISDIR)
        if not st.S_ISREG(inode.i_mode):
            raise fail(errno.EINVAL)
        return inode

    def _max_size(self, inode: Inode) -> int:
        fmap = self.filemap(inode)
        blocks = fmap.max_blocks if isinstance(fmap, BlockMap) else MAX_FILE_BLOCKS - 1
        return blocks * self.block_size

    def read(self, ino: int, offset: int, length: int) -> bytes:
        """Up to length bytes at offset (short at end of file; holes read as zeros)."""
        self._housekeep()
        inode = self._regular(ino)
        return self._read_data(inode, offset, length)

    def _read_data(self, inode: Inode, offset: int, length: int) -> bytes:
        if offset < 0 or length < 0:
            raise fail(errno.EINVAL)
        end = min(inode.size, offset + length)
        if end <= offset:
            return b""
        if inode.size > self._max_size(inode):
            raise corrupt(f"size {inode.size} too large in inode {inode.ino}")
        if inode.i_flags & c.INLINE_DATA_FL:
            return inline_bytes(self, inode)[offset:end].ljust(end - offset, b"\0")
        bs = self.block_size
        first, last = offset // bs, (end - 1) // bs
        pieces = []
        for lblk, pblk, n in self.filemap(inode).lookup(first, last - first + 1):
            lo, hi = max(offset, lblk * bs), min(end, (lblk + n) * bs)
            pieces.append(self.dev.read(pblk * bs + lo - lblk * bs, hi - lo) if pblk
                          else bytes(hi - lo))
        return pieces[0] if len(pieces) == 1 else b"".join(pieces)

    def read_extents(self, ino: int) -> List[Tuple[int, int, int]]:
        """(file block, disk block, count) for every mapped, written run of a
        regular file, in file order; everything else reads as zeros."""
        self._housekeep()
        inode = self._regular(ino)
        if inode.size > self._max_size(inode):
            raise corrupt(f"size {inode.size} too large in inode {inode.ino}")
        nblocks = (inode.size + self.block_size - 1) // self.block_size
        out = []
        for lblk, pblk, n in self.filemap(inode).lookup(0, nblocks):
            if pblk:
                out.append((lblk, pblk, n))
        return out

    def write(self, ino: int, offset: int, data: bytes) -> int:
        """Write data at offset, allocating as needed; returns the byte count
        (short only when the disk fills up part way; ENOSPC if nothing fit)."""
        self._housekeep()
        self._rw()
        inode = self._regular(ino)
        if offset < 0:
            raise fail(errno.EINVAL)
        if not data:
            return 0
        limit = self._max_size(inode)
        if offset >= limit:
            raise fail(errno.EFBIG)
        data = memoryview(data)[:limit - offset]
        end = offset + len(data)
        bs = self.block_size
        first, last = offset // bs, (end - 1) // bs
        runs = self.filemap(inode).allocate(first, last - first + 1)
        done = offset
        for lblk, pblk, n, fresh in _coalesce(runs):
            start, stop = lblk * bs, (lblk + n) * bs
            lo, hi = max(offset, start), min(end, stop)
            chunk = data[lo - offset:hi - offset]
            if fresh and (lo > start or hi < stop):
                chunk = b"".join((bytes(lo - start), chunk, bytes(stop - hi)))
                lo = start
            self.dev.write(pblk * bs + lo - start, chunk)
            self._bytes_written += len(chunk)
            self._data_dirty = True
            done = hi
        if done > inode.size:
            self._set_size(inode, done)
        self._touch(inode, "mtime", "ctime")
        return done - offset

    def _set_size(self, inode: Inode, size: int) -> None:
        inode.size = size
        if size >= 1 << 31 and not self.sb.has_ro_compat(c.RO_COMPAT_LARGE_FILE):
            self.sb.s_feature_ro_compat |= c.RO_COMPAT_LARGE_FILE
            self._sb_dirty = True
        self.inode_dirty(inode)

    def truncate(self, ino: int, size: int) -> None:
        """Set a regular file's size: frees blocks past the end (sparse stays sparse)."""
        self._housekeep()
        self._rw()
        inode = self._regular(ino)
        if size < 0:
            raise fail(errno.EINVAL)
        if size > self._max_size(inode):
            raise fail(errno.EFBIG)
        bs = self.block_size
        old = inode.size
        fmap = self.filemap(inode)
        if size < old:
            fmap.truncate((size + bs - 1) // bs)
        # bytes past the end of the last block must read as zeros if the file grows
        edge = min(size, old)
        if edge % bs:
            pblk = fmap.lookup(edge // bs, 1)[0][1]
            if pblk:
                self.dev.write(pblk * bs + edge % bs, bytes(bs - edge % bs))
                self._data_dirty = True
        self._set_size(inode, size)


def _coalesce(runs):
    """Join allocation runs that continue each other on disk with the same freshness."""
    out = []
    for lblk, pblk, n, fresh in runs:
        if out:
            plblk, ppblk, pn, pfresh = out[-1]
            if pfresh == fresh and plblk + pn == lblk and ppblk + pn == pblk:
                out[-1] = (plblk, ppblk, pn + n, fresh)
                continue
        out.append((lblk, pblk, n, fresh))
    return out
