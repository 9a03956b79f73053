"""File-system syscalls that name paths: open, stat, access, readlink.

Every path is resolved by the VFS walk in the caller's root and cwd, never by
the host. What a call opens is a host descriptor the VFS chose, installed in
the guest by the kernel (seccomp ADDFD), so no guest-written path ever
reaches the host.
"""
from __future__ import annotations

import errno
import os
import stat as st
import struct
from typing import Optional, Tuple

from umlpy.syscalls import statcache
from umlpy.syscalls.call import AT_FDCWD, Call, Deferred, Fd
from umlpy.syscalls.registry import syscall
from umlpy.vfs import ops
from umlpy.vfs.mount import Path
from umlpy.vfs.namei import RESOLVE_ALL, RESOLVE_BENEATH, RESOLVE_IN_ROOT, Lookup
from umlpy.vfs.statbuf import attr_from_host, pack_stat, pack_statx

AT_SYMLINK_NOFOLLOW = 0x100
AT_REMOVEDIR = 0x200
AT_SYMLINK_FOLLOW = 0x400
AT_EACCESS = 0x200
AT_NO_AUTOMOUNT = 0x800
AT_EMPTY_PATH = 0x1000
AT_STATX_SYNC_TYPE = 0x6000
O_TMPFILE = os.O_TMPFILE
VALID_OPEN = 0o37777777 | O_TMPFILE


def walk(c: Call, dirfd: int, path: str, follow: bool, resolve: int = 0) -> Lookup:
    """Resolve a guest path as the calling task sees it."""
    if not path:
        raise OSError(errno.ENOENT, "empty path")   # before the descriptor, as Linux
    t = c.task
    if path.startswith("/") and not resolve:
        start = t.fs.root
    elif dirfd == AT_FDCWD:
        start = t.fs.cwd
    else:
        c.dir_stat, h = c.kernel.fds.dir_handle(t, dirfd)
        start = h.path
    return c.kernel.vfs.walker.walk(path, start, t.fs.root, t.creds, follow, resolve)


def fd_attr(c: Call, fd: int) -> tuple:
    """(Attr, Path or None) of what a guest descriptor refers to."""
    s, h = c.kernel.fds.lookup(c.task, fd)
    if h is None:
        return attr_from_host(s), None
    a = ops.getattr_of(h.path)
    statcache.publish_fd(c, s, h.path, a)
    return a, h.path


def object_at(c: Call, dirfd: int, path: Optional[str], flags: int) -> Path:
    """The object a *at call acts on: the path, or with AT_EMPTY_PATH and an
    empty path, the descriptor's own object."""
    if not path:
        if not flags & AT_EMPTY_PATH:
            raise OSError(errno.ENOENT, "empty path")
        if dirfd == AT_FDCWD:
            return c.task.fs.cwd
        p = c.kernel.fds.path(c.task, dirfd)
        if p is None:
            raise OSError(errno.EBADF if dirfd < 0 else errno.EINVAL, "no file-system object")
        return p
    return walk(c, dirfd, path, not flags & AT_SYMLINK_NOFOLLOW).must_exist()


def path_arg(c: Call, i: int, flags: int) -> Optional[str]:
    """A path argument that AT_EMPTY_PATH allows to be NULL."""
    if c.ptr(i) == 0 and flags & AT_EMPTY_PATH:
        return None
    return c.path(i)


# ---- open ----
def do_open(c: Call, dirfd: int, path: str, flags: int, mode: int, resolve: int = 0):
    if flags & os.O_PATH:
        flags &= os.O_PATH | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC
    tmpfile = flags & O_TMPFILE == O_TMPFILE
    if flags & os.O_CREAT or tmpfile:
        mode = mode & 0o7777 & ~c.task.fs.umask
    follow = not flags & os.O_NOFOLLOW and not (flags & os.O_CREAT and flags & os.O_EXCL)
    try:
        lk = walk(c, dirfd, path, follow or tmpfile, resolve)
    except FileNotFoundError:       # a directory on the way is missing
        _missing(c, dirfd, path, flags, resolve)
        raise
    if lk.path is None and not flags & os.O_CREAT and not tmpfile:
        _missing(c, dirfd, path, flags, resolve)
        raise OSError(errno.ENOENT, "no such file or directory")
    if lk.trailing_slash and flags & os.O_CREAT and lk.path is None:
        raise OSError(errno.EISDIR, "is a directory")
    if not lk.name and lk.path is not None and flags & os.O_CREAT and not tmpfile:
        if flags & os.O_EXCL:       # "." or "..": O_EXCL is checked first, as Linux
            raise OSError(errno.EEXIST, "file exists")
        raise OSError(errno.EISDIR, "is a directory")
    k = c.kernel
    res = ops.open_(k.vfs, lk, c.task.creds, flags & ~os.O_CLOEXEC, mode, k.open_device)
    cloexec = bool(flags & os.O_CLOEXEC)
    if res.fifo:
        return Deferred(lambda: _open_fifo(res.fifo, flags), cloexec,
                        cancel=lambda: _wake_fifo_openers(res.fifo))
    created = lk.path is None and flags & os.O_CREAT and not tmpfile and res.path is not None
    if not flags & os.O_PATH and res.path is not None:
        statcache.publish_open(c, res.path)
        if created and not resolve:
            statcache.publish_create_dir(c, dirfd, path, lk)
        elif flags & (os.O_ACCMODE | os.O_CREAT | os.O_TRUNC) == os.O_RDONLY and not resolve:
            statcache.publish_opened_path(c, dirfd, path, bool(flags & os.O_NOFOLLOW), res.path)
    return Fd(res.fd, cloexec, _uncreate(c, lk, res.path) if created else None)


def _uncreate(c: Call, lk: Lookup, made: Path):
    """Remove the file an open just made, for a guest that cannot take its
    descriptor (EMFILE): Linux fails such an open before it creates."""
    def undo() -> None:
        try:
            ops.unlink(Lookup(lk.parent, lk.name, made), c.task.creds, c.kernel.vfs.mounts)
        except OSError:
            pass            # (gone already: nothing to take back)
    return undo


def _missing(c: Call, dirfd: int, path: str, flags: int, resolve: int) -> None:
    """A read-only open found no such file: C may give the next one its
    ENOENT (ld.so searches the same missing paths at every exec)."""
    if not resolve and flags & (os.O_ACCMODE | os.O_TRUNC) == os.O_RDONLY:
        statcache.publish_missing(c, dirfd, path, bool(flags & os.O_NOFOLLOW))


def _open_fifo(host_path: str, flags: int) -> int:
    """Runs off the event loop: a FIFO open blocks until the other end comes."""
    keep = os.O_ACCMODE | os.O_NONBLOCK | os.O_APPEND
    return os.open(host_path, (flags & keep) | os.O_CLOEXEC | os.O_NOCTTY | os.O_NOFOLLOW)


def _wake_fifo_openers(host_path: str) -> None:
    """An open of both ends never blocks and completes every open waiting for
    a partner: the kernel's worker blocked for a guest that died goes free."""
    try:
        os.close(os.open(host_path, os.O_RDWR | os.O_NONBLOCK | os.O_CLOEXEC | os.O_NOFOLLOW))
    except OSError:
        pass


@syscall("open")
def sys_open(c: Call):
    return do_open(c, AT_FDCWD, c.path(0), c.int(1), c.int(2))


@syscall("openat")
def sys_openat(c: Call):
    return do_open(c, c.fd(0), c.path(1), c.int(2), c.int(3))


@syscall("creat")
def sys_creat(c: Call):
    return do_open(c, AT_FDCWD, c.path(0), os.O_CREAT | os.O_WRONLY | os.O_TRUNC, c.int(1))


@syscall("openat2")
def sys_openat2(c: Call):
    size = c.long(3)
    if size < 24:
        return -errno.EINVAL
    if size > 4096:
        return -errno.E2BIG
    raw = c.mem.read(c.ptr(2), size)
    if any(raw[24:]):
        return -errno.E2BIG
    flags, mode, resolve = struct.unpack_from("<QQQ", raw)
    if flags & ~VALID_OPEN or resolve & ~RESOLVE_ALL or mode & ~0o7777:
        return -errno.EINVAL
    if resolve & RESOLVE_BENEATH and resolve & RESOLVE_IN_ROOT:
        return -errno.EINVAL
    if mode and not (flags & os.O_CREAT or flags & O_TMPFILE == O_TMPFILE):
        return -errno.EINVAL
    return do_open(c, c.fd(0), c.path(1), flags, mode, resolve)


# ---- stat ----
def stat_at(c: Call, dirfd: int, path: Optional[str], flags: int) -> tuple:
    """(Attr, mount id) of a path or, with AT_EMPTY_PATH, of a descriptor."""
    if not path and flags & AT_EMPTY_PATH and dirfd != AT_FDCWD:
        a, p = fd_attr(c, dirfd)
        return a, (p.mount.id if p is not None else 0)
    p = object_at(c, dirfd, path, flags)
    return ops.getattr_of(p), p.mount.id


def stat_path(c: Call, dirfd: int, path: Optional[str], flags: int):
    """stat(2)'s Attr; a path's answer is published for the accelerator to
    give again when the walk and the attributes allow (statcache)."""
    if not path:
        return stat_at(c, dirfd, path, flags)[0]
    return _walk_published(c, dirfd, path, bool(flags & AT_SYMLINK_NOFOLLOW))[1]


def _walk_published(c: Call, dirfd: int, path: str, nofollow: bool) -> Tuple[Path, object]:
    """The Path and Attr that non-empty `path` names; the answer (or its
    ENOENT) is published for the accelerator when the walk allows."""
    t = c.task
    dir_handle = None
    prefix = b""            # absolute, or from the cwd
    start = t.fs.cwd
    if path[:1] != "/" and dirfd != AT_FDCWD:   # keyed by the descriptor's host object
        s, dir_handle = c.kernel.fds.dir_handle(t, dirfd)
        prefix = statcache.dir_key(s)
        start = dir_handle.path
    try:
        lk = c.kernel.vfs.walker.walk(path, start, t.fs.root, t.creds, not nofollow)
    except FileNotFoundError:   # a directory on the way is missing
        lk = None
    key = prefix + os.fsencode(path)
    stable = c.kernel.vfs.walker.last_stable
    if lk is None or lk.path is None:
        if stable:
            statcache.publish_path(c, key, nofollow, None, None)
        raise OSError(errno.ENOENT, "no such file or directory")
    a = ops.getattr_of(lk.path)
    if stable:
        statcache.publish_path(c, key, nofollow, lk.path.inode, a, lk.path)
        if dir_handle is not None and dir_handle.listing is not None and "/" not in path:
            statcache.publish_listing_ahead(c, dir_handle, prefix, path, nofollow)
    return lk.path, a


@syscall("stat", "lstat")
def sys_stat(c: Call) -> int:
    flags = AT_SYMLINK_NOFOLLOW if c.nr == 6 else 0
    c.write(c.ptr(1), pack_stat(stat_path(c, AT_FDCWD, c.path(0), flags)))
    return 0


@syscall("fstat")
def sys_fstat(c: Call) -> int:
    a, _ = fd_attr(c, c.fd(0))
    c.write(c.ptr(1), pack_stat(a))
    return 0


@syscall("newfstatat")
def sys_newfstatat(c: Call) -> int:
    flags = c.int(3)
    if flags & ~(AT_SYMLINK_NOFOLLOW | AT_EMPTY_PATH | AT_NO_AUTOMOUNT):
        return -errno.EINVAL
    a = stat_path(c, c.fd(0), path_arg(c, 1, flags), flags)
    c.write(c.ptr(2), pack_stat(a))
    return 0


@syscall("statx", support="partial", note="no attributes, no dio alignment")
def sys_statx(c: Call) -> int:
    flags = c.int(2)
    if flags & ~(AT_SYMLINK_NOFOLLOW | AT_EMPTY_PATH | AT_NO_AUTOMOUNT | AT_STATX_SYNC_TYPE):
        return -errno.EINVAL
    if c.int(3) & 0x80000000:           # STATX__RESERVED
        return -errno.EINVAL
    a, mnt = stat_at(c, c.fd(0), path_arg(c, 1, flags), flags)
    c.write(c.ptr(4), pack_statx(a, mnt))
    return 0


# ---- access, readlink ----
def access_at(c: Call, dirfd: int, path: Optional[str], mode: int, flags: int) -> int:
    if mode & ~7 or flags & ~(AT_EACCESS | AT_SYMLINK_NOFOLLOW | AT_EMPTY_PATH):
        return -errno.EINVAL
    if path:                # ld.so's probe of /etc/ld.so.preload: C answers the next
        p = _walk_published(c, dirfd, path, bool(flags & AT_SYMLINK_NOFOLLOW))[0]
    else:
        p = object_at(c, dirfd, path, flags)
    creds = c.task.creds
    if not flags & AT_EACCESS:          # access(2) checks with the real ids
        creds = creds.clone()
        creds.fsuid, creds.fsgid = creds.ruid, creds.rgid
    ops.access(p, creds, mode)
    return 0


@syscall("access")
def sys_access(c: Call) -> int:
    return access_at(c, AT_FDCWD, c.path(0), c.int(1), 0)


@syscall("faccessat")
def sys_faccessat(c: Call) -> int:
    return access_at(c, c.fd(0), c.path(1), c.int(2), 0)


@syscall("faccessat2")
def sys_faccessat2(c: Call) -> int:
    flags = c.int(3)
    return access_at(c, c.fd(0), path_arg(c, 1, flags), c.int(2), flags)


def readlink_at(c: Call, dirfd: int, path: str, buf: int, size: int) -> int:
    if size <= 0:
        return -errno.EINVAL
    if not path and dirfd != AT_FDCWD:
        p = c.kernel.fds.path(c.task, dirfd)
        if p is None:
            return -errno.ENOENT
    else:
        p = walk(c, dirfd, path, False).must_exist()
    if not st.S_ISLNK(p.inode.mode):
        return -errno.EINVAL
    data = os.fsencode(p.inode.readlink())[:size]
    c.write(buf, data)
    return len(data)


@syscall("readlink")
def sys_readlink(c: Call) -> int:
    return readlink_at(c, AT_FDCWD, c.path(0), c.ptr(1), c.int(2))


@syscall("readlinkat")
def sys_readlinkat(c: Call) -> int:
    return readlink_at(c, c.fd(0), c.path(1), c.ptr(2), c.int(3))

