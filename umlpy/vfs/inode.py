"""What every file system implements: inodes, their attributes, and the fs itself.

The VFS (umlpy/vfs/) walks paths, checks permissions, keeps the mount table
and hands host descriptors to the guest; a file system (umlpy/fs/) only
answers questions about its own inodes. Methods raise OSError(errno) the way
the Linux operation would fail (ENOENT, EEXIST, ENOTEMPTY, EROFS...).

Contract, in short:
- Names passed to directory methods are single components: never "", "."
  or "..", never containing "/" (the VFS filters those).
- Permission checks are the VFS's (umlpy/vfs/perm.py); a file system checks
  only what is its own business: read-only mounts (EROFS), ENOSPC, type
  mismatches (ENOTDIR, EISDIR), emptiness (ENOTEMPTY).
- `open(flags)` returns a new host descriptor for the file's data, opened
  with exactly the access mode and status flags asked (O_ACCMODE, O_APPEND,
  O_NONBLOCK, O_DIRECT, O_SYNC, O_DSYNC, O_NOATIME), always O_CLOEXEC. The
  VFS has already applied O_CREAT, O_EXCL and O_TRUNC through create() and
  setattr(size=0). Directories are never opened through this (the VFS gives
  the guest a stand-in; listings come from readdir()).
- `host_key()` names the host object behind open() results, (st_dev, st_ino)
  as the host's fstat reports it, when every open returns the same host
  object (memfd page caches, hostfs files); the VFS uses it to map a guest
  descriptor back to its inode.
"""
from __future__ import annotations

import errno
import itertools
import stat as st
import time
from typing import Iterable, Optional, Tuple

from umlpy.record import Record

# d_type values of getdents64
DT_UNKNOWN, DT_FIFO, DT_CHR, DT_DIR, DT_BLK, DT_REG, DT_LNK, DT_SOCK = 0, 1, 2, 4, 6, 8, 10, 12

_DTYPES = {st.S_IFIFO: DT_FIFO, st.S_IFCHR: DT_CHR, st.S_IFDIR: DT_DIR, st.S_IFBLK: DT_BLK,
           st.S_IFREG: DT_REG, st.S_IFLNK: DT_LNK, st.S_IFSOCK: DT_SOCK}

# renameat2 flags
RENAME_NOREPLACE, RENAME_EXCHANGE, RENAME_WHITEOUT = 1, 2, 4


def dtype_of(mode: int) -> int:
    return _DTYPES.get(st.S_IFMT(mode), DT_UNKNOWN)


def now_ns() -> int:
    return time.time_ns()


# How a published fstat view is read: the accelerator's UML_FSTAT_* numbers.
STAT_CHECK_CTIME = 1    # good while the host object's ctime is unchanged
STAT_LIVE_DATA = 2      # size, blocks, atime and mtime are the host object's
STAT_TMPFS_CTIME = 4    # the host's ctime once it moved past the one given
STAT_SETATTR = 8        # fchmod, fchown and futimens may be answered too (tmpfs files)
StatView = Tuple[int, Optional[int], int]      # Inode.stat_view
OpenRecipe = Tuple[int, str, int, int]         # Inode.open_recipe


class Attr(Record):
    """An inode's attributes, as stat(2) shows them (dev is filled in by the VFS)."""
    __slots__ = _fields = ("mode", "ino", "nlink", "uid", "gid", "rdev", "size", "blksize",
                           "blocks", "atime_ns", "mtime_ns", "ctime_ns", "btime_ns", "dev")

    def __init__(self, mode: int, ino: int, nlink: int = 1, uid: int = 0, gid: int = 0,
                 rdev: int = 0, size: int = 0, blksize: int = 4096, blocks: int = 0,
                 atime_ns: int = 0, mtime_ns: int = 0, ctime_ns: int = 0, btime_ns: int = 0,
                 dev: int = 0) -> None:
        self.mode = mode
        self.ino = ino
        self.nlink = nlink
        self.uid = uid
        self.gid = gid
        self.rdev = rdev
        self.size = size
        self.blksize = blksize
        self.blocks = blocks
        self.atime_ns = atime_ns
        self.mtime_ns = mtime_ns
        self.ctime_ns = ctime_ns
        self.btime_ns = btime_ns
        self.dev = dev

    def copy(self, **changes: int) -> "Attr":
        # the walk copies cached attributes often: store the slots one by one
        # (no __init__ call, no loop over _fields)
        twin = object.__new__(Attr)
        twin.mode = self.mode
        twin.ino = self.ino
        twin.nlink = self.nlink
        twin.uid = self.uid
        twin.gid = self.gid
        twin.rdev = self.rdev
        twin.size = self.size
        twin.blksize = self.blksize
        twin.blocks = self.blocks
        twin.atime_ns = self.atime_ns
        twin.mtime_ns = self.mtime_ns
        twin.ctime_ns = self.ctime_ns
        twin.btime_ns = self.btime_ns
        twin.dev = self.dev
        if changes:
            # only field names, as replace() took: a TypeError for any other
            for name, value in changes.items():
                if name not in Attr._fields:
                    raise TypeError(f"Attr.copy() got an unexpected keyword argument {name!r}")
                setattr(twin, name, value)
        return twin


class StatFs(Record):
    """struct statfs fields (f_type is the file system's magic number)."""
    __slots__ = _fields = ("f_type", "f_bsize", "f_blocks", "f_bfree", "f_bavail", "f_files",
                           "f_ffree", "f_namelen", "f_frsize", "f_flags")

    def __init__(self, f_type: int, f_bsize: int = 4096, f_blocks: int = 0, f_bfree: int = 0,
                 f_bavail: int = 0, f_files: int = 0, f_ffree: int = 0, f_namelen: int = 255,
                 f_frsize: int = 4096, f_flags: int = 0) -> None:
        self.f_type = f_type
        self.f_bsize = f_bsize
        self.f_blocks = f_blocks
        self.f_bfree = f_bfree
        self.f_bavail = f_bavail
        self.f_files = f_files
        self.f_ffree = f_ffree
        self.f_namelen = f_namelen
        self.f_frsize = f_frsize
        self.f_flags = f_flags


_anon_minor = itertools.count(64)


def new_anon_dev() -> int:
    """A device number for a file system without a block device (major 0, as Linux)."""
    return next(_anon_minor)


def _no(err: int):
    raise OSError(err, errno.errorcode.get(err, "error"))


class FileSystem:
    """One mounted file-system instance (a superblock)."""

    type_name = "none"          # as /proc/filesystems and /proc/mounts name it
    magic = 0                   # statfs f_type
    readonly = False
    # True once any mount of it was read-only: a descriptor opened there may
    # still be open, so what may change attributes checks every time
    ro_mounted = False
    # True when the host can change the tree behind the kernel's back (hostfs):
    # the VFS then keeps no dentry cache for it.
    volatile = False

    def __init__(self) -> None:
        self.dev = new_anon_dev()
        self.root: Inode = None  # type: ignore[assignment]

    def statfs(self) -> StatFs:
        return StatFs(self.magic)

    def sync(self) -> None:
        """Write back everything dirty (sync(2), syncfs, unmount)."""

    def close(self) -> None:
        """Release host resources; called at unmount."""

    def check_writable(self) -> None:
        if self.readonly:
            _no(errno.EROFS)

    def mount_options(self) -> str:
        """File-system specific options for /proc/mounts (after rw/ro)."""
        return ""


class Inode:
    """Base class: every operation refused the way Linux refuses it on a
    file system that does not support it. Subclasses override what they do."""

    fs: FileSystem
    ino: int

    @property
    def key(self) -> Tuple[int, int]:
        """Identity of this inode within the whole VFS."""
        return (self.fs.dev, self.ino)

    # ---- attributes ----
    def getattr(self) -> Attr:
        raise NotImplementedError

    def view_attr(self) -> Attr:
        """getattr() for a published stat_view(): an inode whose view has the
        accelerator read the live fields (STAT_LIVE_DATA) from its host
        object may leave them unread here."""
        return self.getattr()

    def size_if_last_name(self) -> Optional[int]:
        """This regular file's size when it has one name left, else None
        (what the stand-in table counts once that name goes)."""
        a = self.getattr()
        return a.size if st.S_ISREG(a.mode) and a.nlink <= 1 else None

    def setattr(self, *, mode: Optional[int] = None, uid: Optional[int] = None,
                gid: Optional[int] = None, size: Optional[int] = None,
                atime_ns: Optional[int] = None, mtime_ns: Optional[int] = None) -> None:
        """Change attributes. mode holds permission bits only (07777); uid/gid
        -1 or None leave them; any change also sets ctime to now."""
        _no(errno.EPERM)

    @property
    def mode(self) -> int:
        return self.getattr().mode

    def is_dir(self) -> bool:
        return st.S_ISDIR(self.mode)

    # ---- directories ----
    def lookup(self, name: str) -> "Inode":
        _no(errno.ENOTDIR)

    def readdir(self) -> Iterable[Tuple[str, int, int]]:
        """(name, ino, d_type) for every entry except . and .."""
        _no(errno.ENOTDIR)

    def create(self, name: str, mode: int, uid: int, gid: int) -> "Inode":
        """A new regular file (mode: permission bits); EEXIST if the name exists."""
        _no(errno.ENOTDIR)

    def mkdir(self, name: str, mode: int, uid: int, gid: int) -> "Inode":
        _no(errno.ENOTDIR)

    def mknod(self, name: str, mode: int, rdev: int, uid: int, gid: int) -> "Inode":
        """mode carries the type: S_IFIFO, S_IFCHR, S_IFBLK, S_IFSOCK or S_IFREG."""
        _no(errno.EPERM)

    def symlink(self, name: str, target: str, uid: int, gid: int) -> "Inode":
        _no(errno.EPERM)

    def link(self, name: str, inode: "Inode") -> None:
        """A new name for `inode`, which is on this same file system."""
        _no(errno.EPERM)

    def unlink(self, name: str) -> None:
        """Remove a non-directory name (EISDIR for a directory)."""
        _no(errno.ENOTDIR)

    def rmdir(self, name: str) -> None:
        """Remove an empty directory (ENOTDIR, ENOTEMPTY)."""
        _no(errno.ENOTDIR)

    def rename(self, name: str, newdir: "Inode", newname: str, flags: int = 0) -> None:
        """rename(2) semantics within this file system, including
        RENAME_NOREPLACE and RENAME_EXCHANGE; the VFS has checked that a
        directory is not moved below itself."""
        _no(errno.EPERM)

    # ---- symlinks ----
    def readlink(self) -> str:
        _no(errno.EINVAL)

    # ---- data ----
    def open(self, flags: int) -> int:
        _no(errno.ENXIO)

    def host_key(self) -> Optional[Tuple[int, int]]:
        return None

    def stat_view(self) -> Optional[StatView]:
        """How the accelerator may give again the attributes the kernel last
        gave, until the kernel next handles a call that may change any
        (csrc/fastnotif.c): (STAT_* flags; the host ctime they hold for, None
        for the attributes' own; the kernel's descriptor of the host object
        to read live fields from by path, or -1), or None: only the kernel."""
        return None

    def open_recipe(self) -> Optional[OpenRecipe]:
        """How the accelerator may open this regular file for reading itself
        (csrc/fastopen.c): (dirfd, path, openat2's resolve or 0 for openat,
        flags to add), giving the object host_key() names; None: only the
        kernel opens it."""
        return None

    # ---- extended attributes ----
    def getxattr(self, name: str) -> bytes:
        _no(errno.EOPNOTSUPP)

    def setxattr(self, name: str, value: bytes, flags: int) -> None:
        _no(errno.EOPNOTSUPP)

    def listxattr(self) -> Iterable[str]:
        return []

    def removexattr(self, name: str) -> None:
        _no(errno.EOPNOTSUPP)


def check_rename(name: str, newname: str, flags: int) -> None:
    """What every file system's rename() requires of its arguments."""
    check_name(name)
    check_name(newname)
    if flags & ~(RENAME_NOREPLACE | RENAME_EXCHANGE) or \
            flags & RENAME_NOREPLACE and flags & RENAME_EXCHANGE:
        _no(errno.EINVAL)


def check_name(name: str) -> None:
    """What every directory operation requires of a new name."""
    if not name or name in (".", "..") or "/" in name or "\0" in name:
        _no(errno.EINVAL)
    if len(name.encode("utf-8", "surrogateescape")) > 255:
        _no(errno.ENAMETOOLONG)
