"""Extent-mapped files (ext4): the tree is read whole into a sorted list and
written back, packed, after every change.

Rewriting the tree from the list keeps the code small and always yields a
valid tree (index starts equal to their child's first extent, as e2fsck
wants). Existing tree blocks are reused in order and only blocks whose bytes
change are dirtied, so appending to a big file touches one leaf.
"""
from __future__ import annotations

import bisect
import errno
import struct
from typing import List, Tuple

from . import constants as c
from .blockcache import TREE
from .checksum import crc32c_raw
from .errors import corrupt, fail
from .filemap import AllocRun, Releaser, Run, merge_runs

HEADER = struct.Struct("<HHHHI")        # magic, entries, max, depth, generation
LEAF = struct.Struct("<IHHI")           # first block, len, start hi, start lo
INDEX = struct.Struct("<IIHH")          # first block, leaf lo, leaf hi, unused
MAX_DEPTH = 5
INIT_MAX = 32768                        # longest initialized extent
UNINIT_MAX = 32767                      # longest unwritten (preallocated) one
MAX_FILE_BLOCKS = 1 << 32


class Extent:
    __slots__ = ("lblk", "length", "pblk", "uninit")

    def __init__(self, lblk: int, length: int, pblk: int, uninit: bool = False) -> None:
        self.lblk, self.length, self.pblk, self.uninit = lblk, length, pblk, uninit

    @property
    def end(self) -> int:
        return self.lblk + self.length

    def __repr__(self) -> str:
        return f"Extent({self.lblk}, {self.length}, {self.pblk}{', uninit' if self.uninit else ''})"


class ExtentMap:
    def __init__(self, ctx, inode) -> None:
        self.ctx, self.inode = ctx, inode
        self.bs = ctx.block_size
        self.node_max = (self.bs - HEADER.size) // LEAF.size
        self.extents: List[Extent] = []
        self.tree_blocks: List[int] = []
        self._reused: set = set()
        self._load()

    # ---- reading the tree ----
    def _where(self) -> str:
        return f"in inode {self.inode.ino}"

    def _header(self, buf, max_allowed: int, want_depth) -> Tuple[int, int, int]:
        magic, entries, emax, depth, _ = HEADER.unpack_from(buf)
        if magic != c.EXTENT_MAGIC:
            raise corrupt(f"bad extent header magic {magic:#x} {self._where()}")
        if emax > max_allowed or entries > emax or depth > MAX_DEPTH:
            raise corrupt(f"bad extent header (entries {entries}, max {emax}, depth {depth}) "
                          f"{self._where()}")
        if want_depth is not None and depth != want_depth:
            raise corrupt(f"extent tree depth {depth}, expected {want_depth} {self._where()}")
        return entries, emax, depth

    def _verify_node(self, blk: int, buf, emax: int) -> None:
        if not self.ctx.csum:
            return
        end = HEADER.size + emax * LEAF.size
        if end + 4 > self.bs:
            return
        stored = struct.unpack_from("<I", buf, end)[0]
        if crc32c_raw(self.ctx.seed_of(self.inode), buf[:end]) != stored:
            raise corrupt(f"extent block {blk} checksum mismatch {self._where()}")

    def _load(self) -> None:
        root = bytes(self.inode.i_block)
        entries, _, depth = self._header(root, 4, None)
        stack = [(root, entries, depth, None)]      # node bytes, entries, depth, block
        seen = set()
        extents: List[Extent] = []
        blocks: List[Tuple[int, int]] = []          # (depth, block) to keep leaf-first order
        while stack:
            buf, entries, depth, blk = stack.pop()
            if depth == 0:
                for i in range(entries):
                    first, length, hi, lo = LEAF.unpack_from(buf, 12 + 12 * i)
                    uninit = length > INIT_MAX
                    if uninit:
                        length -= INIT_MAX
                    pblk = (hi << 32) | lo
                    if length == 0:
                        raise corrupt(f"empty extent {self._where()}")
                    self.ctx.check_block(pblk, self.inode)
                    self.ctx.check_block(pblk + length - 1, self.inode)
                    extents.append(Extent(first, length, pblk, uninit))
                continue
            children = []
            for i in range(entries):
                first, lo, hi, _ = INDEX.unpack_from(buf, 12 + 12 * i)
                child = (hi << 32) | lo
                self.ctx.check_block(child, self.inode)
                if child in seen:
                    raise corrupt(f"extent block {child} used twice {self._where()}")
                seen.add(child)
                cbuf = bytes(self.ctx.cache.get(child))
                centries, cmax, _ = self._header(cbuf, self.node_max, depth - 1)
                self._verify_node(child, cbuf, cmax)
                blocks.append((depth - 1, child))
                children.append((cbuf, centries, depth - 1, child))
            stack.extend(reversed(children))        # depth-first, in file order
        for prev, cur in zip(extents, extents[1:]):
            if cur.lblk < prev.end:
                raise corrupt(f"extents out of order or overlapping {self._where()}")
        if extents and extents[-1].end > MAX_FILE_BLOCKS:
            raise corrupt(f"extent past the largest file block {self._where()}")
        self.extents = extents
        self.tree_blocks = [b for _, b in sorted(blocks, key=lambda db: db[0])]

    # ---- lookups ----
    def _first_ending_after(self, lblk: int) -> int:
        """Index of the first extent whose end is past lblk."""
        ends = [e.end for e in self.extents]
        return bisect.bisect_right(ends, lblk)

    def lookup(self, lblk: int, count: int) -> List[Run]:
        out: List[Run] = []
        pos, end = lblk, lblk + count
        i = self._first_ending_after(lblk)
        while pos < end:
            if i >= len(self.extents):
                out.append((pos, 0, end - pos))
                break
            e = self.extents[i]
            if e.lblk > pos:
                stop = min(e.lblk, end)
                out.append((pos, 0, stop - pos))
                pos = stop
                continue
            stop = min(e.end, end)
            out.append((pos, 0 if e.uninit else e.pblk + pos - e.lblk, stop - pos))
            pos = stop
            i += 1
        return merge_runs(out)

    # ---- changing the list ----
    def _goal(self, i: int, pos: int) -> int:
        if i > 0:
            prev = self.extents[i - 1]
            return prev.pblk + prev.length + (pos - prev.end)
        if self.extents:
            nxt = self.extents[0]
            return max(nxt.pblk - (nxt.lblk - pos), 0)
        return self.ctx.goal_for(self.inode)

    def _insert(self, i: int, ext: Extent) -> None:
        """Put ext at index i, merging with the neighbour before when contiguous."""
        if i > 0:
            prev = self.extents[i - 1]
            limit = UNINIT_MAX if ext.uninit else INIT_MAX
            if (prev.uninit == ext.uninit and prev.end == ext.lblk
                    and prev.pblk + prev.length == ext.pblk and prev.length + ext.length <= limit):
                prev.length += ext.length
                return
        self.extents.insert(i, ext)

    def allocate(self, lblk: int, count: int, metadata: bool = False) -> List[AllocRun]:
        if lblk + count > MAX_FILE_BLOCKS:
            raise fail(errno.EFBIG)
        out: List[AllocRun] = []
        pos, end = lblk, lblk + count
        try:
            while pos < end:
                i = self._first_ending_after(pos)
                e = self.extents[i] if i < len(self.extents) else None
                if e is not None and e.lblk <= pos:
                    stop = min(e.end, end)
                    if e.uninit:
                        self._convert(i, pos, stop)
                        out.append((pos, e.pblk + pos - e.lblk, stop - pos, True))
                    else:
                        out.append((pos, e.pblk + pos - e.lblk, stop - pos, False))
                    pos = stop
                    continue
                stop = min(e.lblk if e is not None else end, end, pos + INIT_MAX)
                start, got = self.ctx.alloc(self.inode, self._goal(i, pos), stop - pos, metadata)
                self._insert(i, Extent(pos, got, start))
                out.append((pos, start, got, True))
                pos += got
        except OSError as e:
            if e.errno != errno.ENOSPC or not out:
                self._remerge()
                self.flush()
                raise
        self._remerge()
        self.flush()
        return out

    def _convert(self, i: int, start: int, stop: int) -> None:
        """Mark [start, stop) of the unwritten extent i as written (splitting it)."""
        e = self.extents[i]
        pieces = []
        if e.lblk < start:
            pieces.append(Extent(e.lblk, start - e.lblk, e.pblk, True))
        pieces.append(Extent(start, stop - start, e.pblk + start - e.lblk, False))
        if stop < e.end:
            pieces.append(Extent(stop, e.end - stop, e.pblk + stop - e.lblk, True))
        self.extents[i:i + 1] = pieces
        self._remerge()

    def _remerge(self) -> None:
        merged: List[Extent] = []
        for e in self.extents:
            if merged:
                prev = merged[-1]
                limit = UNINIT_MAX if e.uninit else INIT_MAX
                if (prev.uninit == e.uninit and prev.end == e.lblk
                        and prev.pblk + prev.length == e.pblk and prev.length + e.length <= limit):
                    prev.length += e.length
                    continue
            merged.append(e)
        self.extents = merged

    def truncate(self, keep: int) -> None:
        rel = Releaser(self.ctx, self.inode)
        kept: List[Extent] = []
        for e in self.extents:
            if e.end <= keep:
                kept.append(e)
            elif e.lblk >= keep:
                rel.add_run(e.pblk, e.length)
            else:
                cut = keep - e.lblk
                rel.add_run(e.pblk + cut, e.length - cut)
                e.length = cut
                kept.append(e)
        rel.done()
        self.extents = kept
        self.flush()

    # ---- writing the tree ----
    def _node_bytes(self, entries: List[bytes], emax: int, depth: int, size: int) -> bytearray:
        buf = bytearray(size)
        HEADER.pack_into(buf, 0, c.EXTENT_MAGIC, len(entries), emax, depth, 0)
        for n, entry in enumerate(entries):
            buf[12 + 12 * n:24 + 12 * n] = entry
        return buf

    @staticmethod
    def _leaf_entry(e: Extent) -> bytes:
        length = e.length + (INIT_MAX if e.uninit else 0)
        return LEAF.pack(e.lblk, length, e.pblk >> 32, e.pblk & 0xFFFFFFFF)

    @staticmethod
    def _index_entry(first: int, blk: int) -> bytes:
        return INDEX.pack(first, blk & 0xFFFFFFFF, blk >> 32, 0)

    def flush(self) -> None:
        """Write the list back as a packed tree (root in i_block)."""
        per = self.node_max
        entries = [(e.lblk, self._leaf_entry(e)) for e in self.extents]
        shape = []                               # node count per level, leaves first
        n = len(entries)
        while n > 4:
            n = (n + per - 1) // per
            shape.append(n)
        blocks = self._tree_blocks(sum(shape))
        k = 0
        for depth, count in enumerate(shape):
            parents = []
            for j in range(count):
                chunk = entries[j * per:(j + 1) * per]
                self._write_node(blocks[k], [entry for _, entry in chunk], depth)
                parents.append((chunk[0][0], self._index_entry(chunk[0][0], blocks[k])))
                k += 1
            entries = parents
        root = self._node_bytes([entry for _, entry in entries], 4, len(shape), 60)
        if bytes(root) != bytes(self.inode.i_block):
            self.inode.i_block = bytes(root)
            self.ctx.inode_dirty(self.inode)

    def _write_node(self, blk: int, entries: List[bytes], depth: int) -> None:
        buf = self._node_bytes(entries, self.node_max, depth, self.bs)
        if self.ctx.csum:
            end = HEADER.size + self.node_max * LEAF.size
            struct.pack_into("<I", buf, end, crc32c_raw(self.ctx.seed_of(self.inode), buf[:end]))
        if blk in self._reused and self.ctx.cache.get(blk) == buf:
            return                               # unchanged: leave it clean
        self.ctx.cache.put_new(blk, buf, TREE)

    def _tree_blocks(self, needed: int) -> List[int]:
        """Blocks for the tree nodes: the old ones first, then new; frees the rest."""
        blocks = self.tree_blocks[:needed]
        surplus = self.tree_blocks[needed:]
        self._reused = set(blocks)
        while len(blocks) < needed:
            goal = blocks[-1] + 1 if blocks else self._goal(len(self.extents), 0)
            blk, _ = self.ctx.alloc(self.inode, goal, 1, True)
            blocks.append(blk)
            self.tree_blocks = list(blocks) + surplus    # owned even if we fail below
        if surplus:
            rel = Releaser(self.ctx, self.inode)
            for blk in surplus:
                rel.add(blk)
            rel.done()
        self.tree_blocks = blocks
        return blocks

    def runs(self) -> List[Run]:
        return [(e.lblk, e.pblk, e.length) for e in self.extents if not e.uninit]
