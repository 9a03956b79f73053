"""Syscalls that create and remove names: mkdir, mknod, unlink, rename, link, symlink."""
from __future__ import annotations

import errno

from umlpy.syscalls import statcache
from umlpy.syscalls.call import AT_FDCWD, Call
from umlpy.syscalls.fs import AT_EMPTY_PATH, AT_REMOVEDIR, AT_SYMLINK_FOLLOW, walk
from umlpy.syscalls.registry import syscall
from umlpy.vfs import ops
from umlpy.vfs.namei import Lookup


def _umask(c: Call, mode: int) -> int:
    return mode & 0o7777 & ~c.task.fs.umask


def mkdir_at(c: Call, dirfd: int, path: str, mode: int) -> int:
    ops.mkdir(walk(c, dirfd, path, False), c.task.creds, _umask(c, mode) & 0o7777)
    return 0


@syscall("mkdir")
def sys_mkdir(c: Call) -> int:
    return mkdir_at(c, AT_FDCWD, c.path(0), c.int(1))


@syscall("mkdirat")
def sys_mkdirat(c: Call) -> int:
    return mkdir_at(c, c.fd(0), c.path(1), c.int(2))


def mknod_at(c: Call, dirfd: int, path: str, mode: int, dev: int) -> int:
    lk = walk(c, dirfd, path, False)
    if lk.trailing_slash:
        return -errno.ENOENT if lk.path is None else -errno.EEXIST
    ops.mknod(lk, c.task.creds, (mode & 0o170000) | _umask(c, mode), dev & 0xFFFFFFFF)
    return 0


@syscall("mknod")
def sys_mknod(c: Call) -> int:
    return mknod_at(c, AT_FDCWD, c.path(0), c.int(1), c.args[2])


@syscall("mknodat")
def sys_mknodat(c: Call) -> int:
    return mknod_at(c, c.fd(0), c.path(1), c.int(2), c.args[3])


def unlink_at(c: Call, dirfd: int, path: str, is_dir: bool) -> int:
    lk = walk(c, dirfd, path, False)
    mounts = c.kernel.vfs.mounts
    if is_dir:
        if path.rstrip("/").endswith("/.") or path.rstrip("/") == ".":
            return -errno.EINVAL
        ops.rmdir(lk, c.task.creds, mounts)
    else:
        if lk.trailing_slash and lk.path is not None and not lk.path.inode.is_dir():
            return -errno.ENOTDIR
        last = _last_name_size(lk)
        ops.unlink(lk, c.task.creds, mounts)
        if last is not None:
            c.kernel.vfs.handles.orphaned(last)
        statcache.publish_create_dir(c, dirfd, path, lk)    # rm -r, make clean: the next in C
    return 0


def _last_name_size(lk: Lookup):
    """The size of the regular file `lk` names when this is its last name, else None."""
    return None if lk.path is None else ops.last_name_size(lk.path.inode)


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


def _for_rename(c: Call, dirfd: int, path: str) -> Lookup:
    lk = walk(c, dirfd, path, False)
    if lk.name in ("", ".", ".."):
        raise OSError(errno.EBUSY if not lk.name else errno.EINVAL, "busy")
    return lk


def rename_at(c: Call, od: int, op: str, nd: int, np: str, flags: int) -> int:
    old = _for_rename(c, od, op)
    new = _for_rename(c, nd, np)
    if (old.trailing_slash or new.trailing_slash) and old.path is not None \
            and not old.path.inode.is_dir():
        return -errno.ENOTDIR
    replaced = None if flags & ops.RENAME_EXCHANGE else _last_name_size(new)
    ops.rename(old, new, c.task.creds, flags, c.kernel.vfs.mounts)
    if replaced is not None:
        c.kernel.vfs.handles.orphaned(replaced)
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
    if not op and flags & AT_EMPTY_PATH:
        if c.task.creds.fsuid != 0:
            return -errno.ENOENT            # CAP_DAC_READ_SEARCH only
        src_path = c.kernel.fds.path(c.task, od)
        if src_path is None:
            return -errno.ENOENT
        old = Lookup(src_path, src_path.dentry.name, src_path)
    else:
        old = walk(c, od, op, bool(flags & AT_SYMLINK_FOLLOW))
    new = walk(c, nd, np, False)
    if new.trailing_slash:
        return -errno.ENOENT if new.path is None else -errno.EEXIST
    ops.link(old, new, c.task.creds)
    return 0


@syscall("link")
def sys_link(c: Call) -> int:
    return link_at(c, AT_FDCWD, c.path(0), AT_FDCWD, c.path(1), 0)


@syscall("linkat")
def sys_linkat(c: Call) -> int:
    flags = c.int(4)
    op = c.path(1) if c.ptr(1) or not flags & AT_EMPTY_PATH else ""
    return link_at(c, c.fd(0), op, c.fd(2), c.path(3), flags)


def symlink_at(c: Call, target: str, dirfd: int, path: str) -> int:
    if not target:
        return -errno.ENOENT
    lk = walk(c, dirfd, path, False)
    if lk.trailing_slash:
        return -errno.ENOENT if lk.path is None else -errno.EEXIST
    ops.symlink(lk, c.task.creds, target)
    return 0


@syscall("symlink")
def sys_symlink(c: Call) -> int:
    return symlink_at(c, c.path(0), AT_FDCWD, c.path(1))


@syscall("symlinkat")
def sys_symlinkat(c: Call) -> int:
    return symlink_at(c, c.path(0), c.fd(1), c.path(2))
