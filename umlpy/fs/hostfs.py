"""hostfs: a host directory as a guest file system.

Every host operation stays below the directory: objects are opened with
openat2(RESOLVE_BENEATH | RESOLVE_NO_SYMLINKS), and names are changed with
*at calls on a directory opened that way. Symlinks are never followed on the
host; they are the VFS's to interpret inside the guest's namespace.

Ownership and modes the guest sets live beside the file, never in the host's
own owner: an extended attribute `user.umlpy.stat` = "uid:gid:mode[:rdev]"
(mode in octal with its type bits, as containers' rootless storage does), so
they follow the inode through renames and hard links and persist with the
directory. Device nodes and whiteouts are empty regular files carrying their
type there. Symlinks, FIFOs and sockets cannot carry user xattrs: theirs go to
a log file at the top of the directory (hostfs_meta.py), hidden from the guest.
The host's own procfs, sysfs and kin are never entered.
"""
from __future__ import annotations

import contextlib
import errno
import itertools
import os
import stat as st
import struct
from typing import Dict, Iterable, Iterator, Optional, Tuple

from umlpy.fs import hostcalls
from umlpy.fs.hostcalls import openat2
from umlpy.fs.hostfs_meta import MetaLog, is_private_name
from umlpy.vfs.inode import (RENAME_EXCHANGE, STAT_CHECK_CTIME, STAT_LIVE_DATA, Attr, FileSystem,
                             Inode, OpenRecipe, StatFs, StatView, dtype_of)

META = "user.umlpy.stat"
GUEST_XATTR_PREFIX = "user.umlpy.x."     # where a guest's trusted.*/security.* go
O_PATH = os.O_PATH
_IS_ROOT = os.geteuid() == 0
# File systems of the host kernel's own state: never part of a guest tree.
HIDDEN_MAGICS = {0x9FA0: "proc", 0x62656572: "sysfs", 0x64626720: "debugfs",
                 0x74726163: "tracefs", 0x73636673: "securityfs", 0xCAFE4A11: "bpf",
                 0x1CD1: "devpts", 0x27E0EB: "cgroup", 0x63677270: "cgroup2",
                 0x42494E4D: "binfmt_misc", 0x6E736673: "nsfs"}
_STATFS = struct.Struct("<7q2i3q")


def _host_mode(mode: int) -> int:
    """The mode given to the host object: the guest's, plus what the host user
    needs to go on serving it (irrelevant when umlpy runs as host root)."""
    perm = st.S_IMODE(mode)
    if _IS_ROOT:
        return perm
    return perm | (0o700 if st.S_ISDIR(mode) else 0o600)


def fstatfs(fd: int) -> StatFs:
    f = _STATFS.unpack_from(hostcalls.fstatfs(fd))
    return StatFs(f_type=f[0], f_bsize=f[1], f_blocks=f[2], f_bfree=f[3], f_bavail=f[4],
                  f_files=f[5], f_ffree=f[6], f_namelen=f[9], f_frsize=f[10], f_flags=f[11])


class HostFs(FileSystem):
    type_name = "hostfs"
    volatile = True

    def __init__(self, host_dir: str, readonly: bool = False, cache: bool = False) -> None:
        """cache: remember lookups and attributes (a dentry and inode cache).
        Only for a tree nobody changes while mounted, such as an overlay's
        read-only lower layer (overlayfs makes the same assumption)."""
        super().__init__()
        self.cache = cache and readonly
        if self.cache:
            self.volatile = False
        self.host_dir = os.path.realpath(host_dir)
        self.readonly = readonly
        self.root_fd = os.open(self.host_dir, O_PATH | os.O_DIRECTORY | os.O_CLOEXEC)
        self.magic = fstatfs(self.root_fd).f_type
        self.xattrs_ok = True
        self.meta_log = MetaLog(self.root_fd, writable=not readonly)
        self.root = HostInode(self, "", os.fstat(self.root_fd))

    def close(self) -> None:
        self.meta_log.close()
        if self.root_fd >= 0:
            os.close(self.root_fd)
            self.root_fd = -1

    def statfs(self) -> StatFs:
        s = fstatfs(self.root_fd)
        if self.readonly:
            s.f_flags |= 1      # ST_RDONLY
        return s

    def sync(self) -> None:
        self.meta_log.sync()
        fd = os.open(self.host_dir, os.O_RDONLY | os.O_CLOEXEC)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)

    def mount_options(self) -> str:
        return self.host_dir

    def abspath(self, rel: str) -> str:
        return f"{self.host_dir}/{rel}" if rel else self.host_dir

    def guest_rel(self, host_path: str) -> Optional[str]:
        """The relative path of a host path inside this tree, or None."""
        base = self.host_dir.rstrip("/")
        if host_path == self.host_dir:
            return ""
        if host_path.startswith(base + "/"):
            return host_path[len(base) + 1:]
        return None

    # ---- the ownership side store ----
    def _in_xattr(self, s: os.stat_result) -> bool:
        """Linux allows user.* xattrs on regular files and directories only:
        overrides of symlinks, FIFOs and sockets go to the log."""
        return self.xattrs_ok and (st.S_ISREG(s.st_mode) or st.S_ISDIR(s.st_mode))

    def _log_get(self, s: os.stat_result) -> Optional[Tuple[int, int, int, int]]:
        return self.meta_log.get(s.st_ino, st.S_IFMT(s.st_mode))

    def read_meta(self, rel: str, s: os.stat_result) -> Optional[Tuple[int, int, int, int]]:
        if not self._in_xattr(s):
            return self._log_get(s)
        try:
            raw = os.getxattr(self.abspath(rel), META, follow_symlinks=False)
        except OSError as e:
            if e.errno in (errno.EOPNOTSUPP, errno.ENOTSUP):
                self.xattrs_ok = False
                return self._log_get(s)
            return None
        try:
            parts = raw.decode().split(":")
            uid, gid, mode = int(parts[0]), int(parts[1]), int(parts[2], 8)
            rdev = int(parts[3]) if len(parts) > 3 else 0
        except (ValueError, IndexError):
            return None                 # not ours to interpret: show the host's
        return uid, gid, mode, rdev

    def write_meta(self, rel: str, s: os.stat_result, meta: Optional[tuple]) -> None:
        """Store (uid, gid, mode, rdev), or drop the override when meta is None."""
        if not self._in_xattr(s):
            self.meta_log.set(s.st_ino, st.S_IFMT(s.st_mode), meta)
            return
        path = self.abspath(rel)
        try:
            if meta is None:
                try:
                    os.removexattr(path, META, follow_symlinks=False)
                except OSError as e:
                    if e.errno != errno.ENODATA:
                        raise
                return
            uid, gid, mode, rdev = meta
            text = f"{uid}:{gid}:{mode:o}" + (f":{rdev}" if rdev else "")
            os.setxattr(path, META, text.encode(), follow_symlinks=False)
        except OSError as e:
            if e.errno not in (errno.EOPNOTSUPP, errno.ENOTSUP):
                raise
            self.xattrs_ok = False
            self.write_meta(rel, s, meta)


_UNKNOWN = object()

# While a caller looks names up and reads their attributes straight after
# (a listing's stats published ahead: statcache), the stat each lookup took
# serves that first getattr: no second walk to the host file, nor a second
# read of its stored owner. A scope's number, so nothing kept past it uses it.
_fresh_scopes = itertools.count(1)
_fresh_scope = 0
_scope_dirfds: Dict[int, Tuple["HostInode", int]] = {}     # directories looked in, held


@contextlib.contextmanager
def fresh_lookups() -> Iterator[None]:
    """Within it, an inode looked up here gives the attributes its lookup
    read to its first getattr (the host may change them at any time: the
    lookup's moment is as good as the getattr's)."""
    global _fresh_scope, _scope_dirfds
    outer = _fresh_scope, _scope_dirfds
    _fresh_scope, _scope_dirfds = next(_fresh_scopes), {}
    try:
        yield
    finally:
        for _inode, fd in _scope_dirfds.values():
            os.close(fd)
        _fresh_scope, _scope_dirfds = outer


def _join(rel: str, name: str) -> str:
    return f"{rel}/{name}" if rel else name


class HostInode(Inode):
    __slots__ = ("fs", "rel", "ino", "hdev", "_mode", "_attr", "_kids", "sealed", "_fresh")

    def __init__(self, fs: HostFs, rel: str, s: os.stat_result,
                 meta: Optional[tuple] = None) -> None:
        self.fs = fs
        self.rel = rel
        self.ino = s.st_ino
        self.hdev = s.st_dev
        self._mode = meta[2] if meta else s.st_mode
        self._attr: Optional[Attr] = None
        self._kids: Optional[Dict[str, "HostInode"]] = None
        self.sealed = False     # the root of a host kernel fs: shown as an empty directory
        self._fresh = (_fresh_scope, s, meta) if _fresh_scope else None

    @property
    def key(self) -> Tuple[int, int]:
        return (self.hdev, self.ino)

    @property
    def mode(self) -> int:
        return self._mode

    # ---- host handles ----
    def _dirfd(self) -> int:
        return openat2(self.fs.root_fd, self.rel or ".", O_PATH | os.O_DIRECTORY | os.O_CLOEXEC)

    def _parent(self) -> Tuple[int, str]:
        """(an O_PATH descriptor of the parent directory, own name)."""
        parent, _, name = self.rel.rpartition("/")
        return openat2(self.fs.root_fd, parent or ".", O_PATH | os.O_DIRECTORY | os.O_CLOEXEC), name

    def _lstat(self) -> os.stat_result:
        if not self.rel:
            return os.fstat(self.fs.root_fd)
        pfd, name = self._parent()
        try:
            return os.stat(name, dir_fd=pfd, follow_symlinks=False)
        finally:
            os.close(pfd)

    def _child(self, name: str, s: os.stat_result) -> "HostInode":
        rel = _join(self.rel, name)
        return HostInode(self.fs, rel, s, self.fs.read_meta(rel, s))

    def _rw(self, name: Optional[str] = None) -> None:
        self.fs.check_writable()
        if name is not None and not self.rel and is_private_name(name):
            raise OSError(errno.EPERM, "the kernel's own ownership store")

    # ---- attributes ----
    def getattr(self) -> Attr:
        if self._attr is not None:
            return self._attr.copy()
        fresh, self._fresh = self._fresh, None      # the lookup's stat serves once
        if fresh is not None and fresh[0] == _fresh_scope:
            _scope, s, meta = fresh
        else:
            s = self._lstat()
            meta = self.fs.read_meta(self.rel, s)
        uid, gid, mode, rdev = meta if meta else (s.st_uid, s.st_gid, s.st_mode, s.st_rdev)
        self._mode = mode
        a = Attr(mode=mode, ino=s.st_ino, nlink=s.st_nlink, uid=uid, gid=gid, rdev=rdev,
                 size=s.st_size, blksize=s.st_blksize, blocks=s.st_blocks,
                 atime_ns=s.st_atime_ns, mtime_ns=s.st_mtime_ns, ctime_ns=s.st_ctime_ns,
                 dev=s.st_dev)
        if self.fs.cache:
            self._attr = a.copy()
        return a

    def _store(self, s: os.stat_result, uid: int, gid: int, mode: int, rdev: int,
               touch: bool = False) -> None:
        """Make the guest see (uid, gid, mode, rdev) on this object; touch: move
        its ctime even when nothing changes (a chmod or chown, as in Linux)."""
        if not st.S_ISLNK(s.st_mode):
            want = _host_mode(mode)
            if touch or st.S_IMODE(s.st_mode) != want:
                os.chmod(self.fs.abspath(self.rel), want, follow_symlinks=False)
        same = (uid, gid, mode, rdev) == (s.st_uid, s.st_gid, s.st_mode, s.st_rdev)
        self.fs.write_meta(self.rel, s, None if same else (uid, gid, mode, rdev))
        self._mode = mode

    def setattr(self, *, mode=None, uid=None, gid=None, size=None, atime_ns=None,
                mtime_ns=None) -> None:
        self._rw()
        if size is not None:
            fd = openat2(self.fs.root_fd, self.rel, os.O_WRONLY | os.O_CLOEXEC | os.O_NOFOLLOW)
            try:
                os.ftruncate(fd, size)
            finally:
                os.close(fd)
        if mode is not None or uid is not None or gid is not None:    # chown(-1, -1) too
            a = self.getattr()
            s = self._lstat()
            new_mode = st.S_IFMT(a.mode) | (mode if mode is not None else st.S_IMODE(a.mode))
            self._store(s, uid if uid not in (None, -1) else a.uid,
                        gid if gid not in (None, -1) else a.gid, new_mode, a.rdev, touch=True)
        if atime_ns is not None or mtime_ns is not None:
            s = self._lstat()
            times = (s.st_atime_ns if atime_ns is None else atime_ns,
                     s.st_mtime_ns if mtime_ns is None else mtime_ns)
            os.utime(self.fs.abspath(self.rel), ns=times, follow_symlinks=False)

    # ---- directories ----
    def lookup(self, name: str) -> "HostInode":
        kids = self._kids
        if kids is not None:
            hit = kids.get(name, _UNKNOWN)
            if hit is None:
                raise OSError(errno.ENOENT, "no such file or directory")
            if hit is not _UNKNOWN:
                return hit
        if not self.fs.cache:
            return self._lookup(name)
        if kids is None:
            kids = self._kids = {}
        try:
            child = self._lookup(name)
        except FileNotFoundError:
            kids[name] = None           # negative entries too: imports probe a lot
            raise
        kids[name] = child
        return child

    def _lookup(self, name: str) -> "HostInode":
        if self.sealed or not self.rel and is_private_name(name):
            raise OSError(errno.ENOENT, "no such file or directory")
        held = _scope_dirfds.get(id(self)) if _fresh_scope else None
        dfd = held[1] if held is not None else self._dirfd()
        sealed = False
        try:
            s = os.stat(name, dir_fd=dfd, follow_symlinks=False)
            if st.S_ISDIR(s.st_mode) and s.st_dev != self.hdev:
                fd = os.open(name, O_PATH | os.O_NOFOLLOW | os.O_CLOEXEC, dir_fd=dfd)
                try:
                    sealed = fstatfs(fd).f_type in HIDDEN_MAGICS
                finally:
                    os.close(fd)
        finally:
            if held is None:
                if _fresh_scope:
                    _scope_dirfds[id(self)] = (self, dfd)   # the listing's next names
                else:
                    os.close(dfd)
        child = self._child(name, s)
        child.sealed = sealed
        return child

    def readdir(self) -> Iterable[Tuple[str, int, int]]:
        if self.sealed:
            return []
        fd = openat2(self.fs.root_fd, self.rel or ".", os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
        out = []
        try:
            with os.scandir(fd) as it:
                for e in it:
                    dt = _dirent_type(e)
                    if not self.rel and is_private_name(e.name):
                        continue
                    # a regular file may carry another type
                    if dt == 8 and (self.fs.xattrs_ok or self.fs.meta_log.entries):
                        try:
                            s = e.stat(follow_symlinks=False)
                            meta = self.fs.read_meta(_join(self.rel, e.name), s)
                            if meta:
                                dt = dtype_of(meta[2])
                        except OSError:
                            continue
                    out.append((e.name, e.inode(), dt))
        finally:
            os.close(fd)
        return out

    def _made(self, dfd: int, name: str, uid: int, gid: int, mode: int, rdev: int = 0):
        s = os.stat(name, dir_fd=dfd, follow_symlinks=False)
        child = HostInode(self.fs, _join(self.rel, name), s)
        child._store(s, uid, gid, mode, rdev)
        return child

    def create(self, name: str, mode: int, uid: int, gid: int) -> "HostInode":
        self._rw(name)
        dfd = self._dirfd()
        try:
            os.close(os.open(name, os.O_CREAT | os.O_EXCL | os.O_WRONLY | os.O_CLOEXEC
                             | os.O_NOFOLLOW, _host_mode(st.S_IFREG | mode), dir_fd=dfd))
            return self._made(dfd, name, uid, gid, st.S_IFREG | st.S_IMODE(mode))
        finally:
            os.close(dfd)

    def mkdir(self, name: str, mode: int, uid: int, gid: int) -> "HostInode":
        self._rw(name)
        dfd = self._dirfd()
        try:
            os.mkdir(name, _host_mode(st.S_IFDIR | mode), dir_fd=dfd)
            return self._made(dfd, name, uid, gid, st.S_IFDIR | st.S_IMODE(mode))
        finally:
            os.close(dfd)

    def mknod(self, name: str, mode: int, rdev: int, uid: int, gid: int) -> "HostInode":
        self._rw(name)
        kind = st.S_IFMT(mode) or st.S_IFREG
        if kind == st.S_IFREG:
            return self.create(name, mode, uid, gid)
        dfd = self._dirfd()
        try:
            if kind == st.S_IFIFO:
                os.mkfifo(name, _host_mode(mode), dir_fd=dfd)
                return self._made(dfd, name, uid, gid, mode)
            # a device, socket or whiteout: an empty file that carries its type
            os.close(os.open(name, os.O_CREAT | os.O_EXCL | os.O_WRONLY | os.O_CLOEXEC,
                             _host_mode(st.S_IFREG), dir_fd=dfd))
            try:
                child = self._made(dfd, name, uid, gid, mode, rdev if kind != st.S_IFSOCK else 0)
            except OSError:
                os.unlink(name, dir_fd=dfd)
                raise
            return child
        finally:
            os.close(dfd)

    def symlink(self, name: str, target: str, uid: int, gid: int) -> "HostInode":
        self._rw(name)
        dfd = self._dirfd()
        try:
            os.symlink(target, name, dir_fd=dfd)
            return self._made(dfd, name, uid, gid, st.S_IFLNK | 0o777)
        finally:
            os.close(dfd)

    def link(self, name: str, inode: Inode) -> None:
        self._rw(name)
        if not isinstance(inode, HostInode) or inode.fs is not self.fs:
            raise OSError(errno.EXDEV, "cross-device link")
        spfd, sname = inode._parent()
        dfd = self._dirfd()
        try:
            os.link(sname, name, src_dir_fd=spfd, dst_dir_fd=dfd, follow_symlinks=False)
        finally:
            os.close(dfd)
            os.close(spfd)

    def unlink(self, name: str) -> None:
        self._rw(name)
        dfd = self._dirfd()
        try:
            s = os.stat(name, dir_fd=dfd, follow_symlinks=False)
            if st.S_ISDIR(s.st_mode):
                raise OSError(errno.EISDIR, "is a directory")
            os.unlink(name, dir_fd=dfd)
            if s.st_nlink <= 1:
                self.fs.meta_log.set(s.st_ino, st.S_IFMT(s.st_mode), None)
        finally:
            os.close(dfd)

    def rmdir(self, name: str) -> None:
        self._rw(name)
        dfd = self._dirfd()
        try:
            os.rmdir(name, dir_fd=dfd)
        finally:
            os.close(dfd)

    def rename(self, name: str, newdir: Inode, newname: str, flags: int = 0) -> None:
        self._rw(name)
        if not isinstance(newdir, HostInode) or newdir.fs is not self.fs:
            raise OSError(errno.EXDEV, "cross-device rename")
        newdir._rw(newname)
        dfd = self._dirfd()
        ndfd = newdir._dirfd()
        try:
            try:
                replaced = os.stat(newname, dir_fd=ndfd, follow_symlinks=False)
            except FileNotFoundError:
                replaced = None
            hostcalls.renameat2(dfd, name, ndfd, newname, flags)
            if replaced is not None and replaced.st_nlink <= 1 and not flags & RENAME_EXCHANGE:
                self.fs.meta_log.set(replaced.st_ino, st.S_IFMT(replaced.st_mode), None)
        finally:
            os.close(dfd)
            os.close(ndfd)

    def moved(self, parent: Inode, name: str) -> None:
        """The VFS renamed this object (or a directory above it): follow."""
        if isinstance(parent, HostInode) and parent.fs is self.fs:
            self.rel = _join(parent.rel, name)

    # ---- symlinks and data ----
    def readlink(self) -> str:
        if not st.S_ISLNK(self._mode):
            raise OSError(errno.EINVAL, "not a symlink")
        pfd, name = self._parent()
        try:
            return os.readlink(name, dir_fd=pfd)
        finally:
            os.close(pfd)

    def open(self, flags: int) -> int:
        if self.sealed:
            raise OSError(errno.EACCES, "a host kernel file system")
        if flags & os.O_ACCMODE != os.O_RDONLY or flags & os.O_TRUNC:
            self._rw()
        kind = st.S_IFMT(self._mode)
        if kind not in (st.S_IFREG, st.S_IFIFO):
            raise OSError(errno.ENXIO, "no such device")
        flags &= ~(os.O_CREAT | os.O_EXCL | os.O_TRUNC | os.O_DIRECTORY)
        return openat2(self.fs.root_fd, self.rel,
                       flags | os.O_CLOEXEC | os.O_NOFOLLOW | os.O_NOCTTY)

    def host_key(self) -> Optional[Tuple[int, int]]:
        return (self.hdev, self.ino)

    def open_recipe(self) -> Optional[OpenRecipe]:
        # as open() does it, for a file the guest may open natively
        if self.sealed or not st.S_ISREG(self._mode):
            return None
        return self.fs.root_fd, self.rel, hostcalls.RESOLVE_CONFINED, os.O_NOFOLLOW

    def stat_view(self) -> Optional[StatView]:
        # cached, the attributes are given as they were first read, for ever;
        # else they are the host file's (with the stored owner) while its
        # ctime stands, with size and times read live
        return (0 if self.fs.cache else STAT_CHECK_CTIME | STAT_LIVE_DATA), None, -1

    def fifo_path(self) -> str:
        return self.fs.abspath(self.rel)

    # ---- extended attributes: the guest's user.* are the host's; others go aside ----
    def _xname(self, name: str) -> str:
        if name.startswith("user."):
            if name.startswith("user.umlpy."):
                raise OSError(errno.EPERM, "reserved")
            return name
        if name.startswith(("trusted.", "security.")):
            return GUEST_XATTR_PREFIX + name
        raise OSError(errno.EOPNOTSUPP, "unsupported namespace")

    def getxattr(self, name: str) -> bytes:
        return os.getxattr(self.fs.abspath(self.rel), self._xname(name), follow_symlinks=False)

    def setxattr(self, name: str, value: bytes, flags: int) -> None:
        self._rw()
        os.setxattr(self.fs.abspath(self.rel), self._xname(name), value, flags,
                    follow_symlinks=False)

    def listxattr(self) -> Iterable[str]:
        try:
            names = os.listxattr(self.fs.abspath(self.rel), follow_symlinks=False)
        except OSError as e:
            if e.errno in (errno.EOPNOTSUPP, errno.ENOTSUP):
                return []
            raise
        out = []
        for n in names:
            if n.startswith(GUEST_XATTR_PREFIX):
                out.append(n[len(GUEST_XATTR_PREFIX):])
            elif not n.startswith("user.umlpy."):
                out.append(n)
        return out

    def removexattr(self, name: str) -> None:
        self._rw()
        os.removexattr(self.fs.abspath(self.rel), self._xname(name), follow_symlinks=False)


def _dirent_type(e: os.DirEntry) -> int:
    try:
        if e.is_symlink():
            return 10
        if e.is_dir(follow_symlinks=False):
            return 4
        if e.is_file(follow_symlinks=False):
            return 8
        return dtype_of(e.stat(follow_symlinks=False).st_mode)
    except OSError:
        return 0
