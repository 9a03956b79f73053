"""Directory operations of Ext2Volume: lookup, readdir, create, mkdir, symlink,
link, unlink, rmdir, rename. Names are bytes, single components.

Permission checks, sticky bits and setgid inheritance are the caller's (the
VFS's); this layer checks what belongs to the file system: types (ENOTDIR,
EISDIR), emptiness, link limits, space, read-only.
"""
from __future__ import annotations

import errno
import stat as st
from typing import Iterator, List, Tuple

from . import constants as c
from . import dirblock as db
from .blockcache import TREE
from .directory import Directory
from .errors import corrupt, fail
from .inline import InlineDirectory, inline_bytes

RENAME_NOREPLACE = 1
RENAME_EXCHANGE = 2
DIR_CACHE_LIMIT = 512
_NODE_TYPES = (st.S_IFREG, st.S_IFIFO, st.S_IFSOCK, st.S_IFCHR, st.S_IFBLK)


def check_name(name: bytes) -> None:
    if not isinstance(name, (bytes, bytearray)):
        raise TypeError("ext2 names are bytes")
    if not name or name in (b".", b"..") or b"/" in name or b"\0" in name:
        raise fail(errno.EINVAL, f"bad name {name!r}")
    if len(name) > c.NAME_MAX:
        raise fail(errno.ENAMETOOLONG)


class NamespaceOps:
    """Mixed into Ext2Volume (which provides _iget, _new_inode, alloc...)."""

    # ---------------------------------------------------------- directories
    def _directory(self, ino: int):
        d = self._dirs.get(ino)
        if d is not None:
            return d
        inode = self._iget(ino)
        if not st.S_ISDIR(inode.i_mode):
            raise fail(errno.ENOTDIR)
        if inode.i_flags & c.INLINE_DATA_FL:
            d = InlineDirectory(self, inode)
        else:
            d = Directory(self, inode)
        self._dirs[ino] = d
        return d

    def _live_directory(self, ino: int) -> Directory:
        """A directory that may gain entries (not deleted, volume writable)."""
        self._rw()
        d = self._directory(ino)
        if d.inode.i_links_count == 0:
            raise fail(errno.ENOENT)
        return d

    def _checked_target(self, dir_ino: int, name: bytes, ino: int) -> int:
        if ino < self.sb.first_ino and ino != c.ROOT_INO or ino > self.max_ino:
            raise corrupt(f"entry {name!r} in directory {dir_ino} points to inode {ino}")
        if ino == dir_ino and name not in (b".", b".."):
            raise corrupt(f"entry {name!r} in directory {dir_ino} points to the directory itself")
        return ino

    def lookup(self, dir_ino: int, name: bytes) -> int:
        """The inode number name refers to in the directory (ENOENT if none)."""
        self._housekeep()
        d = self._directory(dir_ino)
        ino = d.lookup(bytes(name))
        if ino is None:
            raise fail(errno.ENOENT)
        self._checked_target(dir_ino, name, ino)
        if name in (b".", b".."):
            return ino
        inode = self._iget(ino)
        if inode.i_links_count == 0 and ino not in self._pins:
            raise corrupt(f"entry {name!r} in directory {dir_ino} points to free inode {ino}")
        if st.S_ISDIR(inode.i_mode) and self._parent_of(ino) != dir_ino:
            raise corrupt(f"directory {ino} is linked from {dir_ino} but its '..' "
                          f"names another parent (a loop or a hard-linked directory)")
        return ino

    def _parent_of(self, dir_ino: int) -> int:
        """A directory's '..', read from its first block only (cheap for big ones)."""
        d = self._dirs.get(dir_ino)
        inode = self._iget(dir_ino)
        if d is None and not inode.i_flags & c.INLINE_DATA_FL:
            if not st.S_ISDIR(inode.i_mode):
                raise corrupt(f"inode {dir_ino} is not a directory")
            pblk = self.filemap(inode).lookup(0, 1)[0][1]
            if not pblk or inode.size < self.block_size:
                raise corrupt(f"directory inode {dir_ino} has no first block")
            return db.dotdot_of(self.cache.get(pblk), self.block_size, self.max_ino,
                                f"in directory inode {dir_ino}")
        parent = self._directory(dir_ino).lookup(b"..")
        if parent is None:
            raise corrupt(f"directory inode {dir_ino} lacks '..'")
        return parent

    def readdir(self, dir_ino: int) -> Iterator[Tuple[bytes, int, int]]:
        """(name, inode number, file_type) for each entry but '.' and '..', in
        disk order. file_type is the entry's ext2 type (constants.FT_*: 1 regular,
        2 directory, 3 char, 4 block, 5 FIFO, 6 socket, 7 symlink; DT_OF_FT maps
        it to d_type), 0 (unknown) without the filetype feature."""
        self._housekeep()
        d = self._directory(dir_ino)
        out: List[Tuple[bytes, int, int]] = []
        for e in d.entries():
            if e.name in (b".", b".."):
                continue
            self._checked_target(dir_ino, e.name, e.inode)
            out.append((e.name, e.inode, e.file_type if e.file_type <= c.FT_SYMLINK else 0))
        return iter(out)

    # -------------------------------------------------------------- creating
    def _link_into(self, d: Directory, name: bytes, inode) -> None:
        d.add(name, inode.ino, c.file_type_of_mode(inode.i_mode) if self.filetype else 0)
        self._touch(d.inode, "mtime", "ctime")

    def _abandon(self, inode) -> None:
        """Undo a half-made inode (adding its name failed)."""
        inode.i_links_count = 0
        self._free_inode(inode)

    def create(self, dir_ino: int, name: bytes, mode: int, uid: int, gid: int,
               rdev: int = 0) -> int:
        """A regular file, FIFO, socket or device node; mode includes the type
        (no type bits: regular file)."""
        self._housekeep()
        if not st.S_IFMT(mode):
            mode |= st.S_IFREG
        if st.S_IFMT(mode) not in _NODE_TYPES:
            raise fail(errno.EINVAL)
        d = self._prepare_new_name(dir_ino, name)
        ino = self._alloc_inode(dir_ino, is_dir=False)
        inode = self._new_inode(ino, mode, uid, gid, d.inode)
        if st.S_IFMT(mode) in (st.S_IFCHR, st.S_IFBLK):
            inode.set_rdev(rdev)
        try:
            self._link_into(d, name, inode)
        except OSError:
            self._abandon(inode)
            raise
        return ino

    def _prepare_new_name(self, dir_ino: int, name: bytes) -> Directory:
        check_name(name)
        d = self._live_directory(dir_ino)
        if d.lookup(name) is not None:
            raise fail(errno.EEXIST)
        self._settle_name(d, name)
        return d

    def _settle_name(self, d: Directory, name: bytes) -> None:
        """Reusing a name removed since the last sync takes the old entry out of
        the block early. Harmless if its inode was freed (it is then written
        first); if the inode was moved elsewhere, sync now so its new entry
        is on disk before the old one goes (see writeback.py)."""
        if d.pending:
            old = d.pending_inode(name)
            if old is not None and self._iget(old).i_links_count:
                self.sync()

    def _can_add_subdir(self, dir_inode) -> None:
        if dir_inode.i_links_count >= c.LINK_MAX and not self.dir_nlink:
            raise fail(errno.EMLINK)

    def _inc_dir_links(self, dir_inode) -> None:
        n = dir_inode.i_links_count
        if n != 1:                           # 1 means "too many to count" (dir_nlink)
            dir_inode.i_links_count = 1 if n + 1 >= c.LINK_MAX else n + 1
        self.inode_dirty(dir_inode)

    def _dec_dir_links(self, dir_inode) -> None:
        if dir_inode.i_links_count > 2:
            dir_inode.i_links_count -= 1
        self.inode_dirty(dir_inode)

    def mkdir(self, dir_ino: int, name: bytes, mode: int, uid: int, gid: int) -> int:
        self._housekeep()
        d = self._prepare_new_name(dir_ino, name)
        self._can_add_subdir(d.inode)
        ino = self._alloc_inode(dir_ino, is_dir=True)
        inode = self._new_inode(ino, st.S_IFDIR | (mode & 0o7777), uid, gid, d.inode)
        inode.i_links_count = 2
        try:
            runs = self.filemap(inode).allocate(0, 1, metadata=True)
            seed = self.seed_of(inode) if self.csum else 0
            self.cache.put_new(runs[0][1], db.first_block(self.block_size, ino, dir_ino, self.csum,
                                                          seed, self.filetype), TREE)
            inode.size = self.block_size
            self._link_into(d, name, inode)
        except OSError:
            self._abandon(inode)
            raise
        self._inc_dir_links(d.inode)
        return ino

    def symlink(self, dir_ino: int, name: bytes, target: bytes, uid: int, gid: int) -> int:
        """Targets under 60 bytes live in i_block (fast), longer ones in a block."""
        self._housekeep()
        target = bytes(target)
        if not target:
            raise fail(errno.ENOENT)
        if len(target) >= self.block_size or b"\0" in target:
            raise fail(errno.ENAMETOOLONG if b"\0" not in target else errno.EINVAL)
        d = self._prepare_new_name(dir_ino, name)
        ino = self._alloc_inode(dir_ino, is_dir=False)
        inode = self._new_inode(ino, st.S_IFLNK | 0o777, uid, gid, d.inode)
        try:
            if len(target) < 60:
                inode.i_block = target + bytes(60 - len(target))
            else:
                if self.extents:
                    self._make_extent_root(inode)
                runs = self.filemap(inode).allocate(0, 1)
                self.dev.write(runs[0][1] * self.block_size,
                               target + bytes(self.block_size - len(target)))
            inode.size = len(target)
            self.inode_dirty(inode)
            self._link_into(d, name, inode)
        except OSError:
            self._abandon(inode)
            raise
        return ino

    def readlink(self, ino: int) -> bytes:
        self._housekeep()
        inode = self._iget(ino)
        if not st.S_ISLNK(inode.i_mode):
            raise fail(errno.EINVAL)
        size = inode.size
        if size >= self.block_size and not inode.i_flags & c.INLINE_DATA_FL:
            raise corrupt(f"symlink inode {ino} has size {size}")
        if inode.i_flags & c.INLINE_DATA_FL:
            return inline_bytes(self, inode)[:size]
        if self._is_fast_symlink(inode):
            return bytes(inode.i_block)[:size]
        return self._read_data(inode, 0, size)

    def link(self, dir_ino: int, name: bytes, ino: int) -> None:
        self._housekeep()
        d = self._prepare_new_name(dir_ino, name)          # EEXIST first, as Linux
        inode = self._iget(ino)
        if st.S_ISDIR(inode.i_mode):
            raise fail(errno.EPERM)
        if inode.i_links_count == 0:
            raise fail(errno.ENOENT)
        if inode.i_links_count >= c.LINK_MAX:
            raise fail(errno.EMLINK)
        self._link_into(d, name, inode)
        inode.i_links_count += 1
        self._touch(inode, "ctime")

    # -------------------------------------------------------------- removing
    def unlink(self, dir_ino: int, name: bytes) -> int:
        """Remove a non-directory's name; returns its inode number. The inode is
        freed when no link is left, unless pinned (see the volume docstring)."""
        self._housekeep()
        check_name(name)
        d = self._live_directory(dir_ino)
        ino = self.lookup(dir_ino, name)
        inode = self._iget(ino)
        if st.S_ISDIR(inode.i_mode):
            raise fail(errno.EISDIR)
        d.remove(name)
        self._touch(d.inode, "mtime", "ctime")
        inode.i_links_count = max(inode.i_links_count - 1, 0)
        self._touch(inode, "ctime")
        self._drop_link(inode)
        return ino

    def rmdir(self, dir_ino: int, name: bytes) -> int:
        self._housekeep()
        check_name(name)
        d = self._live_directory(dir_ino)
        ino = self.lookup(dir_ino, name)
        inode = self._iget(ino)
        if not st.S_ISDIR(inode.i_mode):
            raise fail(errno.ENOTDIR)
        if ino == c.ROOT_INO:
            raise fail(errno.EBUSY)
        if not self._directory(ino).is_empty():
            raise fail(errno.ENOTEMPTY)
        d.remove(name)
        self._touch(d.inode, "mtime", "ctime")
        self._dec_dir_links(d.inode)
        inode.i_links_count = 0
        self._touch(inode, "ctime")
        self._drop_link(inode)
        return ino

    # ---------------------------------------------------------------- rename
    def _is_ancestor(self, maybe_ancestor: int, ino: int) -> bool:
        """Whether maybe_ancestor is ino or one of its parent directories."""
        seen = set()
        while True:
            if ino == maybe_ancestor:
                return True
            if ino == c.ROOT_INO:
                return False
            if ino in seen or len(seen) > self.max_ino:
                raise corrupt(f"directory loop above inode {ino}")
            seen.add(ino)
            ino = self._parent_of(ino)

    def rename(self, olddir: int, oldname: bytes, newdir: int, newname: bytes,
               flags: int = 0) -> None:
        """rename(2)/renameat2: RENAME_NOREPLACE (1) and RENAME_EXCHANGE (2)."""
        self._housekeep()
        if flags & ~(RENAME_NOREPLACE | RENAME_EXCHANGE) or \
                flags & RENAME_NOREPLACE and flags & RENAME_EXCHANGE:
            raise fail(errno.EINVAL)
        check_name(oldname)
        check_name(newname)
        od = self._live_directory(olddir)
        nd = self._live_directory(newdir)
        # the checks come in the order Linux makes them, so errors match
        src_ino = self.lookup(olddir, oldname)
        tgt_ino = self.lookup(newdir, newname) if nd.lookup(newname) is not None else None
        if tgt_ino is not None and flags & RENAME_NOREPLACE:
            raise fail(errno.EEXIST)
        if tgt_ino is None and flags & RENAME_EXCHANGE:
            raise fail(errno.ENOENT)
        src = self._iget(src_ino)
        tgt = self._iget(tgt_ino) if tgt_ino is not None else None
        src_is_dir = st.S_ISDIR(src.i_mode)
        tgt_is_dir = tgt is not None and st.S_ISDIR(tgt.i_mode)
        if olddir != newdir:
            if src_is_dir and self._is_ancestor(src_ino, newdir):
                raise fail(errno.EINVAL)              # into its own subtree
            if tgt_is_dir and self._is_ancestor(tgt_ino, olddir):
                raise fail(errno.EINVAL if flags & RENAME_EXCHANGE else errno.ENOTEMPTY)
        if tgt_ino == src_ino:
            return                                    # the same file: nothing to do
        if flags & RENAME_EXCHANGE:
            return self._exchange(od, oldname, src, nd, newname, tgt)
        if tgt is not None:
            if src_is_dir and not tgt_is_dir:
                raise fail(errno.ENOTDIR)
            if tgt_is_dir and not src_is_dir:
                raise fail(errno.EISDIR)
            if tgt_is_dir and not self._directory(tgt_ino).is_empty():
                raise fail(errno.ENOTEMPTY)
        elif src_is_dir and olddir != newdir:
            self._can_add_subdir(nd.inode)
        ftype = c.file_type_of_mode(src.i_mode) if self.filetype else 0
        if tgt is None:
            self._settle_name(nd, newname)
        if olddir == newdir and (od.rename_in_block(oldname, newname, ftype) if tgt is None
                                 else od.replace_in_block(oldname, newname, ftype)):
            pass                                  # one block changed: atomic on disk
        else:
            if tgt is None:
                nd.add(newname, src_ino, ftype)
            else:
                nd.retarget(newname, src_ino, ftype)
            od.remove(oldname)
        if src_is_dir and olddir != newdir:
            self._directory(src_ino).retarget(b"..", newdir, c.FT_DIR if self.filetype else 0)
            self._dec_dir_links(od.inode)
            self._inc_dir_links(nd.inode)
        self._touch(src, "ctime")
        self._touch(od.inode, "mtime", "ctime")
        self._touch(nd.inode, "mtime", "ctime")
        if tgt is not None:
            if st.S_ISDIR(tgt.i_mode):
                self._dec_dir_links(nd.inode)
                tgt.i_links_count = 0
            else:
                tgt.i_links_count = max(tgt.i_links_count - 1, 0)
            self._touch(tgt, "ctime")
            self._drop_link(tgt)

    def _exchange(self, od: Directory, oldname: bytes, src, nd: Directory, newname: bytes,
                  tgt) -> None:
        src_dir, tgt_dir = st.S_ISDIR(src.i_mode), st.S_ISDIR(tgt.i_mode)
        olddir, newdir = od.inode.ino, nd.inode.ino
        if olddir != newdir:
            if src_dir and not tgt_dir:
                self._can_add_subdir(nd.inode)
            if tgt_dir and not src_dir:
                self._can_add_subdir(od.inode)
        ft = (lambda i: c.file_type_of_mode(i.i_mode) if self.filetype else 0)
        od.retarget(oldname, tgt.ino, ft(tgt))
        nd.retarget(newname, src.ino, ft(src))
        if olddir != newdir:
            dir_ft = c.FT_DIR if self.filetype else 0
            if src_dir:
                self._directory(src.ino).retarget(b"..", newdir, dir_ft)
            if tgt_dir:
                self._directory(tgt.ino).retarget(b"..", olddir, dir_ft)
            if src_dir and not tgt_dir:
                self._dec_dir_links(od.inode)
                self._inc_dir_links(nd.inode)
            elif tgt_dir and not src_dir:
                self._dec_dir_links(nd.inode)
                self._inc_dir_links(od.inode)
        for inode in (src, tgt, od.inode, nd.inode):
            self._touch(inode, "ctime")
        self._touch(od.inode, "mtime")
        self._touch(nd.inode, "mtime")
