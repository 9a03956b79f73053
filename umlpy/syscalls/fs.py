"""File-system syscalls that name paths: resolved by the VFS, never by the host.

Calls on descriptors the guest already holds (read, fstat, getdents64...) run
natively; these are the ones that turn a guest path into a host object.
"""
from __future__ import annotations

import errno
import os
import stat as st
import struct
from typing import Optional

from umlpy.host import procinfo
from umlpy.syscalls.call import AT_FDCWD, Call, Fd
from umlpy.syscalls.registry import syscall
from umlpy.vfs.namei import Lookup
from umlpy.vfs.statbuf import pack_stat, pack_statx

AT_SYMLINK_NOFOLLOW = 0x100
AT_REMOVEDIR = 0x200
AT_SYMLINK_FOLLOW = 0x400
AT_EACCESS = 0x200
AT_EMPTY_PATH = 0x1000
O_TMPFILE = os.O_TMPFILE


def dir_path(c: Call, dirfd: int) -> str:
    """The canonical guest path of a directory descriptor (or the cwd)."""
    if dirfd == AT_FDCWD:
        return c.task.fs.cwd
    tid = c.task.host_tid
    s = procinfo.fd_stat(tid, dirfd)
    if not st.S_ISDIR(s.st_mode):
        raise OSError(errno.ENOTDIR, "not a directory")
    path = c.kernel.vfs.guest_path_of(procinfo.fd_target(tid, dirfd))
    if path is None:
        raise OSError(errno.ENOENT, "directory no longer reachable")
    return path


def lookup(c: Call, dirfd: int, path: str, follow: bool) -> Lookup:
    cwd = c.task.fs.cwd if path.startswith("/") else dir_path(c, dirfd)
    return c.kernel.vfs.lookup(path, cwd, follow)


def fd_path(c: Call, fd: int) -> Optional[str]:
    """The guest path of any descriptor, or None (pipes, sockets...)."""
    return c.kernel.vfs.guest_path_of(procinfo.fd_target(c.task.host_tid, fd))


# ---- open ----
def do_open(c: Call, dirfd: int, path: str, flags: int, mode: int):
    if flags & os.O_PATH:
        flags &= os.O_PATH | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC
    follow = not flags & os.O_NOFOLLOW and not (flags & os.O_CREAT and flags & os.O_EXCL)
    if flags & os.O_CREAT or flags & O_TMPFILE == O_TMPFILE:
        mode = mode & 0o7777 & ~c.task.fs.umask
    with lookup(c, dirfd, path, follow) as lk:
        if lk.name == "" and flags & os.O_CREAT and not flags & O_TMPFILE == O_TMPFILE:
            raise OSError(errno.EISDIR, "is a directory")
        host_fd = lk.fs.open(lk.dirfd, lk.name, flags & ~os.O_CLOEXEC, mode)
    return Fd(host_fd, bool(flags & os.O_CLOEXEC))


@syscall("open")
def sys_open(c: Call):
    return do_open(c, AT_FDCWD, c.path(0), c.int(1), c.int(2))


@syscall("openat")
def sys_openat(c: Call):
    return do_open(c, c.fd(0), c.path(1), c.int(2), c.int(3))


@syscall("creat")
def sys_creat(c: Call):
    return do_open(c, AT_FDCWD, c.path(0), os.O_CREAT | os.O_WRONLY | os.O_TRUNC, c.int(1))


# ---- stat ----
def stat_at(c: Call, dirfd: int, path: Optional[str], flags: int) -> os.stat_result:
    if not path:
        if not flags & AT_EMPTY_PATH:
            raise OSError(errno.ENOENT, "empty path")
        if dirfd == AT_FDCWD:
            path = c.task.fs.cwd
        else:
            return procinfo.fd_stat(c.task.host_tid, dirfd)
    with lookup(c, dirfd, path, not flags & AT_SYMLINK_NOFOLLOW) as lk:
        return lk.fs.stat(lk.dirfd, lk.name)


def _path_arg(c: Call, i: int, flags: int) -> Optional[str]:
    if c.ptr(i) == 0 and flags & AT_EMPTY_PATH:
        return None
    return c.path(i)


@syscall("stat", "lstat")
def sys_stat(c: Call) -> int:
    flags = AT_SYMLINK_NOFOLLOW if c.nr == 6 else 0
    c.write(c.ptr(1), pack_stat(stat_at(c, AT_FDCWD, c.path(0), flags)))
    return 0


@syscall("newfstatat")
def sys_newfstatat(c: Call) -> int:
    flags = c.int(3)
    s = stat_at(c, c.fd(0), _path_arg(c, 1, flags), flags)
    c.write(c.ptr(2), pack_stat(s))
    return 0


@syscall("statx", support="partial", note="no birth time, no attributes")
def sys_statx(c: Call) -> int:
    flags = c.int(2)
    s = stat_at(c, c.fd(0), _path_arg(c, 1, flags), flags)
    c.write(c.ptr(4), pack_statx(s))
    return 0


# ---- access, readlink ----
def access_at(c: Call, dirfd: int, path: str, mode: int, flags: int) -> int:
    if mode & ~7:
        return -errno.EINVAL
    with lookup(c, dirfd, path, not flags & AT_SYMLINK_NOFOLLOW) as lk:
        lk.fs.stat(lk.dirfd, lk.name)           # ENOENT first, as Linux
        lk.fs.access(lk.dirfd, lk.name, mode)
    return 0


@syscall("access")
def sys_access(c: Call) -> int:
    return access_at(c, AT_FDCWD, c.path(0), c.int(1), 0)


@syscall("faccessat")
def sys_faccessat(c: Call) -> int:
    return access_at(c, c.fd(0), c.path(1), c.int(2), 0)


@syscall("faccessat2")
def sys_faccessat2(c: Call) -> int:
    return access_at(c, c.fd(0), c.path(1), c.int(2), c.int(3))


def readlink_at(c: Call, dirfd: int, path: str, buf: int, size: int) -> int:
    if size <= 0:
        return -errno.EINVAL
    with lookup(c, dirfd, path, False) as lk:
        target = os.fsencode(lk.fs.readlink(lk.dirfd, lk.name))
    data = target[:size]
    c.write(buf, data)
    return len(data)


@syscall("readlink")
def sys_readlink(c: Call) -> int:
    return readlink_at(c, AT_FDCWD, c.path(0), c.ptr(1), c.int(2))


@syscall("readlinkat")
def sys_readlinkat(c: Call) -> int:
    return readlink_at(c, c.fd(0), c.path(1), c.ptr(2), c.int(3))


# ---- cwd ----
@syscall("getcwd")
def sys_getcwd(c: Call) -> int:
    data = os.fsencode(c.task.fs.cwd) + b"\0"
    if c.long(1) < len(data):
        return -errno.ERANGE
    c.write(c.ptr(0), data)
    return len(data)


def _set_cwd(c: Call, lk: Lookup) -> int:
    if lk.name:
        s = lk.fs.stat(lk.dirfd, lk.name)
        if not st.S_ISDIR(s.st_mode):
            return -errno.ENOTDIR
    lk.fs.access(lk.dirfd, lk.name, os.X_OK)
    c.task.fs.cwd = lk.path
    return 0


@syscall("chdir")
def sys_chdir(c: Call) -> int:
    with lookup(c, AT_FDCWD, c.path(0), True) as lk:
        return _set_cwd(c, lk)


@syscall("fchdir")
def sys_fchdir(c: Call) -> int:
    path = dir_path(c, c.fd(0))
    with c.kernel.vfs.lookup(path) as lk:
        return _set_cwd(c, lk)


@syscall("umask")
def sys_umask(c: Call) -> int:
    old = c.task.fs.umask
    c.task.fs.umask = c.int(0) & 0o777
    return old


# ---- creating and removing names ----
def mkdir_at(c: Call, dirfd: int, path: str, mode: int) -> int:
    with lookup(c, dirfd, path, False) as lk:
        lk.fs.mkdir(lk.dirfd, lk.name, mode & 0o7777 & ~c.task.fs.umask)
    return 0


@syscall("mkdir")
def sys_mkdir(c: Call) -> int:
    return mkdir_at(c, AT_FDCWD, c.path(0), c.int(1))


@syscall("mkdirat")
def sys_mkdirat(c: Call) -> int:
    return mkdir_at(c, c.fd(0), c.path(1), c.int(2))


def mknod_at(c: Call, dirfd: int, path: str, mode: int, dev: int) -> int:
    perm = mode & 0o7777 & ~c.task.fs.umask
    with lookup(c, dirfd, path, False) as lk:
        lk.fs.mknod(lk.dirfd, lk.name, st.S_IFMT(mode) | perm, dev)
    return 0


@syscall("mknod")
def sys_mknod(c: Call) -> int:
    return mknod_at(c, AT_FDCWD, c.path(0), c.int(1), c.args[2])


@syscall("mknodat")
def sys_mknodat(c: Call) -> int:
    return mknod_at(c, c.fd(0), c.path(1), c.int(2), c.args[3])


def unlink_at(c: Call, dirfd: int, path: str, is_dir: bool) -> int:
    with lookup(c, dirfd, path, False) as lk:
        if is_dir and lk.name in ("", ".."):
            raise OSError(errno.EBUSY if not lk.name else errno.ENOTEMPTY, "busy")
        lk.fs.unlink(lk.dirfd, lk.name, is_dir)
    return 0


@syscall("unlink")
def sys_unlink(c: Call) -> int:
    return unlink_at(c, AT_FDCWD, c.path(0), False)


@syscall("rmdir")
def sys_rmdir(c: Call) -> int:
    return unlink_at(c, AT_FDCWD, c.path(0), True)


@syscall("unlinkat")
def sys_unlinkat(c: Call) -> int:
    flags = c.int(2)
    if flags & ~AT_REMOVEDIR:
        return -errno.EINVAL
    return unlink_at(c, c.fd(0), c.path(1), bool(flags & AT_REMOVEDIR))


def _same_mount(a: Lookup, b: Lookup) -> None:
    if a.mount is not b.mount:
        raise OSError(errno.EXDEV, "cross-device link")


def rename_at(c: Call, od: int, op: str, nd: int, np: str, flags: int) -> int:
    with lookup(c, od, op, False) as src, lookup(c, nd, np, False) as dst:
        _same_mount(src, dst)
        src.fs.rename(src.dirfd, src.name, dst.dirfd, dst.name, flags)
    return 0


@syscall("rename")
def sys_rename(c: Call) -> int:
    return rename_at(c, AT_FDCWD, c.path(0), AT_FDCWD, c.path(1), 0)


@syscall("renameat")
def sys_renameat(c: Call) -> int:
    return rename_at(c, c.fd(0), c.path(1), c.fd(2), c.path(3), 0)


@syscall("renameat2")
def sys_renameat2(c: Call) -> int:
    return rename_at(c, c.fd(0), c.path(1), c.fd(2), c.path(3), c.int(4))


def link_at(c: Call, od: int, op: str, nd: int, np: str, flags: int) -> int:
    if flags & ~(AT_SYMLINK_FOLLOW | AT_EMPTY_PATH):
        return -errno.EINVAL
    with lookup(c, od, op, bool(flags & AT_SYMLINK_FOLLOW)) as src, \
            lookup(c, nd, np, False) as dst:
        _same_mount(src, dst)
        src.fs.link(src.dirfd, src.name, dst.dirfd, dst.name)
    return 0


@syscall("link")
def sys_link(c: Call) -> int:
    return link_at(c, AT_FDCWD, c.path(0), AT_FDCWD, c.path(1), 0)


@syscall("linkat")
def sys_linkat(c: Call) -> int:
    return link_at(c, c.fd(0), c.path(1), c.fd(2), c.path(3), c.int(4))


def symlink_at(c: Call, target: str, dirfd: int, path: str) -> int:
    if not target:
        return -errno.ENOENT
    with lookup(c, dirfd, path, False) as lk:
        lk.fs.symlink(target, lk.dirfd, lk.name)
    return 0


@syscall("symlink")
def sys_symlink(c: Call) -> int:
    return symlink_at(c, c.path(0), AT_FDCWD, c.path(1))


@syscall("symlinkat")
def sys_symlinkat(c: Call) -> int:
    return symlink_at(c, c.path(0), c.fd(1), c.path(2))


# ---- attributes ----
def _on_target(c: Call, dirfd: int, path: Optional[str], flags: int):
    """A lookup of the object a *at call acts on (AT_EMPTY_PATH: dirfd itself)."""
    if not path and flags & AT_EMPTY_PATH and dirfd != AT_FDCWD:
        path = fd_path(c, dirfd)
        if path is None:
            raise OSError(errno.EBADF, "not a file-system object")
    elif not path:
        raise OSError(errno.ENOENT, "empty path")
    return lookup(c, dirfd, path, not flags & AT_SYMLINK_NOFOLLOW)


@syscall("chmod")
def sys_chmod(c: Call) -> int:
    with lookup(c, AT_FDCWD, c.path(0), True) as lk:
        lk.fs.chmod(lk.dirfd, lk.name, c.int(1) & 0o7777)
    return 0


@syscall("fchmodat")
def sys_fchmodat(c: Call) -> int:
    with lookup(c, c.fd(0), c.path(1), True) as lk:
        lk.fs.chmod(lk.dirfd, lk.name, c.int(2) & 0o7777)
    return 0


def chown_at(c: Call, dirfd: int, path: Optional[str], uid: int, gid: int, flags: int) -> int:
    with _on_target(c, dirfd, path, flags) as lk:
        lk.fs.chown(lk.dirfd, lk.name, uid, gid)
    return 0


@syscall("chown", "lchown")
def sys_chown(c: Call) -> int:
    flags = AT_SYMLINK_NOFOLLOW if c.nr == 94 else 0
    return chown_at(c, AT_FDCWD, c.path(0), c.int(1), c.int(2), flags)


@syscall("fchownat")
def sys_fchownat(c: Call) -> int:
    flags = c.int(4)
    return chown_at(c, c.fd(0), _path_arg(c, 1, flags), c.int(2), c.int(3), flags)


def utimens_at(c: Call, dirfd: int, path: Optional[str], times: Optional[bytes], flags: int) -> int:
    if path is None:        # utimensat(fd, NULL, ...): the descriptor itself
        path = fd_path(c, dirfd) if dirfd != AT_FDCWD else None
        if path is None:
            raise OSError(errno.EBADF if dirfd != AT_FDCWD else errno.EFAULT, "bad descriptor")
        dirfd = AT_FDCWD
    with lookup(c, dirfd, path, not flags & AT_SYMLINK_NOFOLLOW) as lk:
        lk.fs.utimens(lk.dirfd, lk.name, times)
    return 0


@syscall("utimensat")
def sys_utimensat(c: Call) -> int:
    times = c.mem.read(c.ptr(2), 32) if c.ptr(2) else None
    return utimens_at(c, c.fd(0), c.path_or_none(1), times, c.int(3))


def _timevals(c: Call, ptr: int) -> Optional[bytes]:
    if not ptr:
        return None
    a_s, a_us, m_s, m_us = struct.unpack("<qqqq", c.mem.read(ptr, 32))
    if not (0 <= a_us < 1_000_000 and 0 <= m_us < 1_000_000):
        raise OSError(errno.EINVAL, "bad timeval")
    return struct.pack("<qqqq", a_s, a_us * 1000, m_s, m_us * 1000)


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
        times = struct.pack("<qqqq", a, 0, m, 0)
    return utimens_at(c, AT_FDCWD, c.path(0), times, 0)


@syscall("truncate")
def sys_truncate(c: Call) -> int:
    if c.long(1) < 0:
        return -errno.EINVAL
    with lookup(c, AT_FDCWD, c.path(0), True) as lk:
        lk.fs.truncate(lk.dirfd, lk.name, c.long(1))
    return 0


@syscall("statfs")
def sys_statfs(c: Call) -> int:
    with lookup(c, AT_FDCWD, c.path(0), True) as lk:
        c.write(c.ptr(1), lk.fs.statfs(lk.dirfd, lk.name))
    return 0
