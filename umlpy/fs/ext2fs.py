"""ext2/ext3/ext4 as a guest file system: the VFS face of umlpy.fs.ext2's Ext2Volume.

File data follows DESIGN principle 2: the first open of a regular file fills a
memfd with its contents (the page cache), every open of that inode gets that
same memfd, and read, write, mmap and lseek run natively on it. The kernel
writes a changed page cache back to the volume (the whole file, then its
size and times) on fsync/fdatasync of any descriptor of it, on sync(2) and
syncfs, at unmount and at exit. A change is seen by the memfd's host ctime,
which every native write and truncate moves.

An unlinked file that is still open keeps its data in the memfd; its inode is
freed on the volume at once (nothing of it needs writing back).
"""
from __future__ import annotations

import errno
import os
import stat as st
import weakref
from typing import Dict, Iterable, Optional, Tuple

from umlpy.fs import hostcalls
from umlpy.fs.ext2 import constants as ext2c
from umlpy.fs.ext2.volume import Ext2Volume
from umlpy.vfs.inode import Attr, FileSystem, Inode, StatFs, check_name, dtype_of

EXT2_SUPER_MAGIC = 0xEF53
CHUNK = 1 << 20         # bytes per volume read/write while filling or writing back
_OPEN_KEEP = os.O_ACCMODE | os.O_APPEND | os.O_NONBLOCK | os.O_DIRECT | os.O_SYNC \
    | os.O_DSYNC | os.O_NOATIME


def _b(name: str) -> bytes:
    return os.fsencode(name)


def _s(name: bytes) -> str:
    return os.fsdecode(name)


def _close_quietly(fd: int) -> None:
    try:
        os.close(fd)
    except OSError:
        pass


class Ext2Fs(FileSystem):
    magic = EXT2_SUPER_MAGIC

    def __init__(self, volume: Ext2Volume, source: str = "") -> None:
        super().__init__()
        self.volume = volume
        self.source = source
        self.readonly = volume.readonly
        self.type_name = _type_name(volume)
        self._inodes: "weakref.WeakValueDictionary[int, Ext2Inode]" = \
            weakref.WeakValueDictionary()
        self._cached: Dict[int, "Ext2Inode"] = {}     # inodes with a page cache
        self.root = self.inode(ext2c.ROOT_INO)

    def inode(self, ino: int) -> "Ext2Inode":
        node = self._inodes.get(ino)
        if node is None:
            node = self._inodes[ino] = Ext2Inode(self, ino)
        return node

    def statfs(self) -> StatFs:
        return self.volume.statfs()

    def sync(self) -> None:
        if self.readonly:
            return
        for node in list(self._cached.values()):
            node.write_back()
        self.volume.sync()

    def close(self) -> None:
        try:
            self.sync()
        finally:
            for node in list(self._cached.values()):
                node.drop_cache()
            self.volume.close()

    def mount_options(self) -> str:
        return ""


def _type_name(volume: Ext2Volume) -> str:
    sb = volume.sb
    if volume.extents or sb.has_incompat(ext2c.INCOMPAT_64BIT):
        return "ext4"
    if sb.has_compat(ext2c.COMPAT_HAS_JOURNAL):
        return "ext3"
    return "ext2"


class Ext2Inode(Inode):
    def __init__(self, fs: Ext2Fs, ino: int) -> None:
        self.fs = fs
        self.ino = ino
        self._memfd = -1
        self._key = (0, 0)
        self._ctime_seen = 0        # the memfd's host ctime when it last matched the volume

    @property
    def vol(self) -> Ext2Volume:
        return self.fs.volume

    # ---- attributes ----
    def getattr(self) -> Attr:
        a = self.vol.getattr(self.ino)
        attr = Attr(mode=a.mode, ino=self.ino, nlink=a.nlink, uid=a.uid, gid=a.gid,
                    rdev=a.rdev, size=a.size, blksize=a.blksize, blocks=a.blocks,
                    atime_ns=a.atime_ns, mtime_ns=a.mtime_ns, ctime_ns=a.ctime_ns,
                    btime_ns=a.crtime_ns, dev=self.fs.dev)
        if self._memfd >= 0:
            s = os.fstat(self._memfd)
            if s.st_ctime_ns != self._ctime_seen:      # changed natively, not written back
                attr.size, attr.mtime_ns, attr.ctime_ns = s.st_size, s.st_mtime_ns, s.st_ctime_ns
        return attr

    @property
    def mode(self) -> int:
        return self.vol.getattr(self.ino).mode

    def setattr(self, *, mode=None, uid=None, gid=None, size=None, atime_ns=None,
                mtime_ns=None) -> None:
        self.fs.check_writable()
        if self._memfd >= 0:
            if size is not None:
                os.ftruncate(self._memfd, size)
            self.write_back()           # the data first: the times below mark it clean
        self.vol.setattr(self.ino, mode=mode, uid=uid, gid=gid, size=size,
                         atime_ns=atime_ns, mtime_ns=mtime_ns)
        if self._memfd >= 0 and (atime_ns is not None or mtime_ns is not None):
            a = self.vol.getattr(self.ino)
            os.utime(self._memfd, ns=(a.atime_ns, a.mtime_ns))
            self._ctime_seen = os.fstat(self._memfd).st_ctime_ns

    # ---- directories ----
    def lookup(self, name: str) -> Inode:
        return self.fs.inode(self.vol.lookup(self.ino, _b(name)))

    def readdir(self) -> Iterable[Tuple[str, int, int]]:
        out = []
        for name, ino, ftype in self.vol.readdir(self.ino):
            dt = ext2c.DT_OF_FT.get(ftype, 0)
            if not dt:
                dt = dtype_of(self.vol.getattr(ino).mode)
            out.append((_s(name), ino, dt))
        return out

    def create(self, name: str, mode: int, uid: int, gid: int) -> Inode:
        return self._make(self.vol.create(self.ino, self._new(name), st.S_IFREG | (mode & 0o7777),
                                          uid, gid))

    def mkdir(self, name: str, mode: int, uid: int, gid: int) -> Inode:
        return self._make(self.vol.mkdir(self.ino, self._new(name), mode & 0o7777, uid, gid))

    def mknod(self, name: str, mode: int, rdev: int, uid: int, gid: int) -> Inode:
        return self._make(self.vol.create(self.ino, self._new(name), mode, uid, gid, rdev))

    def symlink(self, name: str, target: str, uid: int, gid: int) -> Inode:
        return self._make(self.vol.symlink(self.ino, self._new(name), _b(target), uid, gid))

    def link(self, name: str, inode: Inode) -> None:
        if not isinstance(inode, Ext2Inode) or inode.fs is not self.fs:
            raise OSError(errno.EXDEV, "cross-device link")
        self.vol.link(self.ino, self._new(name), inode.ino)

    def unlink(self, name: str) -> None:
        self.fs.check_writable()
        self.vol.unlink(self.ino, _b(name))

    def rmdir(self, name: str) -> None:
        self.fs.check_writable()
        self.vol.rmdir(self.ino, _b(name))

    def rename(self, name: str, newdir: Inode, newname: str, flags: int = 0) -> None:
        self.fs.check_writable()
        if not isinstance(newdir, Ext2Inode) or newdir.fs is not self.fs:
            raise OSError(errno.EXDEV, "cross-device rename")
        check_name(newname)
        self.vol.rename(self.ino, _b(name), newdir.ino, _b(newname), flags)

    def _new(self, name: str) -> bytes:
        self.fs.check_writable()
        check_name(name)
        return _b(name)

    def _make(self, ino: int) -> Inode:
        return self.fs.inode(ino)

    # ---- symlinks and data ----
    def readlink(self) -> str:
        return _s(self.vol.readlink(self.ino))

    def open(self, flags: int) -> int:
        if flags & os.O_ACCMODE != os.O_RDONLY or flags & os.O_TRUNC:
            self.fs.check_writable()
        if not st.S_ISREG(self.mode):
            raise OSError(errno.ENXIO, "no such device or address")
        return hostcalls.reopen(self.memfd(), (flags & _OPEN_KEEP) | os.O_CLOEXEC)

    def host_key(self) -> Optional[Tuple[int, int]]:
        self.memfd()
        return self._key

    def memfd(self) -> int:
        """The page cache: the file's contents in a memfd (filled now if new)."""
        if self._memfd >= 0:
            return self._memfd
        a = self.vol.getattr(self.ino)
        fd = os.memfd_create(f"ext2:{self.ino}", os.MFD_CLOEXEC)
        try:
            done = 0
            while done < a.size:
                chunk = self.vol.read(self.ino, done, min(CHUNK, a.size - done))
                if not chunk:
                    break
                os.pwrite(fd, chunk, done)
                done += len(chunk)
            os.ftruncate(fd, a.size)
            os.utime(fd, ns=(a.atime_ns, a.mtime_ns))
        except BaseException:
            os.close(fd)
            raise
        s = os.fstat(fd)
        self._memfd, self._key, self._ctime_seen = fd, (s.st_dev, s.st_ino), s.st_ctime_ns
        self.fs._cached[self.ino] = self
        weakref.finalize(self, _close_quietly, fd)
        return fd

    def write_back(self) -> None:
        """Copy a page cache the guest changed to the volume (data, size, mtime)."""
        fd = self._memfd
        if fd < 0 or self.fs.readonly:
            return
        s = os.fstat(fd)
        if s.st_ctime_ns == self._ctime_seen:
            return
        try:
            a = self.vol.getattr(self.ino)
        except OSError:
            return
        if a.nlink == 0 or not st.S_ISREG(a.mode):
            self._ctime_seen = s.st_ctime_ns        # gone from the volume: nothing to keep
            return
        done = 0
        while done < s.st_size:
            chunk = os.pread(fd, min(CHUNK, s.st_size - done), done)
            if not chunk:
                break
            self.vol.write(self.ino, done, chunk)
            done += len(chunk)
        if a.size > s.st_size:
            self.vol.truncate(self.ino, s.st_size)
        self.vol.setattr(self.ino, mtime_ns=s.st_mtime_ns)
        self._ctime_seen = s.st_ctime_ns

    def fsync(self) -> None:
        """fsync(2) on a descriptor of this file: durable when it returns."""
        self.write_back()
        if not self.fs.readonly:
            self.vol.sync()

    def drop_cache(self) -> None:
        if self._memfd >= 0:
            _close_quietly(self._memfd)
            self._memfd = -1
        self.fs._cached.pop(self.ino, None)


def probe(device) -> bool:
    """Does the device hold an ext2/3/4 superblock?"""
    try:
        return int.from_bytes(device.read(1024 + 56, 2), "little") == EXT2_SUPER_MAGIC
    except OSError:
        return False
