"""Path walk: a guest path to a place in the guest's namespace.

Everything happens on the VFS's own objects (inodes of the file systems,
the mount table): the host never resolves a path the guest wrote. `..` goes
up the dentry chain and across mounts, and stops at the task's root;
symlinks are read and interpreted here, absolute ones from the task's root;
magic links (/proc/PID/fd/N, cwd, exe, root) jump to the object itself.
"""
from __future__ import annotations

import errno
import stat as st
from typing import List, Optional

from umlpy.record import Record
from umlpy.vfs import perm
from umlpy.vfs.mount import MountTable, Path, dir_generation, generation

MAXSYMLINKS = 40
PATH_MAX = 4096
NAME_MAX = 255

# openat2 RESOLVE_* flags
RESOLVE_NO_XDEV, RESOLVE_NO_MAGICLINKS, RESOLVE_NO_SYMLINKS = 0x01, 0x02, 0x04
RESOLVE_BENEATH, RESOLVE_IN_ROOT, RESOLVE_CACHED = 0x08, 0x10, 0x20
RESOLVE_ALL = 0x3F
WALK_CACHE_MAX = 8192


class Lookup(Record):
    """The end of a walk: `name` in directory `parent`; `path` is the object
    itself, or None when that name does not exist (yet). name is "" when the
    walk ended on a directory reached without a final name ("/", ".", "x/..")."""
    __slots__ = _fields = ("parent", "name", "path", "trailing_slash")

    def __init__(self, parent: Path, name: str, path: Optional[Path],
                 trailing_slash: bool = False) -> None:
        self.parent = parent
        self.name = name
        self.path = path
        self.trailing_slash = trailing_slash

    @property
    def inode(self):
        return self.path.inode if self.path is not None else None

    def must_exist(self) -> Path:
        if self.path is None:
            raise OSError(errno.ENOENT, "no such file or directory")
        return self.path


# a name of at most this many characters is within NAME_MAX bytes in any encoding
_SHORT_NAME = NAME_MAX // 4


def _components(path: str) -> List[str]:
    return [c for c in path.split("/") if c and c != "."]


def _is_mount_root(p: Path) -> bool:
    return p.dentry.inode.key == p.mount.root.inode.key


class Walker:
    def __init__(self, mounts: MountTable) -> None:
        self.mounts = mounts
        self._cache: dict = {}
        self._cache_generation = -1
        self._dir_cache: dict = {}      # directory walks: key -> Path
        self._dir_cache_generation = -1
        self.last_stable = False        # the last walk's result may be cached (statcache)

    def _down_mounts(self, p: Path, resolve: int) -> Path:
        """Cross every mount stacked on `p`."""
        on = self.mounts.mount_points      # MountTable.mounted_on, inlined: every step asks
        while True:
            stack = on.get((p.mount.id, p.dentry.inode.key))
            if not stack:
                return p
            m = stack[-1]
            if resolve & RESOLVE_NO_XDEV:
                raise OSError(errno.EXDEV, "crosses a mount")
            p = Path(m, m.root)

    def up(self, p: Path, root: Path, resolve: int = 0) -> Path:
        """The parent of `p` (`..`), never above `root`."""
        while not p.same(root):
            if _is_mount_root(p):
                m = p.mount
                if m.parent is None:
                    return p                    # the namespace's root: .. is itself
                if resolve & RESOLVE_NO_XDEV:
                    raise OSError(errno.EXDEV, "crosses a mount")
                p = Path(m.parent, m.mountpoint)
                continue
            parent = p.dentry.parent
            if parent is None:
                return p
            return self._down_mounts(Path(p.mount, parent), resolve)
        if resolve & RESOLVE_BENEATH:
            raise OSError(errno.EXDEV, "escapes the starting directory")
        return p

    def walk(self, path: str, start: Path, root: Path, creds, follow: bool = True,
             resolve: int = 0) -> Lookup:
        """Resolve `path` from `start` (relative) or `root` (absolute).

        follow: follow a symlink in the final component (a trailing slash
        always does and requires a directory).

        Walks that only crossed file systems whose names change through the
        VFS alone (not hostfs, procfs...) and no magic link are remembered
        until the next names_changed(): python's imports and compilers stat
        the same paths over and over."""
        self.last_stable = False
        if resolve:
            return self._walk(path, start, root, creds, follow, resolve)[0]
        if self._cache_generation != generation[0]:
            self._cache.clear()
            self._cache_generation = generation[0]
        searcher = (creds.fsuid, creds.fsgid, tuple(creds.groups)) \
            if creds is not None and creds.fsuid != 0 else creds is None
        if path[:1] == "/":
            key = (path, None, None, root.mount, root.dentry, follow, searcher)
        else:
            key = (path, start.mount, start.dentry, root.mount, root.dentry, follow, searcher)
        hit = self._cache.get(key)
        if hit is not None:
            self.last_stable = True
            return hit
        lk, cacheable = self._walk_from_dir(path, start, root, creds, follow, searcher)
        self.last_stable = cacheable
        if cacheable:
            if len(self._cache) >= WALK_CACHE_MAX:
                self._cache.clear()
            self._cache[key] = lk
        return lk

    def _walk_from_dir(self, path: str, start: Path, root: Path, creds, follow: bool,
                       searcher) -> "tuple[Lookup, bool]":
        """Walk "DIR/name" as DIR (from the directory cache) and then one name.

        Creating and removing files (tar x, a build) clears the walk cache
        every time, but not where their directories lead: the directory
        cache lives until a directory, symlink, permission or mount changes,
        so such a walk costs one lookup instead of one per component."""
        slash = path.rfind("/")
        name = path[slash + 1:]
        if slash <= 0 or name in ("", ".", "..") or len(path) >= PATH_MAX:
            return self._walk(path, start, root, creds, follow, 0)
        if self._dir_cache_generation != dir_generation[0]:
            self._dir_cache.clear()
            self._dir_cache_generation = dir_generation[0]
        dir_path = path[:slash]
        if path[:1] == "/":
            key = (dir_path, None, None, root.mount, root.dentry, searcher)
        else:
            key = (dir_path, start.mount, start.dentry, root.mount, root.dentry, searcher)
        where = self._dir_cache.get(key)
        dir_cacheable = True            # only cacheable walks are in the cache
        if where is None:
            lk, dir_cacheable = self._walk(dir_path, start, root, creds, True, 0)
            if lk.path is None:     # DIR does not exist: the full walk says how
                return self._walk(path, start, root, creds, follow, 0)
            where = lk.path
            if dir_cacheable and where.inode.is_dir():
                if len(self._dir_cache) >= WALK_CACHE_MAX:
                    self._dir_cache.clear()
                self._dir_cache[key] = where
        lk, cacheable = self._walk(name, where, root, creds, follow, 0)
        return lk, cacheable and dir_cacheable

    def _walk(self, path: str, start: Path, root: Path, creds, follow: bool,
              resolve: int) -> "tuple[Lookup, bool]":
        """The walk itself; also says whether its result may be cached."""
        if path == "":
            raise OSError(errno.ENOENT, "empty path")
        if len(path) >= PATH_MAX:
            raise OSError(errno.ENAMETOOLONG, "path too long")
        if resolve & RESOLVE_IN_ROOT:
            root = start
        elif resolve & RESOLVE_BENEATH:
            if path.startswith("/"):
                raise OSError(errno.EXDEV, "absolute path beneath a directory")
            root = start
        trailing = path.endswith("/")
        follow = follow or trailing
        cur = root if path.startswith("/") else start
        todo = _components(path)
        todo.reverse()                  # a stack: pop() gives the next component
        links = 0
        stable = not cur.mount.fs.volatile     # cacheable so far
        searcher = creds is not None and creds.fsuid != 0   # root searches everything
        known_dir = False       # cur was just checked to be a directory
        while todo:
            comp = todo.pop()
            if comp == "..":
                cur = self.up(cur, root, resolve)
                known_dir = False
                if not todo:
                    return Lookup(cur, "", cur, trailing), stable and not cur.mount.fs.volatile
                continue
            dir_inode = cur.inode
            if stable and cur.mount.fs.volatile:
                stable = False
            if searcher:
                attr = dir_inode.getattr()
                if not st.S_ISDIR(attr.mode):
                    raise OSError(errno.ENOTDIR, "not a directory")
                perm.permission(attr, creds, perm.MAY_EXEC)
            elif not known_dir and not st.S_ISDIR(dir_inode.mode):
                raise OSError(errno.ENOTDIR, "not a directory")
            known_dir = False
            if len(comp) > _SHORT_NAME and len(comp.encode("utf-8", "surrogateescape")) > NAME_MAX:
                raise OSError(errno.ENAMETOOLONG, "name too long")
            last = not todo
            try:
                inode = dir_inode.lookup(comp)
            except FileNotFoundError:
                inode = self.mounts.glue(cur, comp)
                if inode is None:
                    if last:
                        return Lookup(cur, comp, None, trailing), stable
                    self.last_stable = stable   # this ENOENT may be remembered too
                    raise
            child = self._down_mounts(cur.child(comp, inode), resolve)
            mode = child.inode.mode
            if st.S_ISLNK(mode) and (follow or not last):
                links += 1
                if links > MAXSYMLINKS or resolve & RESOLVE_NO_SYMLINKS:
                    raise OSError(errno.ELOOP, "too many levels of symbolic links")
                magic = getattr(child.inode, "magic_target", None)
                if magic is not None:
                    stable = False          # /proc/PID/...: whose, depends on the caller
                    if resolve & RESOLVE_NO_MAGICLINKS:
                        raise OSError(errno.ELOOP, "magic link")
                    target = magic()
                    if target is None:          # an object with no path (pipe...)
                        if not last:
                            raise OSError(errno.ENOTDIR, "not a directory")
                        return Lookup(cur, comp, child, trailing), stable and not child.mount.fs.volatile
                    cur = target
                    if not todo:
                        return Lookup(cur, "", cur, trailing), stable and not cur.mount.fs.volatile
                    continue
                text = child.inode.readlink()
                if text.startswith("/"):
                    if resolve & RESOLVE_BENEATH:
                        raise OSError(errno.EXDEV, "absolute symlink beneath a directory")
                    cur = root
                if text.endswith("/") and last:
                    trailing = True
                comps = _components(text)
                if not comps:                   # "/" or "." : the directory itself
                    if not todo:
                        return Lookup(cur, "", cur, trailing), stable and not cur.mount.fs.volatile
                    continue
                todo.extend(reversed(comps))
                continue
            if last:
                if trailing and not st.S_ISDIR(mode) and not st.S_ISLNK(mode):
                    raise OSError(errno.ENOTDIR, "not a directory")
                return Lookup(cur, comp, child, trailing), stable and not child.mount.fs.volatile
            if not st.S_ISDIR(mode):
                raise OSError(errno.ENOTDIR, "not a directory")
            cur = child
            known_dir = True
        return Lookup(cur, "", cur, trailing), stable and not cur.mount.fs.volatile


def path_string(p: Path, root: Path) -> Optional[str]:
    """The guest path of `p` as seen from `root` (getcwd, /proc/PID/cwd);
    None when `p` is not below `root`."""
    names: List[str] = []
    guard = 0
    while not p.same(root):
        guard += 1
        if guard > PATH_MAX:
            return None
        if _is_mount_root(p):
            m = p.mount
            if m.parent is None:
                return None             # reached the namespace root without meeting root
            p = Path(m.parent, m.mountpoint)
            continue
        d = p.dentry
        if d.parent is None:
            return None
        names.append(d.name)
        p = Path(p.mount, d.parent)
    return "/" + "/".join(reversed(names))
