"""The superblock: fields, geometry derived from them, checksum, feature policy."""
from __future__ import annotations

import errno
from typing import Optional

from . import constants as c
from .checksum import crc32c_raw
from .errors import Ext2Error
from .rawstruct import Field, RawStruct, SplitField


def _is_64bit(sb: "Superblock") -> bool:
    return bool(sb.s_feature_incompat & c.INCOMPAT_64BIT)


class Superblock(RawStruct):
    SIZE = c.SUPERBLOCK_SIZE

    s_inodes_count = Field(0x0, "I")
    s_blocks_count_lo = Field(0x4, "I")
    s_r_blocks_count_lo = Field(0x8, "I")
    s_free_blocks_count_lo = Field(0xC, "I")
    s_free_inodes_count = Field(0x10, "I")
    s_first_data_block = Field(0x14, "I")
    s_log_block_size = Field(0x18, "I")
    s_log_cluster_size = Field(0x1C, "I")
    s_blocks_per_group = Field(0x20, "I")
    s_clusters_per_group = Field(0x24, "I")
    s_inodes_per_group = Field(0x28, "I")
    s_mtime = Field(0x2C, "I")
    s_wtime = Field(0x30, "I")
    s_mnt_count = Field(0x34, "H")
    s_max_mnt_count = Field(0x36, "h")
    s_magic = Field(0x38, "H")
    s_state = Field(0x3A, "H")
    s_errors = Field(0x3C, "H")
    s_minor_rev_level = Field(0x3E, "H")
    s_lastcheck = Field(0x40, "I")
    s_checkinterval = Field(0x44, "I")
    s_creator_os = Field(0x48, "I")
    s_rev_level = Field(0x4C, "I")
    s_def_resuid = Field(0x50, "H")
    s_def_resgid = Field(0x52, "H")
    s_first_ino = Field(0x54, "I")
    s_inode_size = Field(0x58, "H")
    s_block_group_nr = Field(0x5A, "H")
    s_feature_compat = Field(0x5C, "I")
    s_feature_incompat = Field(0x60, "I")
    s_feature_ro_compat = Field(0x64, "I")
    s_uuid = Field(0x68, "16s")
    s_volume_name = Field(0x78, "16s")
    s_last_mounted = Field(0x88, "64s")
    s_reserved_gdt_blocks = Field(0xCE, "H")
    s_journal_uuid = Field(0xD0, "16s")
    s_journal_inum = Field(0xE0, "I")
    s_journal_dev = Field(0xE4, "I")
    s_last_orphan = Field(0xE8, "I")
    s_hash_seed = Field(0xEC, "16s")
    s_def_hash_version = Field(0xFC, "B")
    s_jnl_backup_type = Field(0xFD, "B")
    s_desc_size = Field(0xFE, "H")
    s_default_mount_opts = Field(0x100, "I")
    s_first_meta_bg = Field(0x104, "I")
    s_mkfs_time = Field(0x108, "I")
    s_jnl_blocks = Field(0x10C, "68s")
    s_blocks_count_hi = Field(0x150, "I")
    s_r_blocks_count_hi = Field(0x154, "I")
    s_free_blocks_count_hi = Field(0x158, "I")
    s_min_extra_isize = Field(0x15C, "H")
    s_want_extra_isize = Field(0x15E, "H")
    s_flags = Field(0x160, "I")
    s_log_groups_per_flex = Field(0x174, "B")
    s_checksum_type = Field(0x175, "B")
    s_kbytes_written = Field(0x178, "Q")
    s_overhead_clusters = Field(0x248, "I")
    s_backup_bg0 = Field(0x24C, "I")
    s_backup_bg1 = Field(0x250, "I")
    s_lpf_ino = Field(0x268, "I")
    s_checksum_seed = Field(0x270, "I")
    s_wtime_hi = Field(0x274, "B")
    s_mtime_hi = Field(0x275, "B")
    s_mkfs_time_hi = Field(0x276, "B")
    s_lastcheck_hi = Field(0x277, "B")
    s_orphan_file_inum = Field(0x280, "I")
    s_checksum = Field(0x3FC, "I")

    blocks_count = SplitField(s_blocks_count_lo, s_blocks_count_hi, _is_64bit)
    r_blocks_count = SplitField(s_r_blocks_count_lo, s_r_blocks_count_hi, _is_64bit)
    free_blocks_count = SplitField(s_free_blocks_count_lo, s_free_blocks_count_hi, _is_64bit)

    # ---- features ----
    def has_compat(self, bit: int) -> bool:
        return bool(self.s_feature_compat & bit)

    def has_incompat(self, bit: int) -> bool:
        return bool(self.s_feature_incompat & bit)

    def has_ro_compat(self, bit: int) -> bool:
        return bool(self.s_feature_ro_compat & bit)

    @property
    def metadata_csum(self) -> bool:
        return self.has_ro_compat(c.RO_COMPAT_METADATA_CSUM)

    @property
    def gdt_csum(self) -> bool:
        """Group descriptors carry a checksum (and uninit flags mean something)."""
        return self.metadata_csum or self.has_ro_compat(c.RO_COMPAT_GDT_CSUM)

    # ---- geometry ----
    @property
    def block_size(self) -> int:
        return 1024 << self.s_log_block_size

    @property
    def inode_size(self) -> int:
        return c.GOOD_OLD_INODE_SIZE if self.s_rev_level == 0 else self.s_inode_size

    @property
    def first_ino(self) -> int:
        return c.GOOD_OLD_FIRST_INO if self.s_rev_level == 0 else self.s_first_ino

    @property
    def desc_size(self) -> int:
        return self.s_desc_size if _is_64bit(self) else 32

    @property
    def group_count(self) -> int:
        span = self.blocks_count - self.s_first_data_block
        return (span + self.s_blocks_per_group - 1) // self.s_blocks_per_group

    @property
    def groups_per_flex(self) -> int:
        if self.has_incompat(c.INCOMPAT_FLEX_BG) and self.s_log_groups_per_flex < 31:
            return 1 << self.s_log_groups_per_flex
        return 1

    def group_first_block(self, group: int) -> int:
        return self.s_first_data_block + group * self.s_blocks_per_group

    def blocks_in_group(self, group: int) -> int:
        if group == self.group_count - 1:
            return self.blocks_count - self.group_first_block(group)
        return self.s_blocks_per_group

    def has_super(self, group: int) -> bool:
        """Whether the group holds a superblock backup (and the GDT with it)."""
        if group == 0:
            return True
        if self.has_compat(c.COMPAT_SPARSE_SUPER2):
            return group in (self.s_backup_bg0, self.s_backup_bg1)
        if group <= 1 or not self.has_ro_compat(c.RO_COMPAT_SPARSE_SUPER):
            return True
        if not group & 1:
            return False
        for base in (3, 5, 7):
            n = base
            while n < group:
                n *= base
            if n == group:
                return True
        return False

    @property
    def gdt_blocks(self) -> int:
        per_block = self.block_size // self.desc_size
        return (self.group_count + per_block - 1) // per_block

    # ---- checksums ----
    def csum_seed(self) -> int:
        if self.has_incompat(c.INCOMPAT_CSUM_SEED):
            return self.s_checksum_seed
        return crc32c_raw(0xFFFFFFFF, self.s_uuid)

    def compute_checksum(self) -> int:
        return crc32c_raw(0xFFFFFFFF, self.buf[:0x3FC])

    def update_checksum(self) -> None:
        if self.metadata_csum:
            self.s_checksum = self.compute_checksum()

    def set_times(self, field_lo: str, seconds: int) -> None:
        setattr(self, field_lo, seconds & 0xFFFFFFFF)
        setattr(self, field_lo + "_hi", (seconds >> 32) & 0xFF)


def parse_superblock(raw: bytes, device_size: int) -> Superblock:
    """Validate the geometry enough that later arithmetic cannot go wild."""
    sb = Superblock(raw)
    if sb.s_magic != c.EXT2_MAGIC:
        raise Ext2Error(f"ext2: bad superblock magic {sb.s_magic:#x}")
    if sb.metadata_csum:
        if sb.s_checksum_type != 1:
            raise Ext2Error(f"ext2: unknown checksum type {sb.s_checksum_type}")
        if sb.compute_checksum() != sb.s_checksum:
            raise Ext2Error("ext2: superblock checksum mismatch", errno.EUCLEAN)
    if sb.s_rev_level > 1:
        raise Ext2Error(f"ext2: unknown revision level {sb.s_rev_level}")
    if sb.s_log_block_size > 6:
        raise Ext2Error(f"ext2: bad block size 2^(10+{sb.s_log_block_size})")
    bs = sb.block_size
    if sb.s_first_data_block != (1 if bs == 1024 else 0):
        raise Ext2Error(f"ext2: bad first data block {sb.s_first_data_block}")
    isz = sb.inode_size
    if isz < 128 or isz > bs or isz & (isz - 1):
        raise Ext2Error(f"ext2: bad inode size {isz}")
    if sb.has_ro_compat(c.RO_COMPAT_BIGALLOC):
        if not sb.s_log_block_size <= sb.s_log_cluster_size <= sb.s_log_block_size + 16:
            raise Ext2Error("ext2: bad cluster size")
        ratio = 1 << (sb.s_log_cluster_size - sb.s_log_block_size)
        if not 0 < sb.s_clusters_per_group <= bs * 8 \
                or sb.s_blocks_per_group != sb.s_clusters_per_group * ratio:
            raise Ext2Error(f"ext2: bad clusters per group {sb.s_clusters_per_group}")
    elif sb.s_blocks_per_group == 0 or sb.s_blocks_per_group > bs * 8:
        raise Ext2Error(f"ext2: bad blocks per group {sb.s_blocks_per_group}")
    if sb.s_inodes_per_group == 0 or sb.s_inodes_per_group > bs * 8:
        raise Ext2Error(f"ext2: bad inodes per group {sb.s_inodes_per_group}")
    if sb.has_incompat(c.INCOMPAT_64BIT) and (sb.s_desc_size < 32 or sb.s_desc_size > 1024
                                               or sb.s_desc_size & (sb.s_desc_size - 1)):
        raise Ext2Error(f"ext2: bad group descriptor size {sb.s_desc_size}")
    if sb.blocks_count <= sb.s_first_data_block:
        raise Ext2Error(f"ext2: bad block count {sb.blocks_count}")
    if sb.blocks_count * bs > device_size:
        raise Ext2Error(f"ext2: {sb.blocks_count} blocks of {bs} bytes do not fit the "
                        f"{device_size}-byte device", errno.EUCLEAN)
    if sb.s_inodes_count != sb.group_count * sb.s_inodes_per_group:
        raise Ext2Error(f"ext2: inode count {sb.s_inodes_count} does not match "
                        f"{sb.group_count} groups of {sb.s_inodes_per_group}")
    if sb.first_ino < c.ROOT_INO + 1 or sb.first_ino > sb.s_inodes_count:
        raise Ext2Error(f"ext2: bad first inode {sb.first_ino}")
    return sb


def feature_policy(sb: Superblock) -> Optional[str]:
    """Raise for features we cannot read; return why we must stay read-only, or None."""
    unknown = sb.s_feature_incompat & ~c.INCOMPAT_READABLE
    if unknown:
        raise Ext2Error("ext2: unsupported incompat features: "
                        + c.feature_names(unknown, c.INCOMPAT_NAMES))
    reasons = []
    ro_incompat = sb.s_feature_incompat & ~c.INCOMPAT_WRITABLE & ~c.INCOMPAT_RECOVER
    if ro_incompat:
        reasons.append("no write support for " + c.feature_names(ro_incompat, c.INCOMPAT_NAMES))
    ro_compat = sb.s_feature_ro_compat & ~c.RO_COMPAT_WRITABLE
    if ro_compat:
        reasons.append("no write support for " + c.feature_names(ro_compat, c.RO_COMPAT_NAMES))
    compat = sb.s_feature_compat & c.COMPAT_NOT_WRITABLE
    if compat:
        reasons.append("no write support for " + c.feature_names(compat, c.COMPAT_NAMES))
    if sb.has_compat(c.COMPAT_HAS_JOURNAL) and sb.s_journal_inum == 0:
        reasons.append("external journal")
    if sb.s_state & c.STATE_ERROR:
        reasons.append("file system has errors (run e2fsck)")
    if reasons:
        return "ext2: mounted read-only: " + "; ".join(reasons)
    return None
