"""overlayfs: a writable upper layer over a read-only lower one.

Works over the Inode API only, so any file system can be either layer
(tmpfs, hostfs, ext2). The lower layer is never written. Conventions for
whiteouts, opaque directories and the copy-up itself are in overlay_copyup.

Inode numbers (st_ino and d_ino agree): an object with a lower inode
(lower-only, or a merged directory) reports 2*lower_ino; a file copied up
keeps that number (remembered for this mount, and in the index for files
with several names); anything else reports 2*upper_ino+1. So numbers never
collide between layers, directories keep theirs across copy-up (fts and
`rm -r` check that), and st_dev is always the overlay's. A file with one
name copied up in an earlier mount shows its upper-based number.

Hard links: when a lower file with several names is copied up, its copy is
also linked into an index directory of the upper (".wh..wh.index/<lower
ino>", hidden; in the work directory when there is one). The other lower
names then read through that copy, and their own copy-up links to it, so the
names stay one file, across remounts too (a simplified index=on). The index
link is not counted in st_nlink; index entries are never collected.

Directories with a lower part cannot be renamed (EXDEV, as Linux without
redirect_dir); `mv` then copies. Descriptors opened read-only on a lower file
before its copy-up keep reading the lower data (they are the host's own).
"""
from __future__ import annotations

import errno
import os
import stat as st
import weakref
from typing import Dict, Iterable, List, Optional, Tuple, Union

from umlpy.fs import overlay_copyup as cu
from umlpy.fs.overlay_index import OvlNumbering
from umlpy.vfs.inode import (DT_CHR, DT_DIR, DT_UNKNOWN, RENAME_EXCHANGE, RENAME_NOREPLACE,
                             Attr, FileSystem, Inode, OpenRecipe, StatFs, StatView, check_name,
                             check_rename)

OVERLAYFS_SUPER_MAGIC = 0x794C7630


def _err(code: int) -> OSError:
    return OSError(code, os.strerror(code))


def gone(inode: Inode) -> bool:
    """No name left. A path-based inode (hostfs) whose path went, or now
    names another object, counts as gone too."""
    try:
        a = inode.getattr()
    except OSError:
        return True
    return a.nlink == 0 or a.ino != inode.ino


def _root(layer: Union[FileSystem, Inode, None]) -> Optional[Inode]:
    return layer.root if isinstance(layer, FileSystem) else layer


class OverlayFs(OvlNumbering):
    """lower: a FileSystem or directory Inode, only read; upper (and work, a
    directory on the upper's file system for staging copy-ups): where every
    change goes. With no upper the overlay is a read-only view of lower."""

    type_name = "overlay"
    magic = OVERLAYFS_SUPER_MAGIC

    def __init__(self, lower: Union[FileSystem, Inode], upper: Union[FileSystem, Inode, None],
                 work: Optional[Inode] = None, readonly: bool = False,
                 options: str = "") -> None:
        super().__init__()
        self.lower_root = _root(lower)
        self.upper_root = _root(upper)
        self.work = work
        self.readonly = readonly or self.upper_root is None
        self._options = options
        self._init_numbering()
        # the host may change a hostfs layer: let the VFS walk afresh each time
        self.volatile = any(getattr(layer, "fs", None) is not None and layer.fs.volatile
                            for layer in (self.lower_root, self.upper_root))
        self.root = OvlInode(self, None, "/", self.upper_root, self.lower_root)

    def statfs(self) -> StatFs:
        src = self.upper_root if self.upper_root is not None else self.lower_root
        s = src.fs.statfs()
        s.f_type = self.magic
        return s

    def sync(self) -> None:
        if self.upper_root is not None:
            self.upper_root.fs.sync()

    def mount_options(self) -> str:
        return self._options


# what OvlInode._children is before its first child: read (get, pop, items), never written
_NO_CHILDREN: "weakref.WeakValueDictionary" = weakref.WeakValueDictionary()


class OvlInode(Inode):
    """One object of the merged tree: its upper inode, its lower inode, or
    both (a merged directory)."""

    def __init__(self, fs: OverlayFs, parent: Optional["OvlInode"], name: str,
                 upper: Optional[Inode], lower: Optional[Inode]) -> None:
        self.fs = fs
        self.parent = parent        # for copy-up: where the upper copy goes
        self.name = name
        self.upper = upper
        self.lower = lower
        self.dead = False
        self._multi: Optional[bool] = None     # a lower non-directory with other names?
        # looked-up children: _NO_CHILDREN (shared, never written) until the
        # first, as most inodes are files (tar c makes thousands)
        self._children: "weakref.WeakValueDictionary[str, OvlInode]" = _NO_CHILDREN

    def _child_cache(self) -> "weakref.WeakValueDictionary[str, OvlInode]":
        if self._children is _NO_CHILDREN:
            self._children = weakref.WeakValueDictionary()
        return self._children

    # ---- identity ----
    @property
    def key(self) -> Tuple[int, int]:
        """Unique across layers (and across the host file systems one layer
        may span, where inode numbers repeat): the real inode's own key."""
        return (self.fs.dev, hash(self.real().key))   # names of one file: one key

    @property
    def ino(self) -> int:           # type: ignore[override]
        if self.lower is not None:
            return self.fs.ovl_ino(self.lower.key[0], self.lower.ino, 0)
        origin = self.fs.origin.get(self.upper.key)
        if origin is not None:
            return self.fs.ovl_ino(origin[0], origin[1], 0)
        return self.fs.ovl_ino(self.upper.key[0], self.upper.ino, 1)

    def real(self) -> Inode:
        """Where reads go: the upper inode, else the lower one (or, for another
        name of a lower file already copied up, that copy)."""
        if self.upper is not None:
            return self.upper
        if self.fs.index is not None and self.has_other_names():
            alias = self.fs.hardlink_copy(self.lower)
            if alias is not None:
                return alias
        return self.lower

    def has_other_names(self) -> bool:
        """Does our lower non-directory have more names than this one?"""
        if self._multi is None:
            a = self.lower.getattr()
            self._multi = not st.S_ISDIR(a.mode) and a.nlink > 1
        return self._multi

    def became_upper(self, upper: Inode) -> None:
        """Called by copy-up. Directories stay merged with their lower part."""
        self.upper = upper
        if self.lower is not None and not st.S_ISDIR(upper.mode):
            self.fs.note_copy(self.lower, upper, 2 if self.has_other_names() else 1)
            self.lower = None

    def copy_up(self, with_data: bool = True) -> Inode:
        self.fs.check_writable()
        if self.dead:
            raise _err(errno.ENOENT)
        return cu.copy_up(self, with_data)

    # ---- attributes ----
    @property
    def mode(self) -> int:
        return self.real().mode

    def getattr(self) -> Attr:
        a = self.real().getattr()
        a.ino = self.ino
        a.dev = self.fs.dev
        if self.upper is not None and self.lower is not None:
            a.nlink = 1         # subdirectories of two layers are not counted (as Linux)
        elif self.fs._indexed and self.fs.is_indexed(self.real()):
            a.nlink = max(1, a.nlink - 1)       # the index's own link is no name
        return a

    def setattr(self, *, mode: Optional[int] = None, uid: Optional[int] = None,
                gid: Optional[int] = None, size: Optional[int] = None,
                atime_ns: Optional[int] = None, mtime_ns: Optional[int] = None) -> None:
        if size is not None and not st.S_ISREG(self.mode):
            raise _err(errno.EISDIR if st.S_ISDIR(self.mode) else errno.EINVAL)
        # truncation to zero need not copy the data it throws away
        up = self.copy_up(with_data=size != 0)
        up.setattr(mode=mode, uid=uid, gid=gid, size=size, atime_ns=atime_ns,
                   mtime_ns=mtime_ns)

    # ---- data ----
    def open(self, flags: int) -> int:
        mode = self.mode
        if st.S_ISDIR(mode):
            raise _err(errno.EISDIR)
        writing = flags & os.O_ACCMODE != os.O_RDONLY or flags & os.O_TRUNC
        if writing and st.S_ISREG(mode):
            return self.copy_up().open(flags)
        return self.real().open(flags)      # lower-only: the lower file itself

    def host_key(self) -> Optional[Tuple[int, int]]:
        return self.real().host_key()

    def stat_view(self) -> Optional[StatView]:
        return self.real().stat_view()

    def open_recipe(self) -> Optional[OpenRecipe]:
        return self.real().open_recipe()    # reading opens the real file, as open() does

    def readlink(self) -> str:
        return self.real().readlink()

    def fifo_path(self) -> str:
        return self._delegate("fifo_path", errno.ENXIO)

    def socket_path(self) -> str:
        return self._delegate("socket_path", errno.ECONNREFUSED)

    def _delegate(self, method: str, code: int) -> str:
        fn = getattr(self.real(), method, None)
        if fn is None:
            raise _err(code)
        return fn()

    # ---- xattrs (the overlay's own trusted.overlay.* stay hidden) ----
    def getxattr(self, name: str) -> bytes:
        if name.startswith(cu.OVL_XATTR_PREFIX):
            raise _err(errno.ENODATA)
        return self.real().getxattr(name)

    def listxattr(self) -> Iterable[str]:
        return [n for n in self.real().listxattr() if not n.startswith(cu.OVL_XATTR_PREFIX)]

    def setxattr(self, name: str, value: bytes, flags: int) -> None:
        if name.startswith(cu.OVL_XATTR_PREFIX):
            raise _err(errno.EPERM)
        self.copy_up().setxattr(name, value, flags)

    def removexattr(self, name: str) -> None:
        if name.startswith(cu.OVL_XATTR_PREFIX):
            raise _err(errno.EPERM)
        real = self.real()
        real.getxattr(name)             # ENODATA before any copy-up
        self.copy_up().removexattr(name)

    # ---- directories: looking ----
    def _dir(self) -> None:
        if not st.S_ISDIR(self.mode):
            raise _err(errno.ENOTDIR)
        if self.dead:
            raise _err(errno.ENOENT)

    def lookup(self, name: str) -> Inode:
        self._dir()
        child = self._children.get(name)
        if child is None or child.dead:
            child = self._resolve(name)
            self._child_cache()[name] = child
        return child

    def _resolve(self, name: str) -> "OvlInode":
        u = lo = None
        if self.upper is not None:
            if name.startswith(cu.PRIVATE_PREFIX):
                raise _err(errno.ENOENT)
            u = cu.upper_lookup(self.upper, name)
            if u is not None and cu.is_whiteout(u):
                raise _err(errno.ENOENT)
        if self.lower is not None and (u is None or st.S_ISDIR(u.mode)):
            lo = cu.upper_lookup(self.lower, name)
        if u is None and lo is None:
            raise _err(errno.ENOENT)
        if u is not None:
            merged = (lo is not None and st.S_ISDIR(u.mode) and st.S_ISDIR(lo.mode)
                      and not cu.is_opaque(u))
            return OvlInode(self.fs, self, name, u, lo if merged else None)
        return OvlInode(self.fs, self, name, None, lo)

    def _lower_has(self, name: str) -> bool:
        """Is there a lower object at `name` that an upper change must hide?"""
        return self.lower is not None and cu.upper_lookup(self.lower, name) is not None

    def readdir(self) -> Iterable[Tuple[str, int, int]]:
        self._dir()
        out: Dict[str, Tuple[str, int, int]] = {}
        hidden = set()
        if self.upper is not None:
            udev = self.upper.key[0]
            for name, ino, dtype in self.upper.readdir():
                if name.startswith(cu.PRIVATE_PREFIX):
                    continue
                if dtype in (DT_CHR, DT_UNKNOWN):       # maybe a whiteout
                    child = cu.upper_lookup(self.upper, name)
                    if child is None or cu.is_whiteout(child):
                        hidden.add(name)
                        continue
                origin = self.fs.origin.get((udev, ino))
                d_ino = (self.fs.ovl_ino(origin[0], origin[1], 0) if origin is not None
                         else self.fs.ovl_ino(udev, ino, 1))
                out[name] = (name, d_ino, dtype)
        if self.lower is not None:
            ldev = self.lower.key[0]
            for name, ino, dtype in self.lower.readdir():
                if name in hidden:
                    continue
                if name in out:
                    if out[name][2] == DT_DIR and dtype == DT_DIR and not self._opaque_child(name):
                        out[name] = (name, self.fs.ovl_ino(ldev, ino, 0), dtype)
                    continue
                out[name] = (name, self.fs.ovl_ino(ldev, ino, 0), dtype)
        return list(out.values())

    def _opaque_child(self, name: str) -> bool:
        child = cu.upper_lookup(self.upper, name)
        return child is not None and cu.is_opaque(child)

    def _is_empty(self) -> bool:
        return not list(self.readdir())

    # ---- directories: changing ----
    def _prepare_new(self, name: str) -> Inode:
        """Checks for a new entry `name`; returns our upper directory."""
        check_name(name)
        self._dir()
        self.fs.check_writable()
        try:
            self.lookup(name)
        except FileNotFoundError:
            pass
        else:
            raise _err(errno.EEXIST)
        if name.startswith(cu.PRIVATE_PREFIX):
            raise _err(errno.EINVAL)   # reserved for whiteouts and staging
        return self.copy_up()

    def _whiteout_there(self, up: Inode, name: str) -> bool:
        w = cu.upper_lookup(up, name)
        return w is not None and cu.is_whiteout(w)

    def _make(self, name: str, build) -> Inode:
        """Create a non-directory with `build(dir, name)`; over a whiteout it is
        staged and renamed over it, so the lower name is never uncovered."""
        up = self._prepare_new(name)
        if self._whiteout_there(up, name):
            tmp = cu.stage_name()
            build(up, tmp)
            try:
                up.rename(tmp, up, name)
            except OSError:
                up.unlink(tmp)
                raise
            new = up.lookup(name)
        else:
            new = build(up, name)
        return self._adopt(name, new)

    def _adopt(self, name: str, upper: Inode) -> "OvlInode":
        child = OvlInode(self.fs, self, name, upper, None)
        self._child_cache()[name] = child
        return child

    def create(self, name: str, mode: int, uid: int, gid: int) -> Inode:
        return self._make(name, lambda d, n: d.create(n, mode, uid, gid))

    def mknod(self, name: str, mode: int, rdev: int, uid: int, gid: int) -> Inode:
        return self._make(name, lambda d, n: d.mknod(n, mode, rdev, uid, gid))

    def symlink(self, name: str, target: str, uid: int, gid: int) -> Inode:
        return self._make(name, lambda d, n: d.symlink(n, target, uid, gid))

    def mkdir(self, name: str, mode: int, uid: int, gid: int) -> Inode:
        up = self._prepare_new(name)
        covers = self._whiteout_there(up, name)
        if covers:
            up.unlink(name)     # a directory cannot be renamed over a whiteout
        try:
            new = up.mkdir(name, mode, uid, gid)
        except OSError:
            if covers:
                cu.make_whiteout(up, name)      # keep the lower name hidden
            raise
        if covers or self._lower_has(name):
            cu.set_opaque(new)          # the lower directory of that name stays hidden
        return self._adopt(name, new)

    def tmpfile(self, mode: int, uid: int, gid: int) -> Inode:
        self._dir()
        self.fs.check_writable()
        up = self.copy_up()
        make = getattr(up, "tmpfile", None)
        if make is None:
            raise _err(errno.EOPNOTSUPP)
        return OvlInode(self.fs, None, "", make(mode, uid, gid), None)

    def link(self, name: str, inode: Inode) -> None:
        self._dir()
        if not isinstance(inode, OvlInode) or inode.fs is not self.fs:
            raise _err(errno.EXDEV)
        if st.S_ISDIR(inode.mode):
            raise _err(errno.EPERM)
        up = self._prepare_new(name)
        target = inode.copy_up() if inode.upper is None else inode.upper
        if self._whiteout_there(up, name):
            up.unlink(name)
        up.link(name, target)
        self._children.pop(name, None)

    def unlink(self, name: str) -> None:
        check_name(name)
        self._dir()
        self.fs.check_writable()
        child = self.lookup(name)
        if st.S_ISDIR(child.mode):
            raise _err(errno.EISDIR)
        up = self.copy_up()
        if self._lower_has(name):
            cu.make_whiteout(up, name)      # replaces an upper file atomically
        else:
            up.unlink(name)
        self._forget(name, child)

    def rmdir(self, name: str) -> None:
        check_name(name)
        self._dir()
        self.fs.check_writable()
        child = self.lookup(name)
        if not st.S_ISDIR(child.mode):
            raise _err(errno.ENOTDIR)
        if not child._is_empty():
            raise _err(errno.ENOTEMPTY)
        up = self.copy_up()
        if child.upper is not None:
            cu.clear_private(child.upper)
            up.rmdir(name)
        if self._lower_has(name):
            cu.make_whiteout(up, name)
        self._forget(name, child)

    def _forget(self, name: str, child: "OvlInode") -> None:
        self._children.pop(name, None)
        if child.upper is None or st.S_ISDIR(child.mode) or gone(child.upper):
            child.dead = True
        if child.upper is not None and child.dead:
            self.fs.origin.pop(child.upper.key, None)

    def rename(self, name: str, newdir: Inode, newname: str, flags: int = 0) -> None:
        check_rename(name, newname, flags)
        if not isinstance(newdir, OvlInode) or newdir.fs is not self.fs:
            raise _err(errno.EXDEV)
        self._dir()
        newdir._dir()
        self.fs.check_writable()
        src = self.lookup(name)
        try:
            dst: Optional[OvlInode] = newdir.lookup(newname)     # type: ignore[assignment]
        except FileNotFoundError:
            dst = None
        exchange = bool(flags & RENAME_EXCHANGE)
        if exchange and dst is None:
            raise _err(errno.ENOENT)
        if dst is not None and not exchange:
            if flags & RENAME_NOREPLACE:
                raise _err(errno.EEXIST)
            if dst is src or dst.real().key == src.real().key:     # one file
                return
            self._check_replace(src, dst)
        if newname.startswith(cu.PRIVATE_PREFIX):
            raise _err(errno.EINVAL)
        # a directory with a lower part would need redirect_dir: let mv copy it
        for d in (src, dst if exchange else None):
            if d is not None and st.S_ISDIR(d.mode) and d.lower is not None:
                raise _err(errno.EXDEV)
        src.copy_up()
        if exchange:
            dst.copy_up()
        sup, dup = self.copy_up(), newdir.copy_up()
        if dst is not None and not exchange and st.S_ISDIR(dst.mode):
            if dst.upper is not None:
                cu.clear_private(dst.upper)
        if not exchange and dst is None and newdir._whiteout_there(dup, newname) \
                and st.S_ISDIR(src.mode):
            dup.unlink(newname)             # a directory cannot replace a whiteout
        src_lower = self._lower_has(name)
        if dst is not None and not exchange and dst.upper is None:
            # the target exists in lower only: the upper has nothing to replace
            sup.rename(name, dup, newname, 0)
        else:
            sup.rename(name, dup, newname, RENAME_EXCHANGE if exchange else 0)
        self._moved(name, src, newdir, newname, dst, exchange)
        if not exchange and src_lower:
            cu.make_whiteout(sup, name)
        # a directory landing on a name the lower layer has must hide it
        if st.S_ISDIR(src.mode) and newdir._lower_has(newname):
            cu.set_opaque(src.upper)
        if exchange and st.S_ISDIR(dst.mode) and self._lower_has(name):
            cu.set_opaque(dst.upper)

    def _refresh(self) -> None:
        """Look our upper inode (and our live descendants') up again after a
        rename: a path-based upper (hostfs) names objects by where they were."""
        self.upper = self.parent.upper.lookup(self.name)
        for name, child in list(self._children.items()):
            if child.upper is not None and not child.dead:
                child._refresh()

    @staticmethod
    def _check_replace(src: "OvlInode", dst: "OvlInode") -> None:
        if st.S_ISDIR(src.mode):
            if not st.S_ISDIR(dst.mode):
                raise _err(errno.ENOTDIR)
            if not dst._is_empty():
                raise _err(errno.ENOTEMPTY)
        elif st.S_ISDIR(dst.mode):
            raise _err(errno.EISDIR)

    def _moved(self, name: str, src: "OvlInode", newdir: "OvlInode", newname: str,
               dst: Optional["OvlInode"], exchange: bool) -> None:
        self._children.pop(name, None)
        newdir._children.pop(newname, None)
        src.parent, src.name = newdir, newname
        newdir._child_cache()[newname] = src
        src._refresh()
        if dst is None:
            return
        if exchange:
            dst.parent, dst.name = self, name
            self._child_cache()[name] = dst
            dst._refresh()
        elif st.S_ISDIR(dst.mode) or dst.upper is None or gone(dst.upper):
            dst.dead = True


def tree_names(d: Inode) -> List[str]:
    return sorted(n for n, _, _ in d.readdir())
