"""Block and inode allocation over the group bitmaps.

Freed blocks and inodes are not returned to the bitmaps at once: they stay
"pending" until sync(), after the metadata that stopped referring to them is
on disk. Data is written straight to the device, so reusing a block before
that could put new file data into a block an on-disk directory or indirect
block still points at; reusing an inode could give an on-disk directory entry
an inode of another type. A crash would then leave damage e2fsck -p cannot
fix alone.
"""
from __future__ import annotations

import errno
from typing import Dict, List, Optional, Set, Tuple

from . import constants as c
from .bitmap import count_set, find_free_run, set_bits, set_padding, test_bit
from .blockcache import BITMAP, BlockCache
from .checksum import crc32c_raw
from .errors import corrupt, fail
from .groups import GroupDesc, desc_checksum, group_overhead_blocks
from .superblock import Superblock


class Allocator:
    def __init__(self, sb: Superblock, groups: List[GroupDesc], cache: BlockCache) -> None:
        self.sb, self.groups, self.cache = sb, groups, cache
        self.bs = sb.block_size
        self.bpg = sb.s_blocks_per_group
        self.ipg = sb.s_inodes_per_group
        self.ngroups = len(groups)
        self.csum = sb.metadata_csum
        self.seed = sb.csum_seed() if self.csum else 0
        self.dirty_groups: Set[int] = set()
        self.spread_dirs = True              # Orlov-style spreading of top-level dirs
        self.pending_free: List[Tuple[int, int]] = []
        self.pending_count = 0
        self.pending_inodes: List[Tuple[int, bool]] = []
        self._verified: Set[int] = set()
        self._metadata: Optional[Dict[int, List[Tuple[int, int]]]] = None

    # ---- geometry ----
    def group_of_block(self, blk: int) -> int:
        return (blk - self.sb.s_first_data_block) // self.bpg

    def group_of_inode(self, ino: int) -> int:
        return (ino - 1) // self.ipg

    # ---- bitmaps ----
    def _metadata_runs(self, group: int) -> List[Tuple[int, int]]:
        """Runs of blocks inside the group used by any group's bitmaps or table."""
        if self._metadata is None:
            itable_len = (self.ipg * self.sb.inode_size + self.bs - 1) // self.bs
            table: Dict[int, List[Tuple[int, int]]] = {}
            for gd in self.groups:
                for start, count in ((gd.block_bitmap, 1), (gd.inode_bitmap, 1),
                                     (gd.inode_table, itable_len)):
                    while count > 0:
                        g = self.group_of_block(start)
                        end = min(start + count, self.sb.group_first_block(g) + self.bpg)
                        table.setdefault(g, []).append((start, end - start))
                        count -= end - start
                        start = end
            self._metadata = table
        return self._metadata.get(group, [])

    def _fresh_block_bitmap(self, group: int) -> bytearray:
        bm = bytearray(self.bs)
        first = self.sb.group_first_block(group)
        for blk in group_overhead_blocks(self.sb, group):
            set_bits(bm, blk - first, 1, True)
        for start, count in self._metadata_runs(group):
            set_bits(bm, start - first, count, True)
        set_padding(bm, self.sb.blocks_in_group(group))
        return bm

    def _verify(self, blk: int, bm: bytearray, stored: int, nbytes: int, what: str,
                group: int) -> None:
        if not self.csum or blk in self._verified:
            return
        wide = len(self.groups[group].buf) >= 64
        csum = crc32c_raw(self.seed, bm[:nbytes])
        if (csum if wide else csum & 0xFFFF) != stored:
            raise corrupt(f"{what} checksum mismatch in group {group}")
        self._verified.add(blk)

    def block_bitmap(self, group: int, for_write: bool) -> bytearray:
        gd = self.groups[group]
        if self.sb.gdt_csum and gd.has_flag(c.BG_BLOCK_UNINIT):
            bm = self._fresh_block_bitmap(group)
            if not for_write:
                return bm
            gd.bg_flags &= ~c.BG_BLOCK_UNINIT
            self.dirty_groups.add(group)
            self._verified.add(gd.block_bitmap)
            return self.cache.put_new(gd.block_bitmap, bm, BITMAP)
        bm = self.cache.get(gd.block_bitmap)
        self._verify(gd.block_bitmap, bm, gd.block_bitmap_csum, self.bpg // 8,
                     "block bitmap", group)
        return bm

    def inode_bitmap(self, group: int, for_write: bool) -> bytearray:
        gd = self.groups[group]
        if self.sb.gdt_csum and gd.has_flag(c.BG_INODE_UNINIT):
            bm = bytearray(self.bs)
            set_padding(bm, self.ipg)
            if not for_write:
                return bm
            gd.bg_flags &= ~c.BG_INODE_UNINIT
            self.dirty_groups.add(group)
            self._verified.add(gd.inode_bitmap)
            return self.cache.put_new(gd.inode_bitmap, bm, BITMAP)
        bm = self.cache.get(gd.inode_bitmap)
        self._verify(gd.inode_bitmap, bm, gd.inode_bitmap_csum, self.ipg // 8,
                     "inode bitmap", group)
        return bm

    def _bitmap_dirty(self, group: int, bm: bytearray, which: str) -> None:
        gd = self.groups[group]
        blk = gd.block_bitmap if which == "block" else gd.inode_bitmap
        self.cache.mark_dirty(blk, bm, BITMAP)
        self.dirty_groups.add(group)

    # ---- blocks ----
    def alloc_blocks(self, goal: int, count: int) -> Tuple[int, int]:
        """Allocate up to count contiguous blocks, the first free one at or after
        goal when possible; returns (first block, how many)."""
        sb = self.sb
        if not sb.s_first_data_block <= goal < sb.blocks_count:
            goal = sb.s_first_data_block
        first_group = self.group_of_block(goal)
        for step in range(self.ngroups + 1):
            group = (first_group + step) % self.ngroups
            if self.groups[group].free_blocks == 0:
                continue
            limit = sb.blocks_in_group(group)
            bm = self.block_bitmap(group, for_write=False)
            start = goal - sb.group_first_block(group) if step == 0 else 0
            found = find_free_run(bm, start, limit, count)
            if found is None and start:
                found = find_free_run(bm, 0, limit, count)
            if found is None:
                continue
            bit, n = found
            bm = self.block_bitmap(group, for_write=True)
            set_bits(bm, bit, n, True)
            self._bitmap_dirty(group, bm, "block")
            gd = self.groups[group]
            gd.free_blocks = max(gd.free_blocks - n, 0)
            sb.free_blocks_count = max(sb.free_blocks_count - n, 0)
            return sb.group_first_block(group) + bit, n
        raise fail(errno.ENOSPC)

    def free_blocks(self, start: int, count: int) -> None:
        """Schedule blocks to be released at the next sync()."""
        if count <= 0:
            return
        if start < self.sb.s_first_data_block or start + count > self.sb.blocks_count:
            raise corrupt(f"freeing blocks {start}+{count} out of range")
        self.cache_forget(start, count)
        if self.pending_free and sum(self.pending_free[-1]) == start:
            prev = self.pending_free[-1]
            self.pending_free[-1] = (prev[0], prev[1] + count)
        else:
            self.pending_free.append((start, count))
        self.pending_count += count

    def cache_forget(self, start: int, count: int) -> None:
        if count <= 64:
            for blk in range(start, start + count):
                self.cache.forget(blk)
        else:
            for blk in [b for b in self.cache._blocks if start <= b < start + count]:
                self.cache.forget(blk)

    def apply_pending_frees(self) -> None:
        """Release the scheduled blocks (called by sync once metadata is written)."""
        sb = self.sb
        for start, count in self.pending_free:
            while count > 0:
                group = self.group_of_block(start)
                first = sb.group_first_block(group)
                n = min(count, first + sb.blocks_in_group(group) - start)
                bm = self.block_bitmap(group, for_write=True)
                actually = count_set(bm, start - first, n)     # tolerate double frees
                set_bits(bm, start - first, n, False)
                self._bitmap_dirty(group, bm, "block")
                gd = self.groups[group]
                gd.free_blocks = min(gd.free_blocks + actually, self.bpg)
                sb.free_blocks_count += actually
                start, count = start + n, count - n
        self.pending_free.clear()
        self.pending_count = 0
        for ino, is_dir in self.pending_inodes:
            self._release_inode(ino, is_dir)
        self.pending_inodes.clear()

    def has_pending(self) -> bool:
        return bool(self.pending_free or self.pending_inodes)

    # ---- inodes ----
    def _inode_groups(self, parent_group: int, is_dir: bool, top_level: bool) -> List[int]:
        order = [(parent_group + i) % self.ngroups for i in range(self.ngroups)]
        if is_dir and top_level and self.spread_dirs and self.ngroups > 1:
            # spread top-level directories: roomy groups with few directories first
            free_i = sum(gd.free_inodes for gd in self.groups) / self.ngroups
            free_b = sum(gd.free_blocks for gd in self.groups) / self.ngroups
            roomy = [g for g in order
                     if self.groups[g].free_inodes >= free_i and self.groups[g].free_blocks >= free_b]
            roomy.sort(key=lambda g: self.groups[g].used_dirs)
            order = roomy + [g for g in order if g not in set(roomy)]
        return order

    def alloc_inode(self, parent_ino: int, is_dir: bool) -> int:
        sb = self.sb
        parent_group = min(self.group_of_inode(parent_ino), self.ngroups - 1)
        for group in self._inode_groups(parent_group, is_dir, parent_ino == c.ROOT_INO):
            gd = self.groups[group]
            if gd.free_inodes == 0:
                continue
            bm = self.inode_bitmap(group, for_write=True)
            start = max(sb.first_ino - 1 - group * self.ipg, 0)
            found = find_free_run(bm, start, self.ipg, 1)
            if found is None:
                continue
            bit = found[0]
            set_bits(bm, bit, 1, True)
            self._bitmap_dirty(group, bm, "inode")
            gd.free_inodes -= 1
            sb.s_free_inodes_count = max(sb.s_free_inodes_count - 1, 0)
            if is_dir:
                gd.used_dirs += 1
            if sb.gdt_csum and bit >= self.ipg - gd.itable_unused:
                gd.itable_unused = self.ipg - bit - 1
            return group * self.ipg + bit + 1
        raise fail(errno.ENOSPC)

    def inode_in_use(self, ino: int) -> bool:
        group, bit = divmod(ino - 1, self.ipg)
        return test_bit(self.inode_bitmap(group, for_write=False), bit)

    def free_inode(self, ino: int, is_dir: bool) -> None:
        """Schedule an inode to be released at the next sync()."""
        group, bit = divmod(ino - 1, self.ipg)
        if not test_bit(self.inode_bitmap(group, for_write=False), bit):
            raise corrupt(f"freeing inode {ino} which is not in use")
        self.pending_inodes.append((ino, is_dir))

    def _release_inode(self, ino: int, is_dir: bool) -> None:
        group, bit = divmod(ino - 1, self.ipg)
        bm = self.inode_bitmap(group, for_write=True)
        if not test_bit(bm, bit):
            return                               # tolerate a double free
        set_bits(bm, bit, 1, False)
        self._bitmap_dirty(group, bm, "inode")
        gd = self.groups[group]
        gd.free_inodes = min(gd.free_inodes + 1, self.ipg)
        self.sb.s_free_inodes_count += 1
        if is_dir and gd.used_dirs:
            gd.used_dirs -= 1

    # ---- write-back ----
    def finish_groups(self, clear: bool = True) -> List[int]:
        """Refresh bitmap and descriptor checksums of changed groups; returns them."""
        changed = sorted(self.dirty_groups)
        for group in changed:
            gd = self.groups[group]
            if self.csum:
                if not gd.has_flag(c.BG_BLOCK_UNINIT):
                    bm = self.cache.get(gd.block_bitmap)
                    gd.block_bitmap_csum = self._bitmap_csum(gd, bm, self.bpg // 8)
                if not gd.has_flag(c.BG_INODE_UNINIT):
                    bm = self.cache.get(gd.inode_bitmap)
                    gd.inode_bitmap_csum = self._bitmap_csum(gd, bm, self.ipg // 8)
            if self.sb.gdt_csum:
                gd.bg_checksum = desc_checksum(self.sb, group, gd.buf)
        if clear:
            self.dirty_groups.clear()
        return changed

    def _bitmap_csum(self, gd: GroupDesc, bm: bytearray, nbytes: int) -> int:
        csum = crc32c_raw(self.seed, bm[:nbytes])
        return csum if len(gd.buf) >= 64 else csum & 0xFFFF
