"""tmpfs inodes other than directories: regular files (their data in a
memfd), symbolic links, and FIFO, device and socket nodes; and what every
tmpfs inode keeps. The file system and its directories are in tmpfs.py."""
from __future__ import annotations

import errno
import os
import stat as st
import weakref
from typing import TYPE_CHECKING, Dict, Optional, Tuple

from umlpy.fs import hostcalls, tmpfs_backing
from umlpy.fs.xattrs import XattrStore
from umlpy.vfs.inode import (STAT_LIVE_DATA, STAT_SETATTR, STAT_TMPFS_CTIME, Attr, Inode, OpenRecipe,
                             StatView, now_ns)

if TYPE_CHECKING:
    from umlpy.fs.tmpfs import TmpFs

PAGE_SIZE = 4096
# flags a reopen of the memfd keeps: access mode and status flags
_OPEN_KEEP = (os.O_ACCMODE | os.O_APPEND | os.O_NONBLOCK | os.O_DIRECT | os.O_SYNC
              | os.O_DSYNC | os.O_NOATIME | os.O_LARGEFILE)


def _err(code: int, what: str = "") -> OSError:
    return OSError(code, what or os.strerror(code))


# every file with a memfd, by the memfd's host identity: where a change the
# accelerator made (fchmod, fchown) finds its inode. Plain references, each
# file taking its own out (__del__): a WeakValueDictionary costs twice as
# much at every adopted create.
_by_host_key: "Dict[Tuple[int, int], weakref.ref[TmpFile]]" = {}


def adopt_attr_change(key: Tuple[int, int], mode: int, uid: int, gid: int, ctime_ns: int,
                      host_ctime_ns: int) -> bool:
    """What the accelerator's fchmod or fchown gave the file whose memfd is
    `key` (csrc/fastattr.c); False when that file is gone."""
    ref = _by_host_key.get(key)
    f = ref() if ref is not None else None
    if f is None:
        return False
    f.adopt_attrs(mode, uid, gid, ctime_ns, host_ctime_ns)
    return True


def _close_quietly(fd: int) -> None:
    try:
        os.close(fd)
    except OSError:
        pass


def _unlink_quietly(path: str) -> None:
    try:
        os.unlink(path)
    except OSError:
        pass


class TmpInode(XattrStore, Inode):
    """What every tmpfs inode keeps in Python."""

    def __init__(self, fs: TmpFs, mode: int, uid: int, gid: int, rdev: int = 0,
                 ino: Optional[int] = None) -> None:
        self.fs = fs
        self.ino = fs._new_ino(ino)
        self._mode = mode
        self.uid, self.gid, self.rdev = uid, gid, rdev
        self.nlink = 1
        t = now_ns()
        self.atime = self.mtime = self.ctime = self.btime = t
        self.xattrs: Dict[str, bytes] = {}

    @property
    def mode(self) -> int:          # cheap: the walk asks this at every step
        return self._mode

    def _rw(self) -> None:
        if self.fs.readonly:
            raise _err(errno.EROFS)

    def _size(self) -> int:
        return 0

    def stat_view(self) -> Optional[StatView]:
        # a directory's or symlink's attributes change only through the kernel
        return (0, None, -1) if st.S_ISDIR(self._mode) or st.S_ISLNK(self._mode) else None

    def getattr(self) -> Attr:
        return self._attr(self._size(), 0)

    def _attr(self, size: int, blocks: int) -> Attr:
        return Attr(mode=self._mode, ino=self.ino, nlink=self.nlink, uid=self.uid,
                    gid=self.gid, rdev=self.rdev, size=size, blksize=PAGE_SIZE,
                    blocks=blocks, atime_ns=self.atime, mtime_ns=self.mtime,
                    ctime_ns=self.ctime, btime_ns=self.btime, dev=self.fs.dev)

    def setattr(self, *, mode: Optional[int] = None, uid: Optional[int] = None,
                gid: Optional[int] = None, size: Optional[int] = None,
                atime_ns: Optional[int] = None, mtime_ns: Optional[int] = None) -> None:
        self._rw()
        if size is not None:
            self._truncate(size)
        if mode is not None:
            self._mode = st.S_IFMT(self._mode) | (mode & 0o7777)
        if uid is not None and uid != -1:
            self.uid = uid
        if gid is not None and gid != -1:
            self.gid = gid
        if atime_ns is not None or mtime_ns is not None:
            self._set_times(atime_ns, mtime_ns)
        self.touch_ctime()

    def _truncate(self, size: int) -> None:
        raise _err(errno.EISDIR if st.S_ISDIR(self._mode) else errno.EINVAL)

    # directory operations on a non-directory (TmpDir overrides them all)
    def mknod(self, name: str, mode: int, rdev: int, uid: int, gid: int) -> Inode:
        raise _err(errno.ENOTDIR)

    def symlink(self, name: str, target: str, uid: int, gid: int) -> Inode:
        raise _err(errno.ENOTDIR)

    def link(self, name: str, inode: Inode) -> None:
        raise _err(errno.ENOTDIR)

    def rename(self, name: str, newdir: Inode, newname: str, flags: int = 0) -> None:
        raise _err(errno.ENOTDIR)

    def _set_times(self, atime_ns: Optional[int], mtime_ns: Optional[int]) -> None:
        if atime_ns is not None:
            self.atime = atime_ns
        if mtime_ns is not None:
            self.mtime = mtime_ns

    def touch_ctime(self, t: Optional[int] = None) -> None:
        self.ctime = now_ns() if t is None else t

    def _drop_link(self) -> None:
        """One name fewer; at zero the inode is free for nr_inodes (its
        memfd or fifo go when the last Python reference does)."""
        self.nlink -= 1
        if self.nlink == 0:
            self.fs._free_ino()
            if isinstance(self, TmpFile):
                self.fs._orphaned(self)

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self.ino} {oct(self._mode)}>"


class TmpFile(TmpInode):
    """A regular file: data in a memfd made on first need."""

    def __init__(self, fs: TmpFs, mode: int, uid: int, gid: int,
                 ino: Optional[int] = None) -> None:
        super().__init__(fs, st.S_IFREG | (mode & 0o7777), uid, gid, ino=ino)
        self._fd = -1
        self._key = (0, 0)          # the memfd's host identity, once it exists
        self.linkable = False       # an O_TMPFILE file not yet linked
        self._ctime_seen = 0        # host ctime after our own last change of the memfd

    def memfd(self) -> int:
        """The page cache (created now if this file never had data)."""
        if self._fd < 0:
            if self.fs.backing is not None:
                fd = tmpfs_backing.new_file(self.fs.backing)
            else:
                fd = os.memfd_create(f"tmpfs:{self.ino}", os.MFD_CLOEXEC)
            os.utime(fd, ns=(self.atime, self.mtime))
            s = os.fstat(fd)
            self.hold_memfd(fd, (s.st_dev, s.st_ino), s.st_ctime_ns)
        return self._fd

    def hold_memfd(self, fd: int, key: Tuple[int, int], host_ctime_ns: int) -> None:
        """Keep fd, host object `key` whose ctime is host_ctime_ns, as this
        file's page cache (closed with the inode)."""
        self._fd = fd                   # closed by __del__
        self._ctime_seen = host_ctime_ns
        self._key = key
        self.fs._files[self.ino] = self
        _by_host_key[key] = weakref.ref(self)

    def __del__(self) -> None:
        # not weakref.finalize: that costs a microsecond at every create
        # (tar x adopts thousands), this one nothing until the file goes
        fd = getattr(self, "_fd", -1)   # (an __init__ that raised)
        if fd >= 0:
            try:
                ref = _by_host_key.get(self._key)
                if ref is not None and (ref() is None or ref() is self):    # (None: a cycle's)
                    del _by_host_key[self._key]
                os.close(fd)
            except (OSError, TypeError, AttributeError):    # the last two: at interpreter exit
                pass

    def allocated(self) -> int:
        return os.fstat(self._fd).st_blocks * 512 if self._fd >= 0 else 0

    def _sync_from_host(self) -> Optional[os.stat_result]:
        if self._fd < 0:
            return None
        s = os.fstat(self._fd)
        self.atime, self.mtime = s.st_atime_ns, s.st_mtime_ns
        if s.st_ctime_ns != self._ctime_seen:       # a native write or truncate
            self._ctime_seen = self.ctime = s.st_ctime_ns
        return s

    def _size(self) -> int:
        return os.fstat(self._fd).st_size if self._fd >= 0 else 0

    def getattr(self) -> Attr:
        s = self._sync_from_host()          # one fstat: size, blocks and times
        return self._attr(s.st_size, s.st_blocks) if s is not None else self._attr(0, 0)

    def view_attr(self) -> Attr:
        # with a memfd, the view reads size, blocks and times from it (stat_view)
        return self._attr(0, 0) if self._fd >= 0 else self.getattr()

    def size_if_last_name(self) -> Optional[int]:
        return self._size() if self.nlink <= 1 else None

    def _truncate(self, size: int) -> None:
        if size < 0:
            raise _err(errno.EINVAL)
        old = self._size()
        if size > old and self.fs.size and self.fs.backing is None:
            # (with a host backing, growing is sparse and free, as in Linux)
            # the room this file may grow into: the limit minus everyone else's blocks
            others = self.fs.bytes_used() - self.allocated()
            if size > self.fs.size - others:
                raise _err(errno.EFBIG if size > self.fs.size else errno.ENOSPC)
        if size == 0 and self._fd < 0:
            self.mtime = now_ns()
            return
        fd = self.memfd()
        os.ftruncate(fd, size)          # the host updates mtime and ctime, as Linux does
        self._sync_from_host()

    def _set_times(self, atime_ns: Optional[int], mtime_ns: Optional[int]) -> None:
        if self._fd < 0:
            super()._set_times(atime_ns, mtime_ns)
            return
        s = os.fstat(self._fd)
        os.utime(self._fd, ns=(s.st_atime_ns if atime_ns is None else atime_ns,
                               s.st_mtime_ns if mtime_ns is None else mtime_ns))
        self._sync_from_host()

    def touch_ctime(self, t: Optional[int] = None) -> None:
        self._sync_from_host()          # adopt native changes before overriding ctime
        super().touch_ctime(t)

    def open(self, flags: int) -> int:
        if flags & os.O_ACCMODE != os.O_RDONLY or flags & os.O_TRUNC:
            self._rw()
        fd = self.memfd()
        return hostcalls.reopen(fd, (flags & _OPEN_KEEP) | os.O_CLOEXEC)

    def host_key(self) -> Optional[Tuple[int, int]]:
        self.memfd()
        return self._key

    def open_recipe(self) -> Optional[OpenRecipe]:
        # open() reopens the memfd (an empty file may have none yet: the kernel makes it)
        if self._fd < 0:
            return None
        return hostcalls.self_fds(), str(self._fd), 0, 0

    def stat_view(self) -> Optional[StatView]:
        # size and times live in the memfd; a native write moves its ctime
        if self._fd < 0:
            return None
        return STAT_LIVE_DATA | STAT_TMPFS_CTIME | STAT_SETATTR, self._ctime_seen, self._fd

    def adopt_attrs(self, mode: int, uid: int, gid: int, ctime_ns: int,
                    host_ctime_ns: int) -> None:
        """Mode and owner as the accelerator set them, with ctime_ns for as
        long as the memfd's ctime is host_ctime_ns (as the view read it)."""
        self._mode = st.S_IFMT(self._mode) | (mode & 0o7777)
        self.uid, self.gid = uid, gid
        self._ctime_seen, self.ctime = host_ctime_ns, ctime_ns
        self._sync_from_host()          # a native write or futimens since: its ctime


class TmpSymlink(TmpInode):
    def __init__(self, fs: TmpFs, target: str, uid: int, gid: int) -> None:
        super().__init__(fs, st.S_IFLNK | 0o777, uid, gid)
        self.target = target

    def _size(self) -> int:
        return len(self.target.encode("utf-8", "surrogateescape"))

    def readlink(self) -> str:
        return self.target

    def open(self, flags: int) -> int:
        raise _err(errno.ELOOP)


class TmpNode(TmpInode):
    """FIFO, character or block device, or socket."""

    def __init__(self, fs: TmpFs, mode: int, rdev: int, uid: int, gid: int) -> None:
        kind = st.S_IFMT(mode)
        super().__init__(fs, mode, uid, gid, rdev if kind in (st.S_IFCHR, st.S_IFBLK) else 0)
        self._host_path: Optional[str] = None

    def open(self, flags: int) -> int:
        raise _err(errno.ENXIO)

    def _scratch_name(self, kind: str) -> str:
        if self._host_path is None:
            path = self.fs.scratch_path(f"{kind}-{self.fs.dev}-{self.ino}")
            if kind == "fifo":
                os.mkfifo(path, 0o600)
            weakref.finalize(self, _unlink_quietly, path)
            self._host_path = path
        return self._host_path

    def fifo_path(self) -> str:
        """A host FIFO standing for this one (made on first use), for the VFS to open."""
        if not st.S_ISFIFO(self._mode):
            raise _err(errno.ENXIO)
        return self._scratch_name("fifo")

    def socket_path(self) -> str:
        """The host path where the VFS binds (and guests connect to) this socket."""
        if not st.S_ISSOCK(self._mode):
            raise _err(errno.ECONNREFUSED)
        return self._scratch_name("sock")
