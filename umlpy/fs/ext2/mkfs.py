"""mkfs: format a block device as ext2 or ext4, in pure Python.

The layout follows mke2fs's choices where they matter to e2fsck and the
kernel: superblock backups in groups 0, 1 and powers of 3, 5 and 7
(sparse_super); with flex_bg, the bitmaps and inode tables of 16 groups packed
at the start of the first one; no resize inode and no journal. Inode tables
are zeroed. With metadata_csum, groups that hold nothing but their own
superblock backup are left BLOCK_UNINIT and unused inode tables INODE_UNINIT,
as mke2fs does. The root directory and lost+found are then made through
Ext2Volume itself, and populate_from copies a host tree in (populate.py).
"""
from __future__ import annotations

import os
import stat as st
import time
import uuid as uuid_mod
from typing import Callable, Dict, Iterable, List, Optional, Set, Tuple, Union

from . import constants as c
from . import dirblock as db
from .bitmap import count_set, set_bits, set_padding
from .blockcache import TREE
from .checksum import crc32c_raw
from .groups import GroupDesc, desc_checksum, group_overhead_blocks
from .superblock import Superblock
from .volume import Ext2Volume

Progress = Optional[Callable[[int, int], None]]

FEATURE_BITS: Dict[str, Tuple[str, int]] = {
    "ext_attr": ("compat", c.COMPAT_EXT_ATTR),
    "dir_index": ("compat", c.COMPAT_DIR_INDEX),
    "filetype": ("incompat", c.INCOMPAT_FILETYPE),
    "extent": ("incompat", c.INCOMPAT_EXTENTS),
    "extents": ("incompat", c.INCOMPAT_EXTENTS),
    "64bit": ("incompat", c.INCOMPAT_64BIT),
    "flex_bg": ("incompat", c.INCOMPAT_FLEX_BG),
    "sparse_super": ("ro_compat", c.RO_COMPAT_SPARSE_SUPER),
    "large_file": ("ro_compat", c.RO_COMPAT_LARGE_FILE),
    "huge_file": ("ro_compat", c.RO_COMPAT_HUGE_FILE),
    "dir_nlink": ("ro_compat", c.RO_COMPAT_DIR_NLINK),
    "extra_isize": ("ro_compat", c.RO_COMPAT_EXTRA_ISIZE),
    "metadata_csum": ("ro_compat", c.RO_COMPAT_METADATA_CSUM),
    "uninit_bg": ("ro_compat", c.RO_COMPAT_GDT_CSUM),
}
PRESETS = {
    "ext2": ("ext_attr", "dir_index", "filetype", "sparse_super", "large_file"),
    "ext4": ("ext_attr", "dir_index", "filetype", "extent", "64bit", "flex_bg", "sparse_super",
             "large_file", "huge_file", "dir_nlink", "extra_isize", "metadata_csum"),
}
FLEX_LOG = 4
MIN_LAST_GROUP = 50          # a shorter last group is dropped, as mke2fs does


def _feature_masks(features: Union[str, Iterable[str]]) -> Dict[str, int]:
    names = PRESETS[features] if isinstance(features, str) and features in PRESETS else features
    if isinstance(names, str):
        names = [n for n in names.split(",") if n]
    masks = {"compat": 0, "incompat": 0, "ro_compat": 0}
    for name in names:
        if name not in FEATURE_BITS:
            raise ValueError(f"mkfs: unsupported feature {name!r}")
        kind, bit = FEATURE_BITS[name]
        masks[kind] |= bit
    if masks["ro_compat"] & c.RO_COMPAT_METADATA_CSUM:
        masks["ro_compat"] &= ~c.RO_COMPAT_GDT_CSUM       # metadata_csum supersedes it
    return masks


class _Layout:
    """Where every group's metadata goes; used blocks as runs per group."""

    def __init__(self, sb: Superblock, itable_blocks: int) -> None:
        self.sb = sb
        self.itable_blocks = itable_blocks
        self.ngroups = sb.group_count
        self.reserved: List[Tuple[int, int]] = []      # sb + gdt copies
        for g in range(self.ngroups):
            for blk in group_overhead_blocks(sb, g):
                self.reserved.append((blk, 1))
        self.reserved_set: Set[int] = {b for b, _ in self.reserved}
        self.placed: Dict[int, Tuple[int, int, int]] = {}
        self.hosts_others: Set[int] = set()          # groups holding other groups' metadata
        self._place()

    def _take(self, cursor: int, n: int) -> int:
        """First block at or after cursor starting n free, unreserved blocks."""
        p = cursor
        while True:
            if p + n > self.sb.blocks_count:
                raise ValueError("mkfs: device too small for the file system metadata")
            clash = next((b for b in range(p, p + n) if b in self.reserved_set), None)
            if clash is None:
                return p
            p = clash + 1

    def _place(self) -> None:
        sb = self.sb
        per_flex = sb.groups_per_flex
        for first in range(0, self.ngroups, per_flex):
            members = range(first, min(first + per_flex, self.ngroups))
            cursor = sb.group_first_block(first)
            bbs, ibs, its = {}, {}, {}
            for g in members:
                if per_flex == 1:
                    cursor = sb.group_first_block(g)
                bbs[g] = cursor = self._take(cursor, 1)
                cursor += 1
                if per_flex == 1:
                    ibs[g] = cursor = self._take(cursor, 1)
                    cursor += 1
                    its[g] = cursor = self._take(cursor, self.itable_blocks)
                    cursor += self.itable_blocks
            if per_flex > 1:
                for g in members:
                    ibs[g] = cursor = self._take(cursor, 1)
                    cursor += 1
                for g in members:
                    its[g] = cursor = self._take(cursor, self.itable_blocks)
                    cursor += self.itable_blocks
            for g in members:
                self.placed[g] = (bbs[g], ibs[g], its[g])
                for start, n in ((bbs[g], 1), (ibs[g], 1), (its[g], self.itable_blocks)):
                    first_host = (start - sb.s_first_data_block) // sb.s_blocks_per_group
                    last_host = (start + n - 1 - sb.s_first_data_block) // sb.s_blocks_per_group
                    self.hosts_others.update(h for h in range(first_host, last_host + 1)
                                             if h != g)

    def used_runs(self) -> List[Tuple[int, int]]:
        runs = list(self.reserved)
        for bb, ib, it in self.placed.values():
            runs += [(bb, 1), (ib, 1), (it, self.itable_blocks)]
        return runs


def _geometry(size: int, block_size: Optional[int], inode_size: int,
              bytes_per_inode: Optional[int], is_64bit: bool) -> Tuple[int, int, int, int]:
    """(block size, blocks count, inodes per group, group count)."""
    small = size < 512 * 1024 * 1024
    bs = block_size or (1024 if small else 4096)
    if bs not in (1024, 2048, 4096, 8192, 16384, 32768, 65536):
        raise ValueError(f"mkfs: bad block size {bs}")
    if inode_size < 128 or inode_size > bs or inode_size & (inode_size - 1):
        raise ValueError(f"mkfs: bad inode size {inode_size}")
    ratio = bytes_per_inode or (4096 if small else 16384)
    first = 1 if bs == 1024 else 0
    blocks = size // bs
    if not is_64bit:
        blocks = min(blocks, 0xFFFFFFFF)
    bpg = bs * 8
    while True:
        groups = (blocks - first + bpg - 1) // bpg
        if groups < 1 or blocks < 64:
            raise ValueError(f"mkfs: device of {size} bytes is too small")
        per_block = bs // inode_size
        ipg = -(-max(size // ratio, 16) // groups)
        ipg = -(-ipg // per_block) * per_block
        ipg = min(-(-ipg // 8) * 8, bs * 8)
        itable = ipg * inode_size // bs
        last = blocks - first - (groups - 1) * bpg
        if groups > 1 and last < itable + 2 + MIN_LAST_GROUP + 2:
            blocks = first + (groups - 1) * bpg
            continue
        return bs, blocks, ipg, groups


def mkfs(dev, *, features: Union[str, Iterable[str]] = "ext2", block_size: Optional[int] = None,
         inode_size: int = 256, bytes_per_inode: Optional[int] = None, label: bytes = b"",
         uuid: Optional[bytes] = None, reserved_percent: float = 5.0,
         root_uid: int = 0, root_gid: int = 0, populate_from: Optional[str] = None,
         progress: Progress = None, now_ns: Optional[int] = None) -> None:
    """Format dev (a BlockDevice) with a fresh file system.

    features: "ext2", "ext4" (extents, flex_bg, 64bit, metadata_csum...) or an
    iterable of feature names (see FEATURE_BITS). populate_from copies that
    host directory into the new root. progress(done, total) is called as
    groups are written and, when populating, as host entries are copied.
    """
    masks = _feature_masks(features)
    is_64bit = bool(masks["incompat"] & c.INCOMPAT_64BIT)
    bs, blocks, ipg, ngroups = _geometry(dev.size, block_size, inode_size, bytes_per_inode,
                                         is_64bit)
    now = time.time_ns() if now_ns is None else now_ns
    sb = _superblock(masks, bs, blocks, ipg, ngroups, inode_size, label,
                     uuid or uuid_mod.uuid4().bytes, reserved_percent, now // 1_000_000_000)
    itable_blocks = ipg * inode_size // bs
    layout = _Layout(sb, itable_blocks)
    from .populate import count_entries, populate
    total_entries = count_entries(populate_from) if populate_from else 0
    total = ngroups + total_entries
    groups = _write_groups(dev, sb, layout, progress, total)
    _write_superblocks(dev, sb, groups)
    dev.flush()
    vol = Ext2Volume._mount(dev, False, need_root=False)
    vol.clock = lambda: now if now_ns is not None else time.time_ns()
    _make_root(vol, root_uid, root_gid)
    vol.alloc_state.spread_dirs = False          # lost+found gets inode 11, as usual
    lpf = vol.mkdir(c.ROOT_INO, b"lost+found", 0o700, 0, 0)
    vol.alloc_state.spread_dirs = True
    directory = vol._directory(lpf)
    while directory.inode.size < max(16384, 2 * bs):
        directory._grow()
    if populate_from:
        def step(done: int, _total: int) -> None:
            if progress:
                progress(ngroups + done, total)
        populate(vol, populate_from, progress=step)
    vol.close()


def _superblock(masks: Dict[str, int], bs: int, blocks: int, ipg: int, ngroups: int,
                inode_size: int, label: bytes, fs_uuid: bytes, reserved_percent: float,
                now: int) -> Superblock:
    sb = Superblock()
    sb.s_feature_compat = masks["compat"]
    sb.s_feature_incompat = masks["incompat"]
    sb.s_feature_ro_compat = masks["ro_compat"]
    sb.s_magic = c.EXT2_MAGIC
    sb.s_rev_level = 1
    sb.s_log_block_size = sb.s_log_cluster_size = bs.bit_length() - 11
    sb.s_first_data_block = 1 if bs == 1024 else 0
    sb.s_blocks_per_group = sb.s_clusters_per_group = bs * 8
    sb.s_inodes_per_group = ipg
    sb.s_inode_size = inode_size
    sb.s_first_ino = c.GOOD_OLD_FIRST_INO
    if masks["incompat"] & c.INCOMPAT_64BIT:
        sb.s_desc_size = 64
    sb.blocks_count = blocks
    sb.r_blocks_count = int(blocks * reserved_percent / 100)
    sb.s_inodes_count = ipg * ngroups
    sb.s_state = c.STATE_VALID
    sb.s_errors = 1
    sb.s_max_mnt_count = -1
    sb.s_uuid = fs_uuid
    sb.s_volume_name = label[:16]
    sb.s_hash_seed = uuid_mod.uuid4().bytes
    sb.s_def_hash_version = 1                    # half_md4, mke2fs's default
    sb.s_flags = c.FLAGS_SIGNED_HASH if os.uname().machine in ("x86_64", "i686") \
        else c.FLAGS_UNSIGNED_HASH
    sb.s_default_mount_opts = 0x0C               # user_xattr, acl
    if inode_size > c.GOOD_OLD_INODE_SIZE:
        sb.s_min_extra_isize = sb.s_want_extra_isize = 32
    if masks["incompat"] & c.INCOMPAT_FLEX_BG:
        sb.s_log_groups_per_flex = FLEX_LOG
    if sb.metadata_csum:
        sb.s_checksum_type = 1
    for field in ("s_mkfs_time", "s_wtime", "s_lastcheck"):
        sb.set_times(field, now)
    return sb


def _write_groups(dev, sb: Superblock, layout: _Layout, progress: Progress,
                  total: int) -> List[GroupDesc]:
    """Bitmaps, zeroed inode tables and descriptors for every group."""
    bs, ipg, bpg = sb.block_size, sb.s_inodes_per_group, sb.s_blocks_per_group
    runs_by_group: Dict[int, List[Tuple[int, int]]] = {}
    for start, n in layout.used_runs():
        while n > 0:
            g = (start - sb.s_first_data_block) // bpg
            end = min(start + n, sb.group_first_block(g) + bpg)
            runs_by_group.setdefault(g, []).append((start, end - start))
            n -= end - start
            start = end
    seed = sb.csum_seed() if sb.metadata_csum else 0
    zeros = bytes(layout.itable_blocks * bs)
    groups: List[GroupDesc] = []
    free_blocks = free_inodes = 0
    for g in range(layout.ngroups):
        gd = GroupDesc(bytes(sb.desc_size))
        gd.block_bitmap, gd.inode_bitmap, gd.inode_table = layout.placed[g]
        first = sb.group_first_block(g)
        bmap = bytearray(bs)
        for start, n in runs_by_group.get(g, []):
            set_bits(bmap, start - first, n, True)
        in_group = sb.blocks_in_group(g)
        used = count_set(bmap, 0, in_group)
        set_padding(bmap, in_group)
        imap = bytearray(bs)
        reserved_inodes = sb.first_ino - 1 if g == 0 else 0
        set_bits(imap, 0, reserved_inodes, True)
        set_padding(imap, ipg)
        gd.free_blocks = in_group - used
        gd.free_inodes = ipg - reserved_inodes
        if sb.gdt_csum:
            gd.itable_unused = ipg - reserved_inodes
            gd.bg_flags = c.BG_INODE_ZEROED
            if g != 0:
                gd.bg_flags |= c.BG_INODE_UNINIT
            if g != 0 and g not in layout.hosts_others and g != layout.ngroups - 1:
                gd.bg_flags |= c.BG_BLOCK_UNINIT
        if sb.metadata_csum:
            csum_b = crc32c_raw(seed, bmap[:bpg // 8])
            csum_i = crc32c_raw(seed, imap[:ipg // 8])
            wide = sb.desc_size >= 64
            gd.block_bitmap_csum = csum_b if wide else csum_b & 0xFFFF
            gd.inode_bitmap_csum = csum_i if wide else csum_i & 0xFFFF
        if sb.gdt_csum:
            gd.bg_checksum = desc_checksum(sb, g, gd.buf)
        dev.write(gd.block_bitmap * bs, bytes(bmap))
        dev.write(gd.inode_bitmap * bs, bytes(imap))
        dev.write(gd.inode_table * bs, zeros)
        groups.append(gd)
        free_blocks += gd.free_blocks
        free_inodes += gd.free_inodes
        if progress:
            progress(g + 1, total)
    sb.free_blocks_count = free_blocks
    sb.s_free_inodes_count = free_inodes
    return groups


def _write_superblocks(dev, sb: Superblock, groups: List[GroupDesc]) -> None:
    """The primary superblock and descriptor table, and every backup."""
    bs = sb.block_size
    table = b"".join(bytes(gd.buf) for gd in groups)
    table += bytes(sb.gdt_blocks * bs - len(table))
    if sb.s_first_data_block == 0:
        dev.write(0, bytes(c.SUPERBLOCK_OFFSET))          # no stale boot-sector magic
    for g in range(len(groups)):
        if not sb.has_super(g):
            continue
        sb.s_block_group_nr = g
        sb.update_checksum()
        first = sb.group_first_block(g)
        if g == 0:
            dev.write(c.SUPERBLOCK_OFFSET, bytes(sb.buf))
        else:
            dev.write(first * bs, bytes(sb.buf) + bytes(bs - c.SUPERBLOCK_SIZE))
        dev.write((first + 1) * bs, table)
    sb.s_block_group_nr = 0
    sb.update_checksum()


def _make_root(vol: Ext2Volume, uid: int, gid: int) -> None:
    """Inode 2: a directory that is its own parent (its bitmap bit is already set)."""
    root = vol._new_inode(c.ROOT_INO, st.S_IFDIR | 0o755, uid, gid, vol._iget(c.ROOT_INO))
    root.i_flags &= ~c.INHERITED_FLAGS
    root.i_links_count = 2
    runs = vol.filemap(root).allocate(0, 1, metadata=True)
    seed = vol.seed_of(root) if vol.csum else 0
    vol.cache.put_new(runs[0][1], db.first_block(vol.block_size, c.ROOT_INO, c.ROOT_INO,
                                                 vol.csum, seed, vol.filetype), TREE)
    root.size = vol.block_size
    vol.inode_dirty(root)
    gd = vol.groups[0]
    gd.used_dirs += 1
    vol.alloc_state.dirty_groups.add(0)
