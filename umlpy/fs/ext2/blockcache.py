"""A write-back cache of metadata blocks, written back by kind in a fixed order.

Only metadata goes through here (bitmaps, inode tables, directory, indirect and
extent blocks); file data goes straight to the device. Dirty blocks carry a
kind so sync() can write them in a crash-safe order (writeback.py). A block
allocated since the last sync stays TREE whatever is done to it later: it is
written before the inode that will point at it. Clean blocks are dropped least-recently-used when the cache grows past
its limit; dirty ones stay until written.
"""
from __future__ import annotations

from typing import Dict, Iterator, Tuple

from .errors import corrupt

# Kinds of dirty blocks, in the order sync() writes them (see writeback.py).
# TREE: indirect, extent and attribute blocks and blocks new since the last
# sync (nothing on disk points at them yet). DIR_ADD / DIR_REMOVE: directory
# blocks that gained / lost entries (both: DIR_MIXED). BITMAP: bitmaps.
TREE, DIR_ADD, DIR_MIXED, DIR_REMOVE, BITMAP = range(5)
_DIR_KINDS = (DIR_ADD, DIR_MIXED, DIR_REMOVE)


def merge_kinds(old, new: int) -> int:
    if old is None or old == new:
        return new
    if old in _DIR_KINDS and new in _DIR_KINDS:
        return DIR_MIXED
    return min(old, new)


class BlockCache:
    def __init__(self, dev, block_size: int, blocks_count: int, limit: int = 16384) -> None:
        self.dev = dev
        self.block_size = block_size
        self.blocks_count = blocks_count
        self.limit = limit
        self._blocks: Dict[int, bytearray] = {}
        self._dirty: Dict[int, int] = {}          # block -> kind

    def _check(self, blk: int) -> None:
        if not 0 <= blk < self.blocks_count:
            raise corrupt(f"metadata block {blk} out of range")

    def get(self, blk: int) -> bytearray:
        """The cached block, read from the device on a miss; callers may edit it
        in place and must then call mark_dirty(blk, buffer, kind)."""
        data = self._blocks.pop(blk, None)
        if data is None:
            self._check(blk)
            data = bytearray(self.dev.read(blk * self.block_size, self.block_size))
            self._shrink()
        self._blocks[blk] = data                  # most recently used last
        return data

    def put_new(self, blk: int, data, kind: int) -> bytearray:
        """Install fresh contents for a newly allocated block (no read)."""
        self._check(blk)
        buf = bytearray(data)
        self._blocks.pop(blk, None)
        self._blocks[blk] = buf
        self._dirty[blk] = merge_kinds(self._dirty.get(blk), kind)
        self._shrink()
        return buf

    def mark_dirty(self, blk: int, data: bytearray, kind: int) -> None:
        """Record that data (the buffer get() returned) was changed. The buffer
        is re-installed in case the block was evicted since get()."""
        if self._blocks.get(blk) is not data:
            self._blocks.pop(blk, None)
            self._blocks[blk] = data
        self._dirty[blk] = merge_kinds(self._dirty.get(blk), kind)

    def forget(self, blk: int) -> None:
        """The block was freed: its contents no longer matter."""
        self._blocks.pop(blk, None)
        self._dirty.pop(blk, None)

    def dirty_blocks(self, kind: int) -> Iterator[Tuple[int, bytearray]]:
        for blk in sorted(b for b, k in self._dirty.items() if k == kind):
            yield blk, self._blocks[blk]

    def write_back(self, kind: int) -> int:
        """Write every dirty block of one kind (in block order); returns bytes written."""
        written = 0
        for blk, data in list(self.dirty_blocks(kind)):
            self.dev.write(blk * self.block_size, bytes(data))
            del self._dirty[blk]
            written += len(data)
        return written

    def has_dirty(self) -> bool:
        return bool(self._dirty)

    def _shrink(self) -> None:
        if len(self._blocks) <= self.limit:
            return
        target = self.limit * 3 // 4
        for blk in list(self._blocks):
            if len(self._blocks) <= target:
                break
            if blk not in self._dirty:
                del self._blocks[blk]
