"""Syscalls that change attributes: modes, owners, times, sizes; and statfs."""
from __future__ import annotations

import errno
import os
import struct
from typing import Optional

from umlpy.fs import hostcalls
from umlpy.syscalls.call import AT_FDCWD, Call
from umlpy.syscalls.fs import (AT_EMPTY_PATH, AT_SYMLINK_NOFOLLOW, object_at, path_arg,
                               walk)
from umlpy.syscalls.registry import syscall
from umlpy.vfs import ops
from umlpy.vfs.inode import StatFs
from umlpy.vfs.mount import Path

_STATFS = struct.Struct("<7q2i3q32x")       # struct statfs, 120 bytes


def fd_object(c: Call, fd: int) -> Path:
    """The object of an f* call (fchmod, fchown, futimens, f*xattr): EBADF
    through an O_PATH descriptor, as Linux."""
    _s, h = c.kernel.fds.lookup(c.task, fd)
    if h is None:
        raise OSError(errno.EPERM if fd >= 0 else errno.EBADF, "not a file-system object")
    if h.o_path:
        raise OSError(errno.EBADF, "O_PATH descriptor")
    return h.path


# ---- chmod ----
@syscall("chmod")
def sys_chmod(c: Call) -> int:
    ops.chmod(walk(c, AT_FDCWD, c.path(0), True).must_exist(), c.task.creds, c.int(1) & 0o7777)
    return 0


@syscall("fchmod")
def sys_fchmod(c: Call) -> int:
    ops.chmod(fd_object(c, c.fd(0)), c.task.creds, c.int(1) & 0o7777)
    return 0


@syscall("fchmodat")
def sys_fchmodat(c: Call) -> int:
    ops.chmod(walk(c, c.fd(0), c.path(1), True).must_exist(), c.task.creds, c.int(2) & 0o7777)
    return 0


@syscall("fchmodat2")
def sys_fchmodat2(c: Call) -> int:
    flags = c.int(3)
    if flags & ~(AT_SYMLINK_NOFOLLOW | AT_EMPTY_PATH):
        return -errno.EINVAL
    ops.chmod(object_at(c, c.fd(0), path_arg(c, 1, flags), flags), c.task.creds,
              c.int(2) & 0o7777)
    return 0


# ---- chown ----
def chown_at(c: Call, dirfd: int, path: Optional[str], uid: int, gid: int, flags: int) -> int:
    if flags & ~(AT_SYMLINK_NOFOLLOW | AT_EMPTY_PATH):
        return -errno.EINVAL
    ops.chown(object_at(c, dirfd, path, flags), c.task.creds, uid, gid)
    return 0


@syscall("chown", "lchown")
def sys_chown(c: Call) -> int:
    flags = AT_SYMLINK_NOFOLLOW if c.nr == 94 else 0
    return chown_at(c, AT_FDCWD, c.path(0), c.owner(1), c.owner(2), flags)


@syscall("fchown")
def sys_fchown(c: Call) -> int:
    ops.chown(fd_object(c, c.fd(0)), c.task.creds, c.owner(1), c.owner(2))
    return 0


@syscall("fchownat")
def sys_fchownat(c: Call) -> int:
    flags = c.int(4)
    return chown_at(c, c.fd(0), path_arg(c, 1, flags), c.owner(2), c.owner(3), flags)


# ---- times ----
def utimens_at(c: Call, dirfd: int, path: Optional[str], times: Optional[tuple], flags: int) -> int:
    if flags & ~(AT_SYMLINK_NOFOLLOW | AT_EMPTY_PATH):
        return -errno.EINVAL
    if path is None:            # utimensat(fd, NULL, ...): the descriptor itself
        if dirfd == AT_FDCWD:
            return -errno.EFAULT
        target = fd_object(c, dirfd)
    else:
        target = object_at(c, dirfd, path, flags)
    ops.utimens(target, c.task.creds, times)
    return 0


def _timespecs(c: Call, ptr: int) -> Optional[tuple]:
    if not ptr:
        return None
    a_s, a_ns, m_s, m_ns = struct.unpack("<qqqq", c.mem.read(ptr, 32))
    return ((a_s, a_ns), (m_s, m_ns))


def _timevals(c: Call, ptr: int) -> Optional[tuple]:
    if not ptr:
        return None
    a_s, a_us, m_s, m_us = struct.unpack("<qqqq", c.mem.read(ptr, 32))
    if not (0 <= a_us < 1_000_000 and 0 <= m_us < 1_000_000):
        raise OSError(errno.EINVAL, "bad timeval")
    return ((a_s, a_us * 1000), (m_s, m_us * 1000))


@syscall("utimensat")
def sys_utimensat(c: Call) -> int:
    times = _timespecs(c, c.ptr(2))
    if times is not None and times[0][1] == times[1][1] == ops.UTIME_OMIT:
        return 0        # nothing to set: Linux looks at neither the path nor the flags
    return utimens_at(c, c.fd(0), c.path_or_none(1), times, c.int(3))


@syscall("utimes")
def sys_utimes(c: Call) -> int:
    return utimens_at(c, AT_FDCWD, c.path(0), _timevals(c, c.ptr(1)), 0)


@syscall("futimesat")
def sys_futimesat(c: Call) -> int:
    return utimens_at(c, c.fd(0), c.path(1), _timevals(c, c.ptr(2)), 0)


@syscall("utime")
def sys_utime(c: Call) -> int:
    times = None
    if c.ptr(1):
        a, m = struct.unpack("<qq", c.mem.read(c.ptr(1), 16))
        times = ((a, 0), (m, 0))
    return utimens_at(c, AT_FDCWD, c.path(0), times, 0)


# ---- size ----
@syscall("truncate")
def sys_truncate(c: Call) -> int:
    ops.truncate(walk(c, AT_FDCWD, c.path(0), True).must_exist(), c.task.creds, c.long(1))
    return 0


# ---- statfs ----
def pack_statfs(s: StatFs, dev: int) -> bytes:
    return _STATFS.pack(s.f_type, s.f_bsize, s.f_blocks, s.f_bfree, s.f_bavail, s.f_files,
                        s.f_ffree, dev & 0xFFFFFFFF, dev >> 32, s.f_namelen, s.f_frsize,
                        s.f_flags)


def statfs_of(p: Path) -> bytes:
    s = p.mount.fs.statfs()
    if p.mount.readonly:
        s.f_flags |= 1                  # ST_RDONLY
    return pack_statfs(s, p.mount.fs.dev)


@syscall("statfs")
def sys_statfs(c: Call) -> int:
    c.write(c.ptr(1), statfs_of(walk(c, AT_FDCWD, c.path(0), True).must_exist()))
    return 0


@syscall("fstatfs")
def sys_fstatfs(c: Call) -> int:
    p = c.kernel.fds.path(c.task, c.fd(0))
    if p is None:
        return _host_fstatfs(c)
    c.write(c.ptr(1), statfs_of(p))
    return 0


def _host_fstatfs(c: Call) -> int:
    """Pipes and sockets: the host's pipefs/sockfs numbers are what Linux shows too."""
    k = c.kernel.fds.dup(c.task, c.fd(0))
    try:
        c.write(c.ptr(1), hostcalls.fstatfs(k))
    finally:
        os.close(k)
    return 0
