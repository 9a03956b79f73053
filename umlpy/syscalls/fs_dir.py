"""Directories: listing (getdents), the cwd, chroot, umask."""
from __future__ import annotations

import errno
import os
import struct

from umlpy.syscalls.call import AT_FDCWD, Call
from umlpy.syscalls.fs import walk
from umlpy.syscalls.registry import syscall
from umlpy.vfs import perm
from umlpy.vfs.inode import DT_DIR
from umlpy.vfs.mount import Path

_DIRENT64 = struct.Struct("<QqHB")      # d_ino, d_off, d_reclen, d_type; then the name
_DIRENT = struct.Struct("<QQH")         # the old layout: d_type is the record's last byte


def listing(c: Call, path: Path) -> list:
    """The entries of a directory as getdents shows them, . and .. first."""
    parent = c.kernel.vfs.walker.up(path, c.task.fs.root)
    out = [(".", path.inode.ino, DT_DIR), ("..", parent.inode.ino, DT_DIR)]
    out.extend(path.inode.readdir())
    glue = c.kernel.vfs.mounts.glue_names(path)
    if glue:
        have = {e[0] for e in out}
        out.extend((name, inode.ino, DT_DIR) for name, inode in glue.items() if name not in have)
    return out


def _pack64(name: bytes, ino: int, off: int, dtype: int) -> bytes:
    reclen = (_DIRENT64.size + len(name) + 1 + 7) & ~7
    rec = _DIRENT64.pack(ino, off, reclen, dtype) + name
    return rec + bytes(reclen - len(rec))


def _pack_old(name: bytes, ino: int, off: int, dtype: int) -> bytes:
    reclen = (_DIRENT.size + len(name) + 2 + 7) & ~7
    rec = _DIRENT.pack(ino, off, reclen) + name
    return rec + bytes(reclen - len(rec) - 1) + bytes((dtype,))


def do_getdents(c: Call, pack) -> int:
    fd, buf, count = c.fd(0), c.ptr(1), c.args[2] & 0xFFFFFFFF
    s, h = c.kernel.fds.lookup(c.task, fd)
    if h is not None and h.o_path:
        return -errno.EBADF
    if h is None or not h.is_dir:
        return -errno.ENOTDIR
    k = c.kernel.fds.dup(c.task, fd)
    try:
        pos = os.lseek(k, 0, os.SEEK_CUR)
        if pos == 0 or h.listing is None:
            h.listing = listing(c, h.path)
            h.stat_ahead = 0
        entries = h.listing
        out = bytearray()
        i = pos
        while i < len(entries):
            name, ino, dtype = entries[i]
            rec = pack(os.fsencode(name), ino, i + 1, dtype)
            if len(out) + len(rec) > count:
                if not out:
                    return -errno.EINVAL
                break
            out += rec
            i += 1
        if out:
            c.write(buf, bytes(out))
            os.lseek(k, i, os.SEEK_SET)
        return len(out)
    finally:
        os.close(k)


@syscall("getdents64")
def sys_getdents64(c: Call) -> int:
    return do_getdents(c, _pack64)


@syscall("getdents")
def sys_getdents(c: Call) -> int:
    return do_getdents(c, _pack_old)


# ---- cwd and root ----
@syscall("getcwd")
def sys_getcwd(c: Call) -> int:
    fs = c.task.fs
    if fs.cwd.inode.getattr().nlink == 0:
        return -errno.ENOENT
    text = c.kernel.vfs.path_string(fs.cwd, fs.root)
    if text is None:
        text = "(unreachable)/"
    data = os.fsencode(text) + b"\0"
    if (c.args[1] & 0xFFFFFFFFFFFFFFFF) < len(data):
        return -errno.ERANGE
    c.write(c.ptr(0), data)
    return len(data)


def _enter(c: Call, p: Path) -> Path:
    a = p.inode.getattr()
    if not p.inode.is_dir():
        raise OSError(errno.ENOTDIR, "not a directory")
    perm.permission(a, c.task.creds, perm.MAY_EXEC)
    return p


@syscall("chdir")
def sys_chdir(c: Call) -> int:
    c.task.fs.cwd = _enter(c, walk(c, AT_FDCWD, c.path(0), True).must_exist())
    c.kernel.mirror_sharers(c.task.fs)
    return 0


@syscall("fchdir")
def sys_fchdir(c: Call) -> int:
    c.task.fs.cwd = _enter(c, c.kernel.fds.dir_path(c.task, c.fd(0)))
    c.kernel.mirror_sharers(c.task.fs)
    return 0


@syscall("chroot")
def sys_chroot(c: Call) -> int:
    p = _enter(c, walk(c, AT_FDCWD, c.path(0), True).must_exist())
    if c.task.creds.euid != 0:
        return -errno.EPERM
    c.task.fs.root = p
    c.kernel.mirror_sharers(c.task.fs)
    return 0


@syscall("umask")
def sys_umask(c: Call) -> int:
    old = c.task.fs.umask
    c.task.fs.umask = c.int(0) & 0o777
    return old
