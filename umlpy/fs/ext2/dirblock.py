"""Directory blocks: entries (inode, rec_len, name_len, file_type, name), the
12-byte checksum tail of metadata_csum, and the blocks a new directory starts with."""
from __future__ import annotations

import struct
from typing import List, NamedTuple

from . import constants as c
from .checksum import crc32c_raw
from .errors import corrupt

ENTRY = struct.Struct("<IHBB")         # inode, rec_len, name_len, file_type
TAIL_SIZE = 12


class Entry(NamedTuple):
    offset: int
    inode: int
    rec_len: int
    name: bytes
    file_type: int


def entry_size(name_len: int) -> int:
    """Bytes an entry with this name needs (header + name, 4-byte aligned)."""
    return (8 + name_len + 3) & ~3


def rec_len_from_disk(value: int, block_size: int) -> int:
    if block_size >= 65536 and value in (0, 65535):
        return block_size
    return (value & 0xFFFC) | ((value & 3) << 16)


def rec_len_to_disk(length: int, block_size: int) -> int:
    if length >= 65536:
        return 65535 if length == block_size else 0
    return length


def has_tail(buf, block_size: int) -> bool:
    ino, rec_len, name_len, ftype = ENTRY.unpack_from(buf, block_size - TAIL_SIZE)
    return ino == 0 and rec_len == TAIL_SIZE and name_len == 0 and ftype == c.DIR_TAIL_FT


def tail_checksum(seed: int, buf, block_size: int) -> int:
    return crc32c_raw(seed, buf[:block_size - TAIL_SIZE])


def set_tail(buf: bytearray, block_size: int, seed: int) -> None:
    ENTRY.pack_into(buf, block_size - TAIL_SIZE, 0, TAIL_SIZE, 0, c.DIR_TAIL_FT)
    struct.pack_into("<I", buf, block_size - 4, tail_checksum(seed, buf, block_size))


def tail_ok(buf, block_size: int, seed: int) -> bool:
    return struct.unpack_from("<I", buf, block_size - 4)[0] == tail_checksum(seed, buf, block_size)


def parse(buf, limit: int, block_size: int, filetype: bool, max_ino: int,
          where: str) -> List[Entry]:
    """All entries (live and empty) in buf[:limit]; EIO on any inconsistency."""
    out: List[Entry] = []
    off = 0
    while off < limit:
        if off + 8 > limit:
            raise corrupt(f"directory entry header past the block end {where}")
        ino, raw_len, name_len, ftype = ENTRY.unpack_from(buf, off)
        rec_len = rec_len_from_disk(raw_len, block_size)
        if not filetype:
            name_len |= ftype << 8
            ftype = c.FT_UNKNOWN
        if rec_len < 8 or rec_len % 4 or off + rec_len > limit:
            raise corrupt(f"bad rec_len {rec_len} at offset {off} {where}")
        if name_len + 8 > rec_len:
            raise corrupt(f"name length {name_len} exceeds rec_len {rec_len} {where}")
        if ino:
            if ino > max_ino:
                raise corrupt(f"inode number {ino} out of range {where}")
            if name_len == 0:
                raise corrupt(f"empty name at offset {off} {where}")
        name = bytes(buf[off + 8:off + 8 + name_len])
        if ino and (b"/" in name or b"\0" in name):
            raise corrupt(f"name with '/' or NUL at offset {off} {where}")
        out.append(Entry(off, ino, rec_len, name, ftype))
        off += rec_len
    return out


def dotdot_of(buf, block_size: int, max_ino: int, where: str) -> int:
    """The inode of '..' in a directory's first block ('.' first, '..' second)."""
    _, rec0, len0, _ = ENTRY.unpack_from(buf, 0)
    rec0 = rec_len_from_disk(rec0, block_size)
    if rec0 < 12 or rec0 + 12 > block_size or len0 != 1 or buf[8:9] != b".":
        raise corrupt(f"first entry is not '.' {where}")
    ino, _, len1, _ = ENTRY.unpack_from(buf, rec0)
    if len1 != 2 or buf[rec0 + 8:rec0 + 10] != b".." or not 0 < ino <= max_ino:
        raise corrupt(f"second entry is not a valid '..' {where}")
    return ino


def pack_entry(buf: bytearray, off: int, ino: int, rec_len: int, name: bytes, ftype: int,
               filetype: bool, block_size: int) -> None:
    if filetype:
        ENTRY.pack_into(buf, off, ino, rec_len_to_disk(rec_len, block_size), len(name), ftype)
    else:
        struct.pack_into("<IHH", buf, off, ino, rec_len_to_disk(rec_len, block_size), len(name))
    buf[off + 8:off + 8 + len(name)] = name


def set_rec_len(buf: bytearray, off: int, rec_len: int, block_size: int) -> None:
    struct.pack_into("<H", buf, off + 4, rec_len_to_disk(rec_len, block_size))


def set_inode(buf: bytearray, off: int, ino: int, ftype: int, filetype: bool) -> None:
    struct.pack_into("<I", buf, off, ino)
    if filetype:
        buf[off + 7] = ftype


def empty_block(block_size: int, csum: bool, seed: int) -> bytearray:
    buf = bytearray(block_size)
    limit = block_size - TAIL_SIZE if csum else block_size
    set_rec_len(buf, 0, limit, block_size)
    if csum:
        set_tail(buf, block_size, seed)
    return buf


def first_block(block_size: int, self_ino: int, parent_ino: int, csum: bool, seed: int,
                filetype: bool) -> bytearray:
    """Block 0 of a new directory: '.' and '..' (the latter spanning the rest)."""
    buf = bytearray(block_size)
    limit = block_size - TAIL_SIZE if csum else block_size
    pack_entry(buf, 0, self_ino, 12, b".", c.FT_DIR, filetype, block_size)
    pack_entry(buf, 12, parent_ino, limit - 12, b"..", c.FT_DIR, filetype, block_size)
    if csum:
        set_tail(buf, block_size, seed)
    return buf
