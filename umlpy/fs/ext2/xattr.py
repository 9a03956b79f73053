"""Extended attribute blocks, only as far as freeing an inode needs them
(dropping its reference to a shared attribute block), and in-inode attributes
as far as reading inline data needs them."""
from __future__ import annotations

import struct
from typing import Optional

from . import constants as c
from .blockcache import TREE
from .checksum import crc32c_raw
from .errors import corrupt

BLOCK_HEADER = struct.Struct("<III")       # magic, refcount, blocks
ENTRY = struct.Struct("<BBHIII")           # name_len, name_index, value_offs, value_inum, size, hash


def block_checksum(seed: int, blk: int, buf) -> int:
    raw = bytearray(buf)
    raw[0x10:0x14] = b"\0\0\0\0"
    return crc32c_raw(crc32c_raw(seed, struct.pack("<Q", blk)), raw)


def drop_block_reference(ctx, inode) -> None:
    """The inode no longer uses its attribute block: free it or lower its refcount."""
    blk = inode.file_acl
    if not blk:
        return
    ctx.check_block(blk, inode)
    buf = ctx.cache.get(blk)
    magic, refcount, nblocks = BLOCK_HEADER.unpack_from(buf)
    if magic != c.XATTR_MAGIC or nblocks != 1:
        raise corrupt(f"bad extended attribute block {blk} in inode {inode.ino}")
    if refcount <= 1:
        ctx.release_blocks(inode, blk, 1)
    else:
        struct.pack_into("<I", buf, 4, refcount - 1)
        if ctx.csum:
            struct.pack_into("<I", buf, 0x10, block_checksum(ctx.fs_seed, blk, buf))
        ctx.cache.mark_dirty(blk, buf, TREE)
        ctx.uncharge(inode, 1)
    inode.file_acl = 0
    ctx.inode_dirty(inode)


def inline_data_value(inode, inode_size: int) -> Optional[bytes]:
    """The 'system.data' in-inode attribute (the part of inline data past i_block)."""
    start = c.GOOD_OLD_INODE_SIZE + inode.i_extra_isize
    buf = inode.buf
    if start + 4 > inode_size or struct.unpack_from("<I", buf, start)[0] != c.XATTR_MAGIC:
        return None
    first = start + 4
    off = first
    while off + ENTRY.size <= inode_size:
        name_len, index, value_offs, value_inum, size, _ = ENTRY.unpack_from(buf, off)
        if name_len == 0 and index == 0 and value_offs == 0:
            break
        name = bytes(buf[off + ENTRY.size:off + ENTRY.size + name_len])
        if index == 7 and name == b"data":             # "system." namespace
            if value_inum or first + value_offs + size > inode_size:
                raise corrupt(f"bad inline data attribute in inode {inode.ino}")
            return bytes(buf[first + value_offs:first + value_offs + size])
        off += (ENTRY.size + name_len + 3) & ~3
    return None
