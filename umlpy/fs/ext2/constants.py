"""On-disk constants of ext2/3/4: magic numbers, feature bits, inode flags."""
from __future__ import annotations

import stat as st

SUPERBLOCK_OFFSET = 1024
SUPERBLOCK_SIZE = 1024
EXT2_MAGIC = 0xEF53
EXTENT_MAGIC = 0xF30A
XATTR_MAGIC = 0xEA020000
JBD2_MAGIC = 0xC03B3998

ROOT_INO = 2
RESIZE_INO = 7
JOURNAL_INO = 8
GOOD_OLD_FIRST_INO = 11
GOOD_OLD_INODE_SIZE = 128
LINK_MAX = 65000                # ext4's limit before dir_nlink's "1 = many"
NAME_MAX = 255
N_BLOCKS = 15                   # i_block slots: 12 direct, single, double, triple
NDIR_BLOCKS = 12

# s_state
STATE_VALID = 0x1
STATE_ERROR = 0x2

# s_flags
FLAGS_SIGNED_HASH = 0x1
FLAGS_UNSIGNED_HASH = 0x2

# feature_compat
COMPAT_DIR_PREALLOC = 0x1
COMPAT_IMAGIC_INODES = 0x2
COMPAT_HAS_JOURNAL = 0x4
COMPAT_EXT_ATTR = 0x8
COMPAT_RESIZE_INODE = 0x10
COMPAT_DIR_INDEX = 0x20
COMPAT_LAZY_BG = 0x40
COMPAT_EXCLUDE_BITMAP = 0x100
COMPAT_SPARSE_SUPER2 = 0x200
COMPAT_FAST_COMMIT = 0x400
COMPAT_STABLE_INODES = 0x800
COMPAT_ORPHAN_FILE = 0x1000

# feature_incompat
INCOMPAT_COMPRESSION = 0x1
INCOMPAT_FILETYPE = 0x2
INCOMPAT_RECOVER = 0x4
INCOMPAT_JOURNAL_DEV = 0x8
INCOMPAT_META_BG = 0x10
INCOMPAT_EXTENTS = 0x40
INCOMPAT_64BIT = 0x80
INCOMPAT_MMP = 0x100
INCOMPAT_FLEX_BG = 0x200
INCOMPAT_EA_INODE = 0x400
INCOMPAT_DIRDATA = 0x1000
INCOMPAT_CSUM_SEED = 0x2000
INCOMPAT_LARGEDIR = 0x4000
INCOMPAT_INLINE_DATA = 0x8000
INCOMPAT_ENCRYPT = 0x10000
INCOMPAT_CASEFOLD = 0x20000

# feature_ro_compat
RO_COMPAT_SPARSE_SUPER = 0x1
RO_COMPAT_LARGE_FILE = 0x2
RO_COMPAT_BTREE_DIR = 0x4
RO_COMPAT_HUGE_FILE = 0x8
RO_COMPAT_GDT_CSUM = 0x10
RO_COMPAT_DIR_NLINK = 0x20
RO_COMPAT_EXTRA_ISIZE = 0x40
RO_COMPAT_HAS_SNAPSHOT = 0x80
RO_COMPAT_QUOTA = 0x100
RO_COMPAT_BIGALLOC = 0x200
RO_COMPAT_METADATA_CSUM = 0x400
RO_COMPAT_REPLICA = 0x800
RO_COMPAT_READONLY = 0x1000
RO_COMPAT_PROJECT = 0x2000
RO_COMPAT_SHARED_BLOCKS = 0x4000
RO_COMPAT_VERITY = 0x8000
RO_COMPAT_ORPHAN_PRESENT = 0x10000

COMPAT_NAMES = {
    COMPAT_DIR_PREALLOC: "dir_prealloc", COMPAT_IMAGIC_INODES: "imagic_inodes",
    COMPAT_HAS_JOURNAL: "has_journal", COMPAT_EXT_ATTR: "ext_attr",
    COMPAT_RESIZE_INODE: "resize_inode", COMPAT_DIR_INDEX: "dir_index",
    COMPAT_LAZY_BG: "lazy_bg", COMPAT_EXCLUDE_BITMAP: "exclude_bitmap",
    COMPAT_SPARSE_SUPER2: "sparse_super2", COMPAT_FAST_COMMIT: "fast_commit",
    COMPAT_STABLE_INODES: "stable_inodes", COMPAT_ORPHAN_FILE: "orphan_file",
}
INCOMPAT_NAMES = {
    INCOMPAT_COMPRESSION: "compression", INCOMPAT_FILETYPE: "filetype",
    INCOMPAT_RECOVER: "needs_recovery", INCOMPAT_JOURNAL_DEV: "journal_dev",
    INCOMPAT_META_BG: "meta_bg", INCOMPAT_EXTENTS: "extent", INCOMPAT_64BIT: "64bit",
    INCOMPAT_MMP: "mmp", INCOMPAT_FLEX_BG: "flex_bg", INCOMPAT_EA_INODE: "ea_inode",
    INCOMPAT_DIRDATA: "dirdata", INCOMPAT_CSUM_SEED: "metadata_csum_seed",
    INCOMPAT_LARGEDIR: "large_dir", INCOMPAT_INLINE_DATA: "inline_data",
    INCOMPAT_ENCRYPT: "encrypt", INCOMPAT_CASEFOLD: "casefold",
}
RO_COMPAT_NAMES = {
    RO_COMPAT_SPARSE_SUPER: "sparse_super", RO_COMPAT_LARGE_FILE: "large_file",
    RO_COMPAT_BTREE_DIR: "btree_dir", RO_COMPAT_HUGE_FILE: "huge_file",
    RO_COMPAT_GDT_CSUM: "uninit_bg", RO_COMPAT_DIR_NLINK: "dir_nlink",
    RO_COMPAT_EXTRA_ISIZE: "extra_isize", RO_COMPAT_HAS_SNAPSHOT: "snapshot",
    RO_COMPAT_QUOTA: "quota", RO_COMPAT_BIGALLOC: "bigalloc",
    RO_COMPAT_METADATA_CSUM: "metadata_csum", RO_COMPAT_REPLICA: "replica",
    RO_COMPAT_READONLY: "read-only", RO_COMPAT_PROJECT: "project",
    RO_COMPAT_SHARED_BLOCKS: "shared_blocks", RO_COMPAT_VERITY: "verity",
    RO_COMPAT_ORPHAN_PRESENT: "orphan_present",
}

# Features this driver can mount at all (others in incompat: refuse).
INCOMPAT_READABLE = (INCOMPAT_FILETYPE | INCOMPAT_META_BG | INCOMPAT_EXTENTS | INCOMPAT_64BIT
                     | INCOMPAT_MMP | INCOMPAT_FLEX_BG | INCOMPAT_EA_INODE | INCOMPAT_CSUM_SEED
                     | INCOMPAT_LARGEDIR | INCOMPAT_INLINE_DATA | INCOMPAT_ENCRYPT
                     | INCOMPAT_CASEFOLD | INCOMPAT_RECOVER)
# ...and the subset it writes correctly (any other known one: read-only).
INCOMPAT_WRITABLE = (INCOMPAT_FILETYPE | INCOMPAT_EXTENTS | INCOMPAT_64BIT | INCOMPAT_FLEX_BG | INCOMPAT_META_BG
                     | INCOMPAT_CSUM_SEED | INCOMPAT_LARGEDIR)
RO_COMPAT_WRITABLE = (RO_COMPAT_SPARSE_SUPER | RO_COMPAT_LARGE_FILE | RO_COMPAT_HUGE_FILE
                      | RO_COMPAT_GDT_CSUM | RO_COMPAT_DIR_NLINK | RO_COMPAT_EXTRA_ISIZE
                      | RO_COMPAT_METADATA_CSUM)
# Compat features are safe to ignore by definition, except these whose
# structures a writer must respect in ways we do not.
COMPAT_NOT_WRITABLE = COMPAT_EXCLUDE_BITMAP

# group descriptor bg_flags
BG_INODE_UNINIT = 0x1
BG_BLOCK_UNINIT = 0x2
BG_INODE_ZEROED = 0x4

# inode i_flags
SECRM_FL = 0x1
UNRM_FL = 0x2
COMPR_FL = 0x4
SYNC_FL = 0x8
IMMUTABLE_FL = 0x10
APPEND_FL = 0x20
NODUMP_FL = 0x40
NOATIME_FL = 0x80
INDEX_FL = 0x1000
HUGE_FILE_FL = 0x40000
EXTENTS_FL = 0x80000
EA_INODE_FL = 0x200000
INLINE_DATA_FL = 0x10000000
PROJINHERIT_FL = 0x20000000
# Flags a new inode inherits from its directory (the kernel's inheritable set
# minus the ones that need features we do not write).
INHERITED_FLAGS = SECRM_FL | UNRM_FL | COMPR_FL | SYNC_FL | NODUMP_FL | NOATIME_FL

# directory entry file types
FT_UNKNOWN, FT_REG, FT_DIR, FT_CHR, FT_BLK, FT_FIFO, FT_SOCK, FT_SYMLINK = range(8)
DIR_TAIL_FT = 0xDE
_FT_OF_MODE = {st.S_IFREG: FT_REG, st.S_IFDIR: FT_DIR, st.S_IFCHR: FT_CHR, st.S_IFBLK: FT_BLK,
               st.S_IFIFO: FT_FIFO, st.S_IFSOCK: FT_SOCK, st.S_IFLNK: FT_SYMLINK}
# getdents d_type for each ext2 file type
DT_OF_FT = {FT_UNKNOWN: 0, FT_REG: 8, FT_DIR: 4, FT_CHR: 2, FT_BLK: 6, FT_FIFO: 1,
            FT_SOCK: 12, FT_SYMLINK: 10}


def file_type_of_mode(mode: int) -> int:
    return _FT_OF_MODE.get(st.S_IFMT(mode), FT_UNKNOWN)


def feature_names(mask: int, names: dict) -> str:
    """'extent,64bit' for known bits, hex for the rest."""
    out = [name for bit, name in names.items() if mask & bit]
    rest = mask & ~sum(names)
    if rest:
        out.append(hex(rest))
    return ",".join(out)
