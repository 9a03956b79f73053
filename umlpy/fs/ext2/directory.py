"""One directory's entries: a name index built from its blocks and kept up to
date as entries are added and removed, so lookups and inserts do not rescan.

New entries go into the first block with room (splitting an entry's slack) or
into a new block appended to the directory. A removed name disappears at once
from the index, but its bytes stay in the block until the next sync, which
merges the entry into the one before it once the inode that lost the link is
on disk (writeback.py explains why). An htree (dir_index) directory stays valid when entries are
removed or retargeted; adding one drops the index (clears INDEX_FL), which the
kernel and e2fsck accept, after turning the index blocks into plain empty
directory blocks (with checksum tails under metadata_csum).
"""
from __future__ import annotations

import struct
from typing import Dict, Iterator, List, Optional, Set, Tuple

from . import constants as c
from . import dirblock as db
from .blockcache import DIR_ADD, DIR_REMOVE, TREE
from .errors import corrupt

MAX_DIR_BLOCKS = 1 << 22          # 16 GiB at 4 KiB blocks; more is surely corruption


class Directory:
    def __init__(self, ctx, inode) -> None:
        self.ctx, self.inode = ctx, inode
        self.bs = ctx.block_size
        self.csum = ctx.csum
        self.filetype = ctx.filetype
        self.where = f"in directory inode {inode.ino}"
        self.seed = ctx.seed_of(inode) if self.csum else 0
        size = inode.size
        if size == 0 or size % self.bs or size // self.bs > MAX_DIR_BLOCKS:
            raise corrupt(f"bad directory size {size} {self.where}")
        nblocks = size // self.bs
        self.pblocks: List[int] = []
        for lblk, pblk, n in ctx.filemap(inode).lookup(0, nblocks):
            if not pblk:
                raise corrupt(f"hole at block {lblk} {self.where}")
            self.pblocks.extend(range(pblk, pblk + n))
        self.names: Dict[bytes, Tuple[int, int]] = {}
        # per block, its entries as [offset, rec_len, name_len, inode] lists, so
        # adding and removing need no re-parse; and the room for a new entry
        self.layout: List[List[list]] = []
        self.slack: List[int] = []
        self.pending: List[Tuple[int, int]] = []      # removed, still in the blocks
        self.live = 0
        self.dx: Set[int] = self._index_blocks() if inode.i_flags & c.INDEX_FL else set()
        for lblk in range(nblocks):
            entries = self._entries(lblk)
            for e in entries:
                if e.inode and e.name not in self.names:
                    self.names[e.name] = (lblk, e.offset)
                    if e.name not in (b".", b".."):
                        self.live += 1
            self.layout.append([[e.offset, e.rec_len, len(e.name), e.inode] for e in entries])
            self.slack.append(self._slack(lblk))

    # ---- reading blocks ----
    def _block(self, lblk: int) -> bytearray:
        return self.ctx.cache.get(self.pblocks[lblk])

    def _limit(self, lblk: int, buf) -> int:
        if not self.csum or lblk in self.dx:
            return self.bs
        if not db.has_tail(buf, self.bs):
            raise corrupt(f"directory block {lblk} lacks its checksum tail {self.where}")
        return self.bs - db.TAIL_SIZE

    def _entries(self, lblk: int) -> List[db.Entry]:
        buf = self._block(lblk)
        limit = self._limit(lblk, buf)
        if limit < self.bs and not db.tail_ok(buf, self.bs, self.seed):
            raise corrupt(f"directory block {lblk} checksum mismatch {self.where}")
        return db.parse(buf, limit, self.bs, self.filetype, self.ctx.max_ino,
                        f"(block {lblk}) {self.where}")

    def _slack(self, lblk: int) -> int:
        if lblk in self.dx:
            return 0
        return max((rec - db.entry_size(nlen) if ino else rec
                    for _, rec, nlen, ino in self.layout[lblk]), default=0)

    def _reparse(self, lblk: int) -> None:
        self.layout[lblk] = [[e.offset, e.rec_len, len(e.name), e.inode]
                             for e in self._entries(lblk)]

    def _index_blocks(self) -> Set[int]:
        """Logical blocks holding htree nodes (the root and interior nodes)."""
        buf = self._block(0)
        info_len, levels = buf[24 + 5], buf[24 + 6]
        if info_len != 8 or levels > 3:
            raise corrupt(f"bad htree root {self.where}")
        nodes = {0}
        frontier = [(0, 24 + info_len)]
        for _ in range(levels):
            children = []
            for lblk, off in frontier:
                node = self._block(lblk)
                limit, count = struct.unpack_from("<HH", node, off)
                if count == 0 or count > limit or off + 8 * limit > self.bs:
                    raise corrupt(f"bad htree node at block {lblk} {self.where}")
                for k in range(count):
                    child = struct.unpack_from("<I", node, off + 8 * k + 4)[0]
                    if child == 0 or child >= len(self.pblocks) or child in nodes:
                        raise corrupt(f"bad htree pointer {child} {self.where}")
                    nodes.add(child)
                    children.append((child, 8))
            frontier = children
        return nodes

    # ---- queries ----
    def lookup(self, name: bytes) -> Optional[int]:
        where = self.names.get(name)
        if where is None:
            return None
        lblk, off = where
        return struct.unpack_from("<I", self._block(lblk), off)[0]

    def entries(self) -> Iterator[db.Entry]:
        """Live entries in block order (not the ones removed since the last sync)."""
        for lblk in range(len(self.pblocks)):
            if lblk in self.dx and lblk:
                continue
            for e in self._entries(lblk):
                if e.inode and (not self.pending or self.names.get(e.name) == (lblk, e.offset)):
                    yield e

    def is_empty(self) -> bool:
        return self.live == 0

    # ---- changes ----
    def _finish(self, lblk: int, buf: bytearray, kind: int = DIR_ADD) -> None:
        if self.csum and lblk not in self.dx:
            db.set_tail(buf, self.bs, self.seed)
        self.ctx.cache.mark_dirty(self.pblocks[lblk], buf, kind)
        self.slack[lblk] = self._slack(lblk)

    def _find(self, lblk: int, off: int) -> int:
        layout = self.layout[lblk]
        k = next((i for i, ent in enumerate(layout) if ent[0] == off), None)
        if k is None:
            raise corrupt(f"directory entry index out of step with block {lblk} {self.where}")
        return k

    def add(self, name: bytes, ino: int, ftype: int) -> None:
        if self.dx:
            self._drop_index()
        if self.pending:
            self._apply_removal_of(name)         # never two entries with one name
        need = db.entry_size(len(name))
        lblk = next((i for i, room in enumerate(self.slack) if room >= need), None)
        if lblk is None:
            lblk = self._grow()
        if not self._insert(lblk, name, ino, ftype, skip=-1):
            raise corrupt(f"directory block {lblk} has less room than counted {self.where}")

    def _insert(self, lblk: int, name: bytes, ino: int, ftype: int, skip: int) -> bool:
        """Put the entry in block lblk if some entry (but the one at offset skip)
        has room for it."""
        need = db.entry_size(len(name))
        layout = self.layout[lblk]
        for k in range(len(layout) - 1, -1, -1):     # the room is usually at the end
            ent = layout[k]
            off, rec, nlen, old_ino = ent
            used = db.entry_size(nlen) if old_ino else 0
            if off == skip or rec - used < need:
                continue
            buf = self._block(lblk)
            if used:                              # split the entry's slack off
                db.set_rec_len(buf, off, used, self.bs)
                ent[1] = used
                layout.insert(k + 1, [off + used, rec - used, len(name), ino])
            else:                                 # reuse an empty entry whole
                ent[2], ent[3] = len(name), ino
            db.pack_entry(buf, off + used, ino, rec - used, name, ftype, self.filetype, self.bs)
            self.names[name] = (lblk, off + used)
            self.live += 1
            self._finish(lblk, buf)
            return True
        return False

    def remove(self, name: bytes) -> int:
        """Drop name now; its bytes leave the block at the next sync (apply_removals),
        after the inode that lost the link is on disk (see writeback.py)."""
        lblk, off = self.names.pop(name)
        ino = self.layout[lblk][self._find(lblk, off)][3]
        self.pending.append((lblk, off))
        self.ctx.dirs_with_removals[self.inode.ino] = self
        self.live -= 1
        return ino

    def pending_inode(self, name: bytes) -> Optional[int]:
        """The inode of a removed entry with this name still in the blocks, if any."""
        for lblk, off in self.pending:
            layout = self.layout[lblk]
            ent = layout[self._find(lblk, off)]
            if ent[2] == len(name) and bytes(self._block(lblk)[off + 8:off + 8 + len(name)]) == name:
                return ent[3]
        return None

    def _apply_removal_of(self, name: bytes) -> None:
        """Remove now the bytes of a pending removal with this name, if any."""
        for lblk, off in self.pending:
            layout = self.layout[lblk]
            k = self._find(lblk, off)
            start = off + 8
            if layout[k][2] == len(name) and bytes(self._block(lblk)[start:start + len(name)]) == name:
                self.pending.remove((lblk, off))
                self.ctx.unnamed_early.add(layout[k][3])    # its inode: write it first
                self._erase(lblk, off, DIR_ADD)
                return

    def rename_in_place(self, old: bytes, new: bytes, ftype: int) -> bool:
        """Rename an entry by rewriting its name where it stands (one block write, so
        atomic on disk); False if the new name does not fit there."""
        lblk, off = self.names[old]
        layout = self.layout[lblk]
        k = self._find(lblk, off)
        if layout[k][1] < db.entry_size(len(new)):
            return False
        if self.dx:
            self._drop_index()
        if self.pending:
            self._apply_removal_of(new)
            k = self._find(lblk, off)
        buf = self._block(lblk)
        db.pack_entry(buf, off, layout[k][3], layout[k][1], new, ftype, self.filetype, self.bs)
        layout[k][2] = len(new)
        self.names[new] = self.names.pop(old)
        self._finish(lblk, buf)
        return True

    def rename_in_block(self, old: bytes, new: bytes, ftype: int) -> bool:
        """Rename within the block holding the entry, so that one block write
        carries the whole change (atomic on disk); False if it has no room."""
        if self.rename_in_place(old, new, ftype):
            return True
        lblk, off = self.names[old]
        if self.dx:
            self._drop_index()
        if self.pending:
            self._apply_removal_of(new)
        ino = self.layout[lblk][self._find(lblk, off)][3]
        if not self._insert(lblk, new, ino, ftype, skip=off):
            return False
        del self.names[old]
        self.live -= 1
        self._erase(lblk, off, DIR_ADD)
        return True

    def replace_in_block(self, old: bytes, new: bytes, ftype: int) -> bool:
        """Rename old over the existing entry new when both sit in one block
        (one block write carries it); False otherwise."""
        lblk, off = self.names[old]
        if self.names[new][0] != lblk:
            return False
        ino = self.layout[lblk][self._find(lblk, off)][3]
        self.retarget(new, ino, ftype)
        lblk, off = self.names.pop(old)             # retarget may have dropped an index
        self.live -= 1
        self._erase(lblk, off, DIR_ADD)
        return True

    def _erase(self, lblk: int, off: int, kind: int) -> None:
        layout = self.layout[lblk]
        k = self._find(lblk, off)
        buf = self._block(lblk)
        if k == 0:                                # the first entry cannot merge backwards
            db.set_inode(buf, off, 0, 0, self.filetype)
            layout[0][3] = 0
        else:
            prev = layout[k - 1]
            prev[1] += layout[k][1]
            db.set_rec_len(buf, prev[0], prev[1], self.bs)
            del layout[k]
        self._finish(lblk, buf, kind)

    def apply_removals(self) -> None:
        """Take the removed entries out of the blocks (merging their space)."""
        for lblk, off in self.pending:
            self._erase(lblk, off, DIR_REMOVE)
        self.pending.clear()

    def retarget(self, name: bytes, ino: int, ftype: int) -> None:
        """Point an existing entry at another inode (rename over, exchange, '..')."""
        lblk, off = self.names[name]
        if self.csum and lblk in self.dx:
            self._drop_index()           # the dx root's checksum covers '..': drop it
        buf = self._block(lblk)
        db.set_inode(buf, off, ino, ftype, self.filetype)
        self.layout[lblk][self._find(lblk, off)][3] = ino
        self._finish(lblk, buf)

    def _grow(self) -> int:
        lblk = len(self.pblocks)
        runs = self.ctx.filemap(self.inode).allocate(lblk, 1, metadata=True)
        pblk = runs[0][1]
        self.ctx.cache.put_new(pblk, db.empty_block(self.bs, self.csum, self.seed), TREE)
        limit = self.bs - (db.TAIL_SIZE if self.csum else 0)
        self.pblocks.append(pblk)
        self.layout.append([[0, limit, 0, 0]])
        self.slack.append(limit)
        self.inode.size = self.inode.size + self.bs
        self.ctx.inode_dirty(self.inode)
        return lblk

    def _drop_index(self) -> None:
        dx, self.dx = self.dx, set()
        self.inode.i_flags &= ~c.INDEX_FL
        self.ctx.inode_dirty(self.inode)
        for lblk in sorted(dx):
            buf = self._block(lblk)
            if self.csum:
                limit = self.bs - db.TAIL_SIZE
                if lblk == 0:                    # '.' then '..' spanning the old dx root
                    dot_len = db.rec_len_from_disk(struct.unpack_from("<H", buf, 4)[0], self.bs)
                    db.set_rec_len(buf, dot_len, limit - dot_len, self.bs)
                else:
                    db.pack_entry(buf, 0, 0, limit, b"", 0, self.filetype, self.bs)
                db.set_tail(buf, self.bs, self.seed)
            self.ctx.cache.mark_dirty(self.pblocks[lblk], buf, DIR_ADD)
            self._reparse(lblk)
            self.slack[lblk] = self._slack(lblk)
