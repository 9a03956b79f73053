"""Block-mapped files (ext2/ext3): 12 direct pointers, then single, double and
triple indirect blocks of little-endian 32-bit block numbers."""
from __future__ import annotations

import errno
import struct
from typing import List, Optional, Tuple

from .blockcache import TREE
from .errors import fail
from .filemap import AllocRun, Releaser, Run, merge_runs

DIRECT = 12


class BlockMap:
    def __init__(self, ctx, inode) -> None:
        self.ctx, self.inode = ctx, inode
        self.per = ctx.block_size // 4
        self.codec = struct.Struct(f"<{self.per}I")
        per = self.per
        # first file block under each indirect slot (12, 13, 14) and the span below it
        self.bases = (DIRECT, DIRECT + per, DIRECT + per + per * per)
        self.spans = (per, per * per, per * per * per)
        self.max_blocks = min(self.bases[2] + self.spans[2], 0xFFFFFFFF)

    # ---- reading pointers ----
    def _ptr_ok(self, blk: int) -> int:
        if blk:
            self.ctx.check_block(blk, self.inode)
        return blk

    def _read_ptrs(self, blk: int) -> Tuple[int, ...]:
        return self.codec.unpack_from(self.ctx.cache.get(blk))

    def _locate(self, lblk: int) -> Tuple[int, List[int]]:
        """(inode slot, digits) of an indirect file block: digits index each level."""
        for level in range(3):
            rel = lblk - self.bases[level]
            if rel < self.spans[level]:
                digits = []
                for _ in range(level + 1):
                    rel, d = divmod(rel, self.per)
                    digits.append(d)
                return DIRECT + level, digits[::-1]
        raise fail(errno.EFBIG)

    def lookup(self, lblk: int, count: int) -> List[Run]:
        out: List[Run] = []
        end = min(lblk + count, self.max_blocks)
        slots = self.inode.block_slots()
        pos = lblk
        while pos < end:
            if pos < DIRECT:
                stop = min(DIRECT, end)
                out.extend((i, self._ptr_ok(slots[i]), 1) for i in range(pos, stop))
                pos = stop
                continue
            slot, digits = self._locate(pos)
            level = len(digits)
            rel = pos - self.bases[slot - DIRECT]
            blk = self._ptr_ok(slots[slot])
            depth = 0
            while blk and depth < level - 1:
                blk = self._ptr_ok(self._read_ptrs(blk)[digits[depth]])
                depth += 1
            if not blk:                         # a hole covering this whole subtree
                span = self.per ** (level - depth)
                stop = min(pos - rel % span + span, end)
                out.append((pos, 0, stop - pos))
                pos = stop
                continue
            ptrs = self._read_ptrs(blk)
            first = digits[-1]
            n = min(self.per - first, end - pos)
            out.extend((pos + i, self._ptr_ok(ptrs[first + i]), 1) for i in range(n))
            pos += n
        return merge_runs(out)

    # ---- allocating ----
    def _goal(self, lblk: int) -> int:
        """Right after the block before lblk when that one is mapped (contiguity)."""
        if lblk > 0:
            prev = self.lookup(lblk - 1, 1)[0][1]
            if prev:
                return prev + 1
        return self.ctx.goal_for(self.inode)

    def _new_indirect(self, goal: int) -> int:
        blk, _ = self.ctx.alloc(self.inode, goal, 1, True)
        self.ctx.cache.put_new(blk, bytes(self.ctx.block_size), TREE)
        return blk

    def _set_slot(self, slot: int, value: int) -> None:
        slots = list(self.inode.block_slots())
        slots[slot] = value
        self.inode.set_block_slots(slots)
        self.ctx.inode_dirty(self.inode)

    def _leaf_for(self, pos: int, goal: int) -> Tuple[Optional[int], int, int]:
        """(leaf block or None for the inode, first index, pointers left in the leaf),
        creating missing indirect blocks on the way."""
        if pos < DIRECT:
            return None, pos, DIRECT - pos
        slot, digits = self._locate(pos)
        blk = self._ptr_ok(self.inode.block_slots()[slot])
        if not blk:
            blk = self._new_indirect(goal)
            self._set_slot(slot, blk)
        for d in digits[:-1]:
            buf = self.ctx.cache.get(blk)
            child = self._ptr_ok(self.codec.unpack_from(buf)[d])
            if not child:
                child = self._new_indirect(goal)
                buf = self.ctx.cache.get(blk)
                struct.pack_into("<I", buf, d * 4, child)
                self.ctx.cache.mark_dirty(blk, buf, TREE)
            blk = child
        return blk, digits[-1], self.per - digits[-1]

    def allocate(self, lblk: int, count: int, metadata: bool = False) -> List[AllocRun]:
        """Map [lblk, lblk+count), allocating holes. Stops early (shorter result)
        when the disk fills up after at least one block was mapped."""
        if lblk + count > self.max_blocks:
            raise fail(errno.EFBIG)
        out: List[AllocRun] = []
        goal = self._goal(lblk)
        pos, end = lblk, lblk + count
        try:
            while pos < end:
                pos, goal = self._fill_leaf(pos, end, goal, metadata, out)
        except OSError as e:
            if e.errno != errno.ENOSPC or not out:
                raise
        return out

    def _fill_leaf(self, pos: int, end: int, goal: int, metadata: bool,
                   out: List[AllocRun]) -> Tuple[int, int]:
        leaf, index, room = self._leaf_for(pos, goal)
        n = min(room, end - pos)
        ptrs = list(self.inode.block_slots() if leaf is None
                    else self.codec.unpack_from(self.ctx.cache.get(leaf)))
        changed = False
        try:
            i = index
            while i < index + n:
                if ptrs[i]:
                    self._ptr_ok(ptrs[i])
                    out.append((pos, ptrs[i], 1, False))
                    goal = ptrs[i] + 1
                    i, pos = i + 1, pos + 1
                    continue
                stop = i
                while stop < index + n and not ptrs[stop]:
                    stop += 1
                start, got = self.ctx.alloc(self.inode, goal, stop - i, metadata)
                ptrs[i:i + got] = range(start, start + got)
                changed = True
                out.append((pos, start, got, True))
                goal = start + got
                i, pos = i + got, pos + got
        finally:                            # keep what was allocated even on ENOSPC
            if changed:
                if leaf is None:
                    self.inode.set_block_slots(ptrs)
                    self.ctx.inode_dirty(self.inode)
                else:
                    buf = self.ctx.cache.get(leaf)
                    self.codec.pack_into(buf, 0, *ptrs)
                    self.ctx.cache.mark_dirty(leaf, buf, TREE)
        return pos, goal

    # ---- truncating ----
    def truncate(self, keep: int) -> None:
        """Free every block at file block >= keep, and indirect blocks left empty."""
        rel = Releaser(self.ctx, self.inode)
        slots = list(self.inode.block_slots())
        changed = False
        for i in range(min(keep, DIRECT), DIRECT):
            if slots[i]:
                rel.add(self._ptr_ok(slots[i]))
                slots[i] = 0
                changed = True
        for level in range(3):
            slot, base, span = DIRECT + level, self.bases[level], self.spans[level]
            blk = self._ptr_ok(slots[slot])
            if not blk or keep >= base + span:
                continue
            if keep <= base:
                self._free_tree(blk, level + 1, rel)
                slots[slot] = 0
                changed = True
            else:
                self._trim(blk, level + 1, keep - base, rel)
        if changed:
            self.inode.set_block_slots(slots)
            self.ctx.inode_dirty(self.inode)
        rel.done()

    def _free_tree(self, blk: int, level: int, rel: Releaser) -> None:
        if level > 1:
            for child in self._read_ptrs(blk):
                if child:
                    self._free_tree(self._ptr_ok(child), level - 1, rel)
        else:
            for child in self._read_ptrs(blk):
                if child:
                    rel.add(self._ptr_ok(child))
        rel.add(blk)

    def _trim(self, blk: int, level: int, first: int, rel: Releaser) -> None:
        """Free what lies at or past relative file block `first` below blk."""
        sub = self.per ** (level - 1)
        ptrs = list(self._read_ptrs(blk))
        start = first // sub
        if first % sub:
            child = ptrs[start]
            if child:
                self._trim(self._ptr_ok(child), level - 1, first % sub, rel)
            start += 1
        changed = False
        for i in range(start, self.per):
            if ptrs[i]:
                child = self._ptr_ok(ptrs[i])
                if level > 1:
                    self._free_tree(child, level - 1, rel)
                else:
                    rel.add(child)
                ptrs[i] = 0
                changed = True
        if changed:
            buf = self.ctx.cache.get(blk)
            self.codec.pack_into(buf, 0, *ptrs)
            self.ctx.cache.mark_dirty(blk, buf, TREE)

    def flush(self) -> None:
        """Changes go to the cache as they happen; nothing is held back."""
