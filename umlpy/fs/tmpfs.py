"""tmpfs: a file system in the kernel's memory.

Directories are dicts of name -> inode. A regular file's data lives in one
memfd per inode, the page cache every open shares: open() reopens
/proc/self/fd/<memfd>, so the guest reads, writes and maps the file natively,
and size, atime, mtime and ctime come from the memfd's fstat (native writes
update them; utimens goes to the memfd with os.utime). The memfd is made on
first need, so empty files cost no host descriptor. Device nodes only carry
rdev (the VFS opens devices through its device table); FIFOs and sockets get a
host path in a private scratch directory so the VFS can open or bind them.

Limits (size=, nr_inodes=) follow Linux. Writes, fallocate and ftruncate run
natively on the guest's descriptor, so the kernel cannot refuse a block: a
tmpfs mounted with an explicit size= keeps its files in a private host tmpfs
of that size (tmpfs_backing), which gives ENOSPC where Linux does. Without
the privilege to make one, files are memfds and size= is enforced only on
setattr(size=) (truncate by path, O_TRUNC, copy-up), a native write can pass
it. statfs reports the files' allocated blocks either way.

A memfd is closed when its inode has no name left and no Python reference
(weakref.finalize), not at nlink 0: an O_TMPFILE file or an unlinked file
reopened through /proc/PID/fd still needs it. Guest descriptors are separate
open descriptions of the memfd, so they keep working after our close. Every
non-empty file holds one kernel descriptor: RLIMIT_NOFILE bounds their count.
"""
from __future__ import annotations

import errno
import itertools
import os
import shutil
import stat as st
import tempfile
import weakref
from typing import Callable, Dict, Iterable, Optional, Tuple

from umlpy.fs import tmpfs_backing, tmpfs_options
from umlpy.fs.xattrs import XattrStore
from umlpy.vfs.inode import (RENAME_EXCHANGE, RENAME_NOREPLACE, STAT_LIVE_DATA, STAT_TMPFS_CTIME,
                             Attr, FileSystem, Inode, StatFs, StatView, check_name,
                             check_rename, dtype_of, now_ns)

TMPFS_MAGIC = 0x01021994
PAGE_SIZE = 4096
BOGO_DIRENT_SIZE = 20           # Linux tmpfs counts 20 bytes of size per directory entry
LINK_MAX = 0xFFFFFFFF
SYMLINK_MAX = PAGE_SIZE - 1
# flags a reopen of the memfd keeps: access mode and status flags
_OPEN_KEEP = (os.O_ACCMODE | os.O_APPEND | os.O_NONBLOCK | os.O_DIRECT | os.O_SYNC
              | os.O_DSYNC | os.O_NOATIME | os.O_LARGEFILE)


def _err(code: int, what: str = "") -> OSError:
    return OSError(code, what or os.strerror(code))


class TmpFs(FileSystem):
    """One tmpfs instance. size/nr_inodes default, as in Linux, to half of
    RAM and half of RAM's pages; scratch_dir is a private host directory for
    FIFOs and sockets (a temporary one is made when needed if not given)."""

    type_name = "tmpfs"
    magic = TMPFS_MAGIC

    def __init__(self, size: Optional[int] = None, nr_inodes: Optional[int] = None,
                 mode: int = 0o1777, uid: int = 0, gid: int = 0,
                 scratch_dir: Optional[str] = None, readonly: bool = False) -> None:
        super().__init__()
        self.readonly = readonly
        ram = tmpfs_options.ram_bytes()
        self._default_size, self._default_inodes = ram // 2, ram // PAGE_SIZE // 2
        # 0 means no limit, as size=0 and nr_inodes=0 do in Linux
        self.size = self._default_size if size is None else self._pages(size) * PAGE_SIZE
        self.nr_inodes = self._default_inodes if nr_inodes is None else nr_inodes
        self.root_mode, self.root_uid, self.root_gid = mode & 0o7777, uid, gid
        self._scratch = scratch_dir
        self._own_scratch = False
        self._inos = itertools.count(1)
        self.inodes_used = 0
        # regular files holding a memfd: what statfs adds up
        self._files: "weakref.WeakValueDictionary[int, TmpFile]" = weakref.WeakValueDictionary()
        self.root = TmpDir(self, mode & 0o7777, uid, gid)
        self.root.nlink = 2
        self.backing: Optional[int] = None      # a host tmpfs enforcing size=
        # With a backing, space goes back only when the kernel lets go of a
        # deleted file: the VFS's collection of unused handles, called here
        # once deleted files hold an eighth of the size (not at every unlink).
        self.orphan_hook: Optional[Callable[[], None]] = None
        self._orphan_bytes = 0

    def limit_on_host(self) -> bool:
        """Hold file data in a host tmpfs of our size, so that native writes
        get ENOSPC past it; False when the host does not allow it."""
        if self.backing is None and self.size:
            self.backing = tmpfs_backing.make(self.size)
            if self.backing is not None:
                weakref.finalize(self, _close_quietly, self.backing)
        return self.backing is not None

    @staticmethod
    def _pages(nbytes: int) -> int:
        return (nbytes + PAGE_SIZE - 1) // PAGE_SIZE

    @classmethod
    def from_options(cls, options: str, scratch_dir: Optional[str] = None,
                     readonly: bool = False) -> "TmpFs":
        """A tmpfs from mount(2)'s data string ("size=64k,mode=755,uid=0")."""
        opts = tmpfs_options.parse(options)
        fs = cls(size=opts.get("size"), nr_inodes=opts.get("nr_inodes"),
                 mode=opts.get("mode", 0o1777), uid=opts.get("uid", 0),
                 gid=opts.get("gid", 0), scratch_dir=scratch_dir, readonly=readonly)
        if "size" in opts:
            fs.limit_on_host()
        return fs

    def remount(self, options: str = "", readonly: Optional[bool] = None) -> None:
        """mount -o remount: new limits and/or read-only state (mode, uid and
        gid are ignored, as Linux does on remount)."""
        opts = tmpfs_options.parse(options)
        n = opts.get("nr_inodes")
        if n and n < self.inodes_used:
            raise _err(errno.EINVAL, "nr_inodes below the inodes in use")
        if "size" in opts:
            size = self._pages(opts["size"]) * PAGE_SIZE
            if self.backing is not None:
                tmpfs_backing.resize(self.backing, size)   # EINVAL below what is used
            self.size = size
        if n is not None:
            self.nr_inodes = n
        if readonly is not None:
            self.readonly = readonly

    def mount_options(self) -> str:
        opts = []
        if self.size != self._default_size:
            opts.append(f"size={self.size // 1024}k")
        if self.nr_inodes != self._default_inodes:
            opts.append(f"nr_inodes={self.nr_inodes}")
        if self.root_mode != 0o1777:
            opts.append(f"mode={self.root_mode:o}")
        if self.root_uid:
            opts.append(f"uid={self.root_uid}")
        if self.root_gid:
            opts.append(f"gid={self.root_gid}")
        opts.append("inode64")
        return ",".join(opts)

    # ---- accounting ----
    def bytes_used(self) -> int:
        return sum(f.allocated() for f in list(self._files.values()))

    def statfs(self) -> StatFs:
        # an unlimited tmpfs reports zero blocks and files, as Linux does
        blocks = self.size // PAGE_SIZE
        free = max(0, blocks - self._pages(self.bytes_used()))
        return StatFs(self.magic, f_bsize=PAGE_SIZE, f_blocks=blocks, f_bfree=free,
                      f_bavail=free, f_files=self.nr_inodes,
                      f_ffree=max(0, self.nr_inodes - self.inodes_used), f_namelen=255,
                      f_frsize=PAGE_SIZE)

    def _charge_ino(self) -> None:
        if self.nr_inodes and self.inodes_used >= self.nr_inodes:
            raise _err(errno.ENOSPC, "no inodes left")
        self.inodes_used += 1

    def _new_ino(self) -> int:
        self._charge_ino()
        return next(self._inos)

    def _free_ino(self) -> None:
        self.inodes_used -= 1

    def _orphaned(self, nbytes: int) -> None:
        if self.backing is None or self.orphan_hook is None:
            return
        self._orphan_bytes += nbytes
        if self._orphan_bytes * 8 >= self.size:
            self._orphan_bytes = 0
            self.orphan_hook()

    def scratch_path(self, name: str) -> str:
        if self._scratch is None:
            self._scratch = tempfile.mkdtemp(prefix="umlpy-tmpfs-")
            self._own_scratch = True
        return os.path.join(self._scratch, name)

    def close(self) -> None:
        if self._own_scratch and self._scratch:
            shutil.rmtree(self._scratch, ignore_errors=True)
            self._scratch, self._own_scratch = None, False


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

    def __init__(self, fs: TmpFs, mode: int, uid: int, gid: int, rdev: int = 0) -> None:
        self.fs = fs
        self.ino = fs._new_ino()
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
                self.fs._orphaned(self.allocated())

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self.ino} {oct(self._mode)}>"


class TmpFile(TmpInode):
    """A regular file: data in a memfd made on first need."""

    def __init__(self, fs: TmpFs, mode: int, uid: int, gid: int) -> None:
        super().__init__(fs, st.S_IFREG | (mode & 0o7777), uid, gid)
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
            weakref.finalize(self, _close_quietly, fd)
            os.utime(fd, ns=(self.atime, self.mtime))
            self._fd = fd
            s = os.fstat(fd)
            self._ctime_seen = s.st_ctime_ns
            self._key = (s.st_dev, s.st_ino)
            self.fs._files[self.ino] = self
        return self._fd

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
        return os.open(f"/proc/self/fd/{fd}", (flags & _OPEN_KEEP) | os.O_CLOEXEC)

    def host_key(self) -> Optional[Tuple[int, int]]:
        self.memfd()
        return self._key

    def stat_view(self) -> Optional[StatView]:
        # size and times live in the memfd; a native write moves its ctime
        if self._fd < 0:
            return None
        return STAT_LIVE_DATA | STAT_TMPFS_CTIME, self._ctime_seen, self._fd


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


class TmpDir(TmpInode):
    def __init__(self, fs: TmpFs, mode: int, uid: int, gid: int) -> None:
        super().__init__(fs, st.S_IFDIR | (mode & 0o7777), uid, gid)
        self.entries: Dict[str, TmpInode] = {}
        self.nlink = 2
        self.dead = False           # removed: nothing may be created in it

    def _size(self) -> int:
        return (len(self.entries) + 2) * BOGO_DIRENT_SIZE

    def _changed(self, t: Optional[int] = None) -> None:
        self.mtime = self.ctime = now_ns() if t is None else t

    def _get(self, name: str) -> TmpInode:
        try:
            return self.entries[name]
        except KeyError:
            raise _err(errno.ENOENT) from None

    def lookup(self, name: str) -> Inode:
        return self._get(name)

    def readdir(self) -> Iterable[Tuple[str, int, int]]:
        return [(n, i.ino, dtype_of(i._mode)) for n, i in list(self.entries.items())]

    def _can_add(self, name: str) -> None:
        check_name(name)
        self._rw()
        if self.dead:
            raise _err(errno.ENOENT)
        if name in self.entries:
            raise _err(errno.EEXIST)

    def _add(self, name: str, inode: TmpInode) -> TmpInode:
        self.entries[name] = inode
        if isinstance(inode, TmpDir):
            self.nlink += 1
        self._changed(inode.ctime)
        return inode

    def create(self, name: str, mode: int, uid: int, gid: int) -> Inode:
        self._can_add(name)
        return self._add(name, TmpFile(self.fs, mode, uid, gid))

    def tmpfile(self, mode: int, uid: int, gid: int) -> Inode:
        """O_TMPFILE: a file with no name yet (link() may give it one)."""
        self._can_add("tmpfile")
        f = TmpFile(self.fs, mode, uid, gid)
        f.nlink = 0
        f.linkable = True
        self.fs._free_ino()         # inodes are counted while they have names
        return f

    def mkdir(self, name: str, mode: int, uid: int, gid: int) -> Inode:
        self._can_add(name)
        return self._add(name, TmpDir(self.fs, mode, uid, gid))

    def mknod(self, name: str, mode: int, rdev: int, uid: int, gid: int) -> Inode:
        kind = st.S_IFMT(mode)
        if kind == st.S_IFREG or kind == 0:
            return self.create(name, mode, uid, gid)
        if kind not in (st.S_IFIFO, st.S_IFCHR, st.S_IFBLK, st.S_IFSOCK):
            raise _err(errno.EINVAL)
        self._can_add(name)
        return self._add(name, TmpNode(self.fs, kind | (mode & 0o7777), rdev, uid, gid))

    def symlink(self, name: str, target: str, uid: int, gid: int) -> Inode:
        if not target:
            raise _err(errno.ENOENT)
        if len(target.encode("utf-8", "surrogateescape")) > SYMLINK_MAX:
            raise _err(errno.ENAMETOOLONG)
        self._can_add(name)
        return self._add(name, TmpSymlink(self.fs, target, uid, gid))

    def link(self, name: str, inode: Inode) -> None:
        if not isinstance(inode, TmpInode) or inode.fs is not self.fs:
            raise _err(errno.EXDEV)
        if isinstance(inode, TmpDir):
            raise _err(errno.EPERM)
        self._can_add(name)
        if inode.nlink >= LINK_MAX:
            raise _err(errno.EMLINK)
        if inode.nlink == 0:
            # only an O_TMPFILE file may come back from zero links
            if not getattr(inode, "linkable", False):
                raise _err(errno.ENOENT)
            self.fs._charge_ino()
            inode.linkable = False      # type: ignore[attr-defined]
        inode.nlink += 1
        t = now_ns()
        inode.touch_ctime(t)
        self.entries[name] = inode
        self._changed(t)

    def unlink(self, name: str) -> None:
        check_name(name)
        self._rw()
        victim = self._get(name)
        if isinstance(victim, TmpDir):
            raise _err(errno.EISDIR)
        del self.entries[name]
        t = now_ns()
        victim._drop_link()
        victim.touch_ctime(t)
        self._changed(t)

    def rmdir(self, name: str) -> None:
        check_name(name)
        self._rw()
        victim = self._get(name)
        if not isinstance(victim, TmpDir):
            raise _err(errno.ENOTDIR)
        if victim.entries:
            raise _err(errno.ENOTEMPTY)
        del self.entries[name]
        self._kill_dir(victim)
        self._changed()

    def _kill_dir(self, d: "TmpDir") -> None:
        """d's name (and its '..' in us) are gone."""
        self.nlink -= 1
        d.nlink = 0
        d.dead = True
        d.fs._free_ino()
        d.touch_ctime()

    def rename(self, name: str, newdir: Inode, newname: str, flags: int = 0) -> None:
        check_rename(name, newname, flags)
        if not isinstance(newdir, TmpInode) or newdir.fs is not self.fs:
            raise _err(errno.EXDEV)
        if not isinstance(newdir, TmpDir):
            raise _err(errno.ENOTDIR)
        self._rw()
        src = self._get(name)
        dst = newdir.entries.get(newname)
        if newdir.dead:
            raise _err(errno.ENOENT)
        if flags & RENAME_EXCHANGE:
            if dst is None:
                raise _err(errno.ENOENT)
            self._exchange(name, src, newdir, newname, dst)
            return
        if dst is not None:
            if flags & RENAME_NOREPLACE:
                raise _err(errno.EEXIST)
            if dst is src:
                return                  # two names of one inode: nothing happens
            if isinstance(src, TmpDir):
                if not isinstance(dst, TmpDir):
                    raise _err(errno.ENOTDIR)
                if dst.entries:
                    raise _err(errno.ENOTEMPTY)
            elif isinstance(dst, TmpDir):
                raise _err(errno.EISDIR)
        t = now_ns()
        if dst is not None:
            if isinstance(dst, TmpDir):
                newdir._kill_dir(dst)
            else:
                dst._drop_link()
                dst.touch_ctime(t)
        del self.entries[name]
        newdir.entries[newname] = src
        if isinstance(src, TmpDir) and newdir is not self:
            self.nlink -= 1
            newdir.nlink += 1
        src.touch_ctime(t)
        self._changed(t)
        newdir._changed(t)

    def _exchange(self, name: str, src: TmpInode, newdir: "TmpDir", newname: str,
                  dst: TmpInode) -> None:
        self.entries[name], newdir.entries[newname] = dst, src
        if newdir is not self:
            delta = isinstance(src, TmpDir) - isinstance(dst, TmpDir)
            self.nlink -= delta
            newdir.nlink += delta
        t = now_ns()
        src.touch_ctime(t)
        dst.touch_ctime(t)
        self._changed(t)
        newdir._changed(t)

    def _truncate(self, size: int) -> None:
        raise _err(errno.EISDIR)

    def open(self, flags: int) -> int:
        raise _err(errno.EISDIR)

