"""Block group descriptors: fields, where the table lives, checksums."""
from __future__ import annotations

import errno
import struct
from typing import List

from . import constants as c
from .checksum import crc16, crc32c_raw
from .errors import Ext2Error
from .rawstruct import Field, RawStruct, SplitField
from .superblock import Superblock


def _wide(gd: "GroupDesc") -> bool:
    return len(gd.buf) >= 64


class GroupDesc(RawStruct):
    bg_block_bitmap_lo = Field(0x0, "I")
    bg_inode_bitmap_lo = Field(0x4, "I")
    bg_inode_table_lo = Field(0x8, "I")
    bg_free_blocks_count_lo = Field(0xC, "H")
    bg_free_inodes_count_lo = Field(0xE, "H")
    bg_used_dirs_count_lo = Field(0x10, "H")
    bg_flags = Field(0x12, "H")
    bg_block_bitmap_csum_lo = Field(0x18, "H")
    bg_inode_bitmap_csum_lo = Field(0x1A, "H")
    bg_itable_unused_lo = Field(0x1C, "H")
    bg_checksum = Field(0x1E, "H")
    bg_block_bitmap_hi = Field(0x20, "I")
    bg_inode_bitmap_hi = Field(0x24, "I")
    bg_inode_table_hi = Field(0x28, "I")
    bg_free_blocks_count_hi = Field(0x2C, "H")
    bg_free_inodes_count_hi = Field(0x2E, "H")
    bg_used_dirs_count_hi = Field(0x30, "H")
    bg_itable_unused_hi = Field(0x32, "H")
    bg_block_bitmap_csum_hi = Field(0x38, "H")
    bg_inode_bitmap_csum_hi = Field(0x3A, "H")

    block_bitmap = SplitField(bg_block_bitmap_lo, bg_block_bitmap_hi, _wide)
    inode_bitmap = SplitField(bg_inode_bitmap_lo, bg_inode_bitmap_hi, _wide)
    inode_table = SplitField(bg_inode_table_lo, bg_inode_table_hi, _wide)
    free_blocks = SplitField(bg_free_blocks_count_lo, bg_free_blocks_count_hi, _wide)
    free_inodes = SplitField(bg_free_inodes_count_lo, bg_free_inodes_count_hi, _wide)
    used_dirs = SplitField(bg_used_dirs_count_lo, bg_used_dirs_count_hi, _wide)
    itable_unused = SplitField(bg_itable_unused_lo, bg_itable_unused_hi, _wide)
    block_bitmap_csum = SplitField(bg_block_bitmap_csum_lo, bg_block_bitmap_csum_hi, _wide)
    inode_bitmap_csum = SplitField(bg_inode_bitmap_csum_lo, bg_inode_bitmap_csum_hi, _wide)

    def has_flag(self, flag: int) -> bool:
        return bool(self.bg_flags & flag)


def desc_checksum(sb: Superblock, group: int, raw: bytes) -> int:
    """bg_checksum for a descriptor (metadata_csum: crc32c low half; else crc16)."""
    le_group = struct.pack("<I", group)
    if sb.metadata_csum:
        zeroed = raw[:0x1E] + b"\0\0" + raw[0x20:]
        return crc32c_raw(crc32c_raw(sb.csum_seed(), le_group), zeroed) & 0xFFFF
    crc = crc16(0xFFFF, sb.s_uuid)
    crc = crc16(crc, le_group)
    crc = crc16(crc, raw[:0x1E])
    if len(raw) > 0x20:
        crc = crc16(crc, raw[0x20:])
    return crc


def gdt_block_numbers(sb: Superblock) -> List[int]:
    """Block numbers of the primary group descriptor table, one per table block."""
    first = sb.s_first_data_block + 1
    count = sb.gdt_blocks
    if not sb.has_incompat(c.INCOMPAT_META_BG):
        return [first + i for i in range(count)]
    per_block = sb.block_size // sb.desc_size
    out = []
    for i in range(count):
        if i < sb.s_first_meta_bg:
            out.append(first + i)
        else:                              # meta_bg: in the first group of its meta group
            group = i * per_block
            out.append(sb.group_first_block(group) + (1 if sb.has_super(group) else 0))
    return out


def group_overhead_blocks(sb: Superblock, group: int) -> List[int]:
    """Blocks of the group taken by a superblock copy and descriptor table (+reserve)."""
    start = sb.group_first_block(group)
    out = []
    if sb.has_super(group):
        out.append(start)
    if not sb.has_incompat(c.INCOMPAT_META_BG):
        if sb.has_super(group):
            table = sb.gdt_blocks + sb.s_reserved_gdt_blocks
            out.extend(range(start + 1, start + 1 + table))
        return out
    per_block = sb.block_size // sb.desc_size
    meta_group, index = divmod(group, per_block)
    if meta_group < sb.s_first_meta_bg:
        if sb.has_super(group):
            table = sb.s_first_meta_bg
            out.extend(range(start + 1, start + 1 + table))
    elif index in (0, 1, per_block - 1):
        out.append(start + (1 if sb.has_super(group) else 0))
    return out


def load_groups(sb: Superblock, read_block) -> List[GroupDesc]:
    """Read, checksum and sanity-check every group descriptor."""
    size, bs = sb.desc_size, sb.block_size
    per_block = bs // size
    groups: List[GroupDesc] = []
    for table_block in gdt_block_numbers(sb):
        if table_block >= sb.blocks_count:
            raise Ext2Error(f"ext2: group descriptor block {table_block} out of range")
        raw = read_block(table_block)
        for i in range(per_block):
            if len(groups) == sb.group_count:
                break
            groups.append(GroupDesc(raw[i * size:(i + 1) * size]))
    for n, gd in enumerate(groups):
        if sb.gdt_csum and desc_checksum(sb, n, gd.buf) != gd.bg_checksum:
            raise Ext2Error(f"ext2: group descriptor {n} checksum mismatch", errno.EUCLEAN)
        itable_blocks = (sb.s_inodes_per_group * sb.inode_size + bs - 1) // bs
        for what, blk, length in (("block bitmap", gd.block_bitmap, 1),
                                  ("inode bitmap", gd.inode_bitmap, 1),
                                  ("inode table", gd.inode_table, itable_blocks)):
            if blk <= sb.s_first_data_block or blk + length > sb.blocks_count:
                raise Ext2Error(f"ext2: group {n} {what} block {blk} out of range")
        if gd.free_inodes > sb.s_inodes_per_group or gd.free_blocks > sb.s_blocks_per_group:
            raise Ext2Error(f"ext2: group {n} free counts out of range")
    return groups
