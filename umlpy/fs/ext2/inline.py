"""Inline data (ext4 inline_data): small files and directories kept inside the
inode (i_block plus the 'system.data' attribute). Read-only: a file system with
inline_data mounts read-only, so nothing here writes."""
from __future__ import annotations

import errno
import struct
from typing import Dict, Iterator, List, Optional

from . import dirblock as db
from .errors import corrupt, fail
from .xattr import inline_data_value


def inline_bytes(vol, inode) -> bytes:
    extra = inline_data_value(inode, vol.inode_size) or b""
    return bytes(inode.i_block) + extra


class InlineMap:
    """Stands in for a block map: an inline file maps no blocks."""

    max_blocks = 0

    def __init__(self, ctx, inode) -> None:
        self.ctx, self.inode = ctx, inode

    def lookup(self, lblk: int, count: int):
        return [(lblk, 0, count)]

    def allocate(self, lblk: int, count: int, metadata: bool = False):
        raise fail(errno.EROFS)

    def truncate(self, keep: int) -> None:
        raise fail(errno.EROFS)


class InlineDirectory:
    """An inline directory: the parent's inode number, then entries without '.'
    and '..', in i_block and then in the attribute value."""

    def __init__(self, ctx, inode) -> None:
        self.ctx, self.inode = ctx, inode
        raw = inline_bytes(ctx, inode)
        where = f"in inline directory inode {inode.ino}"
        self.parent = struct.unpack_from("<I", raw, 0)[0]
        if not 0 < self.parent <= ctx.max_ino:
            raise corrupt(f"bad parent {self.parent} {where}")
        self._entries: List[db.Entry] = []
        for part in (raw[4:60], raw[60:]):
            if part:
                self._entries.extend(e for e in db.parse(part, len(part), ctx.block_size,
                                                         ctx.filetype, ctx.max_ino, where)
                                     if e.inode)
        self.names: Dict[bytes, int] = {e.name: e.inode for e in self._entries}
        self.names[b".."] = self.parent
        self.names[b"."] = inode.ino

    def lookup(self, name: bytes) -> Optional[int]:
        return self.names.get(name)

    def entries(self) -> Iterator[db.Entry]:
        return iter(self._entries)

    def is_empty(self) -> bool:
        return not self._entries
