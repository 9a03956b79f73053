"""Ext2Volume: an ext2/ext3/ext4 file system on a block device, by inode number.

Caching and write-back. Metadata (inodes, bitmaps, descriptors, directory,
indirect and extent blocks) is cached and written back by sync() and close();
file data goes straight to the device in write(). sync() writes in an order
chosen so that a crash between syncs leaves damage `e2fsck -fp` repairs by
itself: data, then tree blocks, then inodes and directory blocks interleaved
so that an entry may point at a free inode but an inode in use is never left
unnamed, then bitmaps, descriptors, superblock (details in writeback.py).
Blocks and inodes freed since the last sync are not reused before the next.

Caches are bounded (inodes, directory indexes, metadata blocks); only clean
entries are dropped, and only between operations.

While mounted read-write the superblock is marked not clean (s_state), so a
crash leads e2fsck to check; close() marks it clean again.

Open-but-unlinked files. unlink(), rmdir() and rename() over a name free an
inode whose link count drops to 0, unless the caller pinned it with pin(ino)
(the VFS does so while a file is open). A pinned inode with no links stays on
the on-disk orphan list (s_last_orphan, chained through i_dtime, as e2fsck
and Linux expect) until release(ino) drops the last pin, or close(), which
frees it; a mount read-write finishes orphans a crash left behind.

Times: callers pass nanoseconds; the volume uses self.clock() (time.time_ns by
default) for times it sets itself (create, write, rename...). write() updates
mtime and ctime; read() never touches atime (the VFS may setattr it).
"""
from __future__ import annotations

import errno
import random
import stat as st
import time
from typing import Dict, List, Optional, Tuple

from . import constants as c
from umlpy.vfs.inode import StatFs

from .alloc import Allocator
from .blockcache import BlockCache
from .blockmap import BlockMap
from .errors import Ext2Error, corrupt, fail
from .extents import HEADER, ExtentMap
from .groups import gdt_block_numbers, group_overhead_blocks, load_groups
from .inode import Inode, InodeAttr, inode_seed, make_attr
from .inline import InlineMap
from .fileio import FileDataOps
from .journal import check_journal
from .namespace import DIR_CACHE_LIMIT, NamespaceOps
from .superblock import Superblock, feature_policy, parse_superblock
from .writeback import write_back
from .xattr import drop_block_reference

INODE_CACHE_LIMIT = 8192
ST_RDONLY = 1


class Ext2Volume(FileDataOps, NamespaceOps):
    """A mounted ext2/3/4 file system. Use Ext2Volume.open(dev)."""

    def __init__(self, dev, sb: Superblock, groups, readonly: bool,
                 readonly_reason: Optional[str]) -> None:
        self.dev = dev
        self.sb = sb
        self.groups = groups
        self.readonly = readonly
        self.readonly_reason = readonly_reason
        self.clock = time.time_ns
        self.block_size = sb.block_size
        self.inode_size = sb.inode_size
        self.max_ino = sb.s_inodes_count
        self.csum = sb.metadata_csum
        self.fs_seed = sb.csum_seed() if self.csum else 0
        self.filetype = sb.has_incompat(c.INCOMPAT_FILETYPE)
        self.extents = sb.has_incompat(c.INCOMPAT_EXTENTS)
        self.huge_file = sb.has_ro_compat(c.RO_COMPAT_HUGE_FILE)
        self.dir_nlink = sb.has_ro_compat(c.RO_COMPAT_DIR_NLINK)
        self.cache = BlockCache(dev, self.block_size, sb.blocks_count)
        self.alloc_state = Allocator(sb, groups, self.cache)
        self.meta_reserve = min(64, sb.blocks_count // 100)
        self._inodes: Dict[int, Inode] = {}
        self._dirty_inodes: Dict[int, Inode] = {}
        self._new_inodes: set = set()            # allocated since the last sync
        self.unnamed_early: set = set()          # see directory.py, writeback.py
        self._seeds: Dict[Tuple[int, int], int] = {}
        self._pins: Dict[int, int] = {}
        self._dirs: Dict[int, object] = {}
        self.dirs_with_removals: Dict[int, object] = {}     # written out by sync()
        self._bytes_written = 0
        self._data_dirty = False
        self._sb_dirty = False
        self.closed = False

    # ------------------------------------------------------------------ mount
    @classmethod
    def open(cls, dev, readonly: bool = False) -> "Ext2Volume":
        """Mount the file system on dev (a BlockDevice)."""
        return cls._mount(dev, readonly, need_root=True)

    @classmethod
    def _mount(cls, dev, readonly: bool, need_root: bool) -> "Ext2Volume":
        if dev.size < c.SUPERBLOCK_OFFSET + c.SUPERBLOCK_SIZE:
            raise Ext2Error(f"ext2: device of {dev.size} bytes is too small")
        sb = parse_superblock(dev.read(c.SUPERBLOCK_OFFSET, c.SUPERBLOCK_SIZE), dev.size)
        reason = feature_policy(sb)
        bs = sb.block_size
        groups = load_groups(sb, lambda blk: dev.read(blk * bs, bs))
        if dev.readonly and not readonly:
            reason = reason or "ext2: mounted read-only: the device is read-only"
        vol = cls(dev, sb, groups, readonly or reason is not None, reason)
        try:
            root = vol._iget(c.ROOT_INO)
        except OSError as e:
            raise Ext2Error(f"ext2: unreadable root inode: {e.strerror}", errno.EUCLEAN)
        if need_root and (not st.S_ISDIR(root.i_mode) or root.i_links_count == 0):
            raise Ext2Error("ext2: root inode is not a directory", errno.EUCLEAN)
        check_journal(vol)
        if not vol.readonly:
            vol._finish_orphans()
            sb.s_state &= ~c.STATE_VALID
            sb.s_mnt_count = (sb.s_mnt_count + 1) & 0xFFFF
            sb.set_times("s_mtime", vol.clock() // 1_000_000_000)
            vol._write_superblock()
            dev.flush()
        return vol

    def _rw(self) -> None:
        if self.closed:
            raise fail(errno.EIO, "ext2: volume is closed")
        if self.readonly:
            raise fail(errno.EROFS)

    # ------------------------------------------------------- context for maps
    def check_block(self, blk: int, inode: Inode) -> None:
        if not self.sb.s_first_data_block <= blk < self.sb.blocks_count:
            raise corrupt(f"block {blk} out of range in inode {inode.ino}")

    def seed_of(self, inode: Inode) -> int:
        key = (inode.ino, inode.i_generation)
        seed = self._seeds.get(key)
        if seed is None:
            if len(self._seeds) > 4 * INODE_CACHE_LIMIT:
                self._seeds.clear()
            seed = self._seeds[key] = inode_seed(self.fs_seed, *key)
        return seed

    def goal_for(self, inode: Inode) -> int:
        return self.sb.group_first_block(self.alloc_state.group_of_inode(inode.ino))

    def alloc(self, inode: Inode, goal: int, count: int, metadata: bool) -> Tuple[int, int]:
        """Allocate up to count blocks for inode (charged to its i_blocks). File data
        leaves a small reserve so extent trees can still grow on a full disk."""
        if not metadata:
            room = self.sb.free_blocks_count - self.meta_reserve
            if room <= 0 and self.alloc_state.pending_count:
                self.sync()                       # frees waiting for a sync
                room = self.sb.free_blocks_count - self.meta_reserve
            if room <= 0:
                raise fail(errno.ENOSPC)
            count = min(count, room)
        try:
            start, n = self.alloc_state.alloc_blocks(goal, count)
        except OSError as e:
            if e.errno != errno.ENOSPC or not self.alloc_state.pending_count:
                raise
            self.sync()
            start, n = self.alloc_state.alloc_blocks(goal, count)
        self._charge(inode, n)
        self._sb_dirty = True
        return start, n

    def release_blocks(self, inode: Inode, start: int, count: int) -> None:
        self.alloc_state.free_blocks(start, count)
        self.uncharge(inode, count)
        self._sb_dirty = True

    def _charge(self, inode: Inode, nblocks: int) -> None:
        per = self.block_size // 512
        inode.set_blocks_512(inode.blocks_512(self.huge_file, self.block_size) + nblocks * per,
                             self.huge_file)
        self.inode_dirty(inode)

    def uncharge(self, inode: Inode, nblocks: int) -> None:
        per = self.block_size // 512
        now = inode.blocks_512(self.huge_file, self.block_size)
        inode.set_blocks_512(max(now - nblocks * per, 0), self.huge_file)
        self.inode_dirty(inode)

    def inode_dirty(self, inode: Inode) -> None:
        inode.dirty = True
        self._dirty_inodes[inode.ino] = inode
        self._inodes[inode.ino] = inode

    def filemap(self, inode: Inode):
        if inode.filemap is None:
            if inode.i_flags & c.INLINE_DATA_FL:
                inode.filemap = InlineMap(self, inode)
            elif inode.i_flags & c.EXTENTS_FL:
                inode.filemap = ExtentMap(self, inode)
            else:
                inode.filemap = BlockMap(self, inode)
        return inode.filemap

    # ---------------------------------------------------------------- inodes
    def _inode_location(self, ino: int) -> Tuple[int, int]:
        group, index = divmod(ino - 1, self.sb.s_inodes_per_group)
        offset = index * self.inode_size
        return (self.groups[group].inode_table + offset // self.block_size,
                offset % self.block_size)

    def _iget(self, ino: int) -> Inode:
        inode = self._inodes.get(ino)
        if inode is not None:
            return inode
        if not 1 <= ino <= self.max_ino:
            raise corrupt(f"inode number {ino} out of range")
        blk, off = self._inode_location(ino)
        inode = Inode(ino, self.cache.get(blk)[off:off + self.inode_size])
        if self.inode_size > c.GOOD_OLD_INODE_SIZE:
            extra = inode.i_extra_isize
            if extra % 4 or c.GOOD_OLD_INODE_SIZE + extra > self.inode_size:
                raise corrupt(f"bad i_extra_isize {extra} in inode {ino}")
        if self.csum and not inode.checksum_ok(self.fs_seed) and any(inode.buf):
            raise corrupt(f"inode {ino} checksum mismatch")
        self._inodes[ino] = inode
        return inode

    def _housekeep(self) -> None:
        """Trim the inode and directory caches. Only called at the start of a
        public operation, so no operation ever holds an evicted inode object."""
        if self.closed:
            raise fail(errno.EIO, "ext2: volume is closed")
        if len(self._dirs) > DIR_CACHE_LIMIT:
            for ino in list(self._dirs)[:len(self._dirs) - DIR_CACHE_LIMIT * 3 // 4]:
                if ino not in self.dirs_with_removals:
                    del self._dirs[ino]
        if len(self._inodes) > INODE_CACHE_LIMIT:
            for ino in list(self._inodes)[:len(self._inodes) - INODE_CACHE_LIMIT * 3 // 4]:
                if ino not in self._dirty_inodes and ino not in self._pins \
                        and ino not in self._dirs:
                    del self._inodes[ino]

    def _alloc_inode(self, parent_ino: int, is_dir: bool) -> int:
        try:
            return self.alloc_state.alloc_inode(parent_ino, is_dir)
        except OSError as e:
            if e.errno != errno.ENOSPC or not self.alloc_state.pending_inodes:
                raise
            self.sync()                           # inodes freed since the last sync
            return self.alloc_state.alloc_inode(parent_ino, is_dir)

    def _new_inode(self, ino: int, mode: int, uid: int, gid: int, parent: Inode) -> Inode:
        inode = Inode(ino, bytes(self.inode_size))
        if self.inode_size > c.GOOD_OLD_INODE_SIZE:
            want = self.sb.s_want_extra_isize or 32
            inode.i_extra_isize = min(want, self.inode_size - c.GOOD_OLD_INODE_SIZE)
        inode.i_mode = mode
        inode.uid, inode.gid = uid, gid
        inode.i_links_count = 1
        inode.i_generation = random.getrandbits(32)
        inode.i_flags = parent.i_flags & c.INHERITED_FLAGS
        now = self.clock()
        for which in ("atime", "mtime", "ctime", "crtime"):
            inode.set_time_ns(which, now)
        if self.extents and (st.S_ISREG(mode) or st.S_ISDIR(mode)):
            self._make_extent_root(inode)
        inode.filemap = None
        self._inodes.pop(ino, None)
        self._dirs.pop(ino, None)
        self.dirs_with_removals.pop(ino, None)
        self._new_inodes.add(ino)
        self.inode_dirty(inode)
        return inode

    @staticmethod
    def _make_extent_root(inode: Inode) -> None:
        """An empty extent tree in i_block (depth 0, room for 4 extents)."""
        inode.i_flags |= c.EXTENTS_FL
        inode.i_block = HEADER.pack(c.EXTENT_MAGIC, 0, 4, 0, 0) + bytes(48)

    def _touch(self, inode: Inode, *which: str) -> None:
        now = self.clock()
        for w in which:
            inode.set_time_ns(w, now)
        self.inode_dirty(inode)

    def _has_data_blocks(self, inode: Inode) -> bool:
        """Regular files, directories and slow symlinks map blocks; fast symlinks and
        device nodes keep other things in i_block."""
        mode = inode.i_mode
        if inode.i_flags & c.INLINE_DATA_FL:
            return False
        if st.S_ISREG(mode) or st.S_ISDIR(mode):
            return True
        return st.S_ISLNK(mode) and not self._is_fast_symlink(inode)

    def _is_fast_symlink(self, inode: Inode) -> bool:
        if inode.i_flags & (c.EXTENTS_FL | c.INLINE_DATA_FL):
            return False
        blocks = inode.blocks_512(self.huge_file, self.block_size)
        if inode.file_acl:
            blocks -= self.block_size // 512
        return blocks == 0 and inode.size < 60

    def _free_inode(self, inode: Inode) -> None:
        """Release an inode with no links left: its blocks, attributes, bitmap bit."""
        if self._has_data_blocks(inode):
            self.filemap(inode).truncate(0)
        drop_block_reference(self, inode)
        is_dir = st.S_ISDIR(inode.i_mode)
        inode.size = 0
        inode.i_links_count = 0
        inode.i_dtime = (self.clock() // 1_000_000_000) & 0xFFFFFFFF
        inode.filemap = None
        self.inode_dirty(inode)
        self._dirs.pop(inode.ino, None)
        self.dirs_with_removals.pop(inode.ino, None)
        self.alloc_state.free_inode(inode.ino, is_dir)
        self._sb_dirty = True

    # ------------------------------------------------------ orphans and pins
    def pin(self, ino: int) -> None:
        """Keep ino alive even if its last link goes (an open file)."""
        self._housekeep()
        self._iget(ino)
        self._pins[ino] = self._pins.get(ino, 0) + 1

    def release(self, ino: int) -> None:
        """Drop a pin; an inode left with no links and no pins is freed now."""
        self._housekeep()
        count = self._pins.get(ino, 0) - 1
        if count > 0:
            self._pins[ino] = count
            return
        self._pins.pop(ino, None)
        inode = self._iget(ino)
        if inode.i_links_count == 0 and not self.readonly and self._on_orphan_list(ino):
            self._orphan_remove(inode)
            self._free_inode(inode)

    def _drop_link(self, inode: Inode) -> None:
        """Called when a name goes away and the link count is already lowered."""
        if inode.i_links_count:
            return
        if inode.ino in self._pins:
            self._orphan_add(inode)
        else:
            self._free_inode(inode)

    def _orphan_chain(self) -> List[int]:
        out, ino = [], self.sb.s_last_orphan
        while ino:
            if not self.sb.first_ino <= ino <= self.max_ino or ino in out:
                raise corrupt(f"bad orphan list entry {ino}")
            out.append(ino)
            ino = self._iget(ino).i_dtime
        return out

    def _on_orphan_list(self, ino: int) -> bool:
        return ino in self._orphan_chain()

    def _orphan_add(self, inode: Inode) -> None:
        inode.i_dtime = self.sb.s_last_orphan
        self.sb.s_last_orphan = inode.ino
        self.inode_dirty(inode)
        self._sb_dirty = True

    def _orphan_remove(self, inode: Inode) -> None:
        chain = self._orphan_chain()
        i = chain.index(inode.ino)
        nxt = inode.i_dtime
        if i == 0:
            self.sb.s_last_orphan = nxt
        else:
            prev = self._iget(chain[i - 1])
            prev.i_dtime = nxt
            self.inode_dirty(prev)
        inode.i_dtime = 0
        self.inode_dirty(inode)
        self._sb_dirty = True

    def _finish_orphans(self) -> None:
        """Free (or truncate) what a crash left on the orphan list, as Linux does."""
        try:
            chain = self._orphan_chain()
            for ino in chain:
                inode = self._iget(ino)
                inode.i_dtime = 0
                if inode.i_links_count == 0:
                    self._free_inode(inode)
                elif st.S_ISREG(inode.i_mode) and self._has_data_blocks(inode):
                    keep = (inode.size + self.block_size - 1) // self.block_size
                    self.filemap(inode).truncate(keep)
                self.inode_dirty(inode)
            if chain:
                self.sb.s_last_orphan = 0
                self.sync()
        except OSError as e:
            raise Ext2Error(f"ext2: cannot finish the orphan list: {e.strerror}", errno.EUCLEAN)

    # ------------------------------------------------------------ attributes
    def getattr(self, ino: int) -> InodeAttr:
        self._housekeep()
        return make_attr(self._iget(ino), self.huge_file, self.block_size)

    def setattr(self, ino: int, *, mode: Optional[int] = None, uid: Optional[int] = None,
                gid: Optional[int] = None, size: Optional[int] = None,
                atime_ns: Optional[int] = None, mtime_ns: Optional[int] = None,
                ctime_ns: Optional[int] = None) -> None:
        """mode: permission bits (07777); uid/gid None or -1 leave them; size
        truncates or extends (and sets mtime); ctime is set to now unless given."""
        self._housekeep()
        self._rw()
        inode = self._iget(ino)
        if size is not None:
            self.truncate(ino, size)
            if mtime_ns is None:
                mtime_ns = self.clock()
        if mode is not None:
            inode.i_mode = st.S_IFMT(inode.i_mode) | (mode & 0o7777)
        if uid is not None and uid != -1:
            inode.uid = uid
        if gid is not None and gid != -1:
            inode.gid = gid
        if atime_ns is not None:
            inode.set_time_ns("atime", atime_ns)
        if mtime_ns is not None:
            inode.set_time_ns("mtime", mtime_ns)
        inode.set_time_ns("ctime", self.clock() if ctime_ns is None else ctime_ns)
        self.inode_dirty(inode)

    # ---------------------------------------------------------- whole volume
    def statfs(self) -> StatFs:
        sb = self.sb
        free = sb.free_blocks_count + self.alloc_state.pending_count
        return StatFs(f_type=c.EXT2_MAGIC, f_bsize=self.block_size,
                      f_blocks=sb.blocks_count - self._overhead(), f_bfree=free,
                      f_bavail=max(free - sb.r_blocks_count, 0), f_files=sb.s_inodes_count,
                      f_ffree=sb.s_free_inodes_count + len(self.alloc_state.pending_inodes),
                      f_namelen=c.NAME_MAX,
                      f_frsize=self.block_size, f_flags=ST_RDONLY if self.readonly else 0)

    def _overhead(self) -> int:
        if not hasattr(self, "_overhead_blocks"):
            sb = self.sb
            itable = (sb.s_inodes_per_group * self.inode_size + self.block_size - 1) \
                // self.block_size
            total = sb.s_first_data_block
            for g in range(len(self.groups)):
                total += len(group_overhead_blocks(sb, g)) + 2 + itable
            self._overhead_blocks = total
        return self._overhead_blocks

    def sync(self) -> None:
        """Write back everything dirty, in crash-safe order (module docstring)."""
        if self.readonly or self.closed:
            return
        if not (self._data_dirty or self._dirty_inodes or self.cache.has_dirty()
                or self.dirs_with_removals
                or self.alloc_state.has_pending() or self.alloc_state.dirty_groups
                or self._sb_dirty):
            return
        self._data_dirty = False
        write_back(self)

    def _write_group_descriptors(self, changed: List[int]) -> int:
        size, bs = self.sb.desc_size, self.block_size
        per_block = bs // size
        table = gdt_block_numbers(self.sb)
        written = 0
        for index in sorted({g // per_block for g in changed}):
            first = index * per_block
            raw = b"".join(bytes(gd.buf) for gd in self.groups[first:first + per_block])
            self.dev.write(table[index] * bs, raw)
            written += len(raw)
        return written

    def _write_superblock(self) -> None:
        sb = self.sb
        sb.set_times("s_wtime", self.clock() // 1_000_000_000)
        sb.s_kbytes_written = sb.s_kbytes_written + self._bytes_written // 1024
        self._bytes_written %= 1024
        sb.update_checksum()
        self.dev.write(c.SUPERBLOCK_OFFSET, bytes(sb.buf))
        self._sb_dirty = False

    def close(self) -> None:
        """Free pinned orphans, write everything back, mark the file system clean."""
        if self.closed:
            return
        if not self.readonly:
            for ino in list(self._pins):
                self._pins.pop(ino)
                inode = self._iget(ino)
                if inode.i_links_count == 0 and self._on_orphan_list(ino):
                    self._orphan_remove(inode)
                    self._free_inode(inode)
            self.sync()
            self.sb.s_state |= c.STATE_VALID
            self._write_superblock()
            self.dev.flush()
        self.closed = True

    def __enter__(self) -> "Ext2Volume":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

