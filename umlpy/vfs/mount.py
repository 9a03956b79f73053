"""Mounts, dentries and paths: where each inode sits in the guest's namespace.

A Path is what Linux calls a `struct path`: a mount and a dentry in it. Dentries
carry their name and parent, so `..`, getcwd and /proc/PID/cwd work from
the object itself instead of a remembered string. Mount points are keyed by
the mounted-on inode's identity (inode.key) within the parent mount.
"""
from __future__ import annotations

import errno
import itertools
import stat as st
import weakref
from typing import Dict, Iterable, Iterator, List, Optional, Tuple

from umlpy.vfs.inode import Attr, FileSystem, Inode, now_ns


# The walk caches (namei.Walker.walk) are valid while these counters stand
# still, so a cached walk is always what a fresh walk would give.
# `generation` moves on every change to a name, a search permission or a
# mount; `dir_generation` only on the changes that can alter where an
# existing directory path leads (a directory or symlink removed or renamed,
# a directory's permissions, a mount), not on a new name or a file's removal.
generation = [0]
dir_generation = [0]


def names_changed(structural: bool = True) -> None:
    """Forget cached walks: a name, a permission or a mount changed.
    structural=False for changes that leave every existing directory path
    resolving as before (a name created, a regular file removed)."""
    generation[0] += 1
    if structural:
        dir_generation[0] += 1

MS_RDONLY, MS_NOSUID, MS_NODEV, MS_NOEXEC = 1, 2, 4, 8
MS_REMOUNT, MS_BIND, MS_REC = 32, 4096, 16384
MNT_FORCE, MNT_DETACH, UMOUNT_NOFOLLOW = 1, 2, 8


class Dentry:
    """A name in a directory. One dentry per (parent, name) while anything
    holds it, so that a rename can move it (d_move) and every cwd and open
    directory below sees the new path."""
    __slots__ = ("name", "parent", "inode", "kids", "__weakref__")

    def __init__(self, name: str, parent: Optional["Dentry"], inode: Inode) -> None:
        self.name = name
        self.parent = parent        # None at the root of its file system
        self.inode = inode
        self.kids: Optional[weakref.WeakValueDictionary] = None

    def child(self, name: str, inode: Inode) -> "Dentry":
        kids = self.kids
        if kids is None:
            kids = self.kids = weakref.WeakValueDictionary()
        else:
            d = kids.get(name)
            if d is not None and d.inode is inode:
                return d
            if d is not None and d.inode.key == inode.key:
                d.inode = inode         # hostfs makes a new object per lookup
                return d
        d = kids[name] = Dentry(name, self, inode)
        return d

    def drop_child(self, name: str) -> None:
        """Name `name` in this directory is gone (when a dentry holds it)."""
        kids = self.kids
        if kids is not None:
            kids.pop(name, None)

    def move(self, parent: "Dentry", name: str) -> None:
        """Rename: this dentry now is `name` in `parent`."""
        self.drop()
        self.parent, self.name = parent, name
        if parent.kids is None:
            parent.kids = weakref.WeakValueDictionary()
        parent.kids[name] = self

    def drop(self) -> None:
        """The name is gone (unlinked, or replaced by a rename)."""
        parent = self.parent
        if parent is not None and parent.kids is not None and \
                parent.kids.get(self.name) is self:
            del parent.kids[self.name]

    def __repr__(self) -> str:
        return f"<Dentry {self.name!r} {self.inode.key}>"


class GlueFs(FileSystem):
    """Where made-up mount points live (see MountTable.add_glue)."""
    readonly = True


class GlueDir(Inode):
    """An empty, read-only directory: the mount point of a missing directory."""
    _inos = itertools.count(2)

    def __init__(self, fs: GlueFs) -> None:
        self.fs = fs
        self.ino = next(self._inos)
        self._attr = Attr(mode=st.S_IFDIR | 0o755, ino=self.ino, nlink=2,
                          atime_ns=now_ns(), mtime_ns=now_ns(), ctime_ns=now_ns())

    def getattr(self) -> Attr:
        return self._attr.copy()

    def lookup(self, name: str) -> Inode:
        raise OSError(errno.ENOENT, "no such file or directory")

    def readdir(self) -> Iterable[Tuple[str, int, int]]:
        return []


_mount_ids = itertools.count(21)        # Linux's first ids are small too; 1.. look odd


class Mount:
    def __init__(self, fs: FileSystem, root: Dentry, source: str, flags: int = 0,
                 parent: Optional["Mount"] = None, mountpoint: Optional[Dentry] = None) -> None:
        self.id = next(_mount_ids)
        self.fs = fs
        self.root = root
        self.source = source
        self.flags = flags
        self.parent = parent
        self.mountpoint = mountpoint

    @property
    def flags(self) -> int:
        return self._flags

    @flags.setter
    def flags(self, value: int) -> None:
        self._flags = value
        if value & MS_RDONLY:
            self.fs.ro_mounted = True

    @property
    def readonly(self) -> bool:
        return bool(self.flags & MS_RDONLY) or self.fs.readonly

    def options(self) -> str:
        opts = ["ro" if self.readonly else "rw"]
        for bit, name in ((MS_NOSUID, "nosuid"), (MS_NODEV, "nodev"), (MS_NOEXEC, "noexec")):
            if self.flags & bit:
                opts.append(name)
        extra = self.fs.mount_options()
        return ",".join(opts + ([extra] if extra else []))

    def __repr__(self) -> str:
        return f"<Mount {self.id} {self.fs.type_name} {self.source}>"


class Path:
    """A (mount, dentry) pair: one place in the namespace."""
    __slots__ = ("mount", "dentry")

    def __init__(self, mount: Mount, dentry: Dentry) -> None:
        self.mount = mount
        self.dentry = dentry

    @property
    def inode(self) -> Inode:
        return self.dentry.inode

    @property
    def fs(self) -> FileSystem:
        return self.mount.fs

    def child(self, name: str, inode: Inode) -> "Path":
        return Path(self.mount, self.dentry.child(name, inode))

    def same(self, other: "Path") -> bool:
        return self.mount is other.mount and self.dentry.inode.key == other.dentry.inode.key

    def __repr__(self) -> str:
        return f"<Path {self.mount.id}:{self.dentry.name!r}>"


class MountTable:
    """One instance's mounts (a mount namespace)."""

    def __init__(self) -> None:
        self.root: Optional[Mount] = None
        self.mount_points: Dict[Tuple[int, Tuple[int, int]], List[Mount]] = {}
        self.order: List[Mount] = []
        # mount points the kernel made up where a directory was missing:
        # (mount id, directory inode key) -> {name: inode}
        self._glue: Dict[Tuple[int, Tuple[int, int]], Dict[str, Inode]] = {}
        self._glue_fs: Optional[GlueFs] = None

    def set_root(self, fs: FileSystem, source: str, flags: int = 0) -> Mount:
        names_changed()
        m = Mount(fs, Dentry("/", None, fs.root), source, flags)
        self.root = m
        self.order.insert(0, m)
        return m

    def root_path(self) -> Path:
        return Path(self.root, self.root.root)

    def attach(self, fs: FileSystem, at: Path, source: str, flags: int = 0,
               root: Optional[Dentry] = None) -> Mount:
        """Mount fs (or, for a bind mount, the subtree at `root`) on `at`."""
        names_changed()
        m = Mount(fs, root or Dentry("/", None, fs.root), source, flags, at.mount, at.dentry)
        self._hook(m, at)
        self.order.append(m)
        return m

    def _hook(self, m: Mount, at: Path) -> None:
        m.parent, m.mountpoint = at.mount, at.dentry
        self.mount_points.setdefault((at.mount.id, at.inode.key), []).append(m)

    def _unhook(self, m: Mount) -> None:
        key = (m.parent.id, m.mountpoint.inode.key)
        self.mount_points[key].remove(m)
        if not self.mount_points[key]:
            del self.mount_points[key]
        m.parent = m.mountpoint = None

    def below(self, p: Path, top: Path) -> bool:
        """Is p at or below top (Linux's is_path_reachable)?"""
        for _ in range(1 << 16):            # bounded: a namespace is a tree
            if p.same(top):
                return True
            if p.dentry.inode.key == p.mount.root.inode.key:
                if p.mount.parent is None:
                    return False
                p = Path(p.mount.parent, p.mount.mountpoint)
            elif p.dentry.parent is None:
                return False
            else:
                p = Path(p.mount, p.dentry.parent)
        return False

    def move(self, m: Mount, at: Path) -> None:
        """mount --move: m, with everything mounted on it, now sits on `at`."""
        if m.parent is None:
            raise OSError(errno.EINVAL, "cannot move the root")
        p: Optional[Mount] = at.mount
        while p is not None:
            if p is m:
                raise OSError(errno.ELOOP, "a mount cannot move below itself")
            p = p.parent
        names_changed()
        self._unhook(m)
        self._hook(m, at)

    def pivot(self, new: Mount, put_old: Path, old: Mount) -> None:
        """pivot_root: `new` takes the place of the caller's root mount `old`
        (the namespace's root, usually) and `old` sits on put_old (the caller
        checked Linux's conditions)."""
        names_changed()
        self._unhook(new)
        if old.parent is None:
            self.root = new
            self.order.remove(new)
            self.order.insert(0, new)
        else:
            where = Path(old.parent, old.mountpoint)
            self._unhook(old)
            self._hook(new, where)
        self._hook(old, put_old)

    def subtree(self, m: Mount) -> List[Mount]:
        """m and every mount on it, deepest first (what umount -l takes away)."""
        out: List[Mount] = []
        for c in self.children(m):
            out += self.subtree(c)
        return out + [m]

    def mounted_on(self, path: Path) -> Optional[Mount]:
        """The top mount on this place, if any."""
        stack = self.mount_points.get((path.mount.id, path.inode.key))
        return stack[-1] if stack else None

    def add_glue(self, parent: Path, name: str) -> Path:
        """A directory `name` in `parent` that exists only in this namespace,
        to mount on without writing to the parent's file system."""
        names_changed()
        if self._glue_fs is None:
            self._glue_fs = GlueFs()
        inode = GlueDir(self._glue_fs)
        self._glue.setdefault((parent.mount.id, parent.inode.key), {})[name] = inode
        return parent.child(name, inode)

    def glue(self, parent: Path, name: str) -> Optional[Inode]:
        names = self._glue.get((parent.mount.id, parent.inode.key))
        return names.get(name) if names else None

    def glue_names(self, parent: Path) -> Dict[str, Inode]:
        return self._glue.get((parent.mount.id, parent.inode.key), {})

    def children(self, m: Mount) -> List[Mount]:
        return [c for c in self.order if c.parent is m]

    def detach(self, m: Mount) -> None:
        names_changed()
        if m is self.root:
            raise OSError(errno.EBUSY, "cannot unmount the root")
        if self.children(m):
            raise OSError(errno.EBUSY, "mount point busy")
        self._unhook(m)
        self.order.remove(m)

    def __iter__(self) -> Iterator[Mount]:
        return iter(list(self.order))
