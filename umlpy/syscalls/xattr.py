"""Extended attributes, by path and by descriptor, kept by each file system."""
from __future__ import annotations

import errno
import os
import stat as st

from umlpy.syscalls.call import AT_FDCWD, Call
from umlpy.syscalls.fs import walk
from umlpy.syscalls.fs_attr import fd_object
from umlpy.syscalls.registry import syscall
from umlpy.vfs import perm
from umlpy.vfs.mount import Path

XATTR_NAME_MAX = 255
XATTR_SIZE_MAX = 65536
XATTR_LIST_MAX = 65536
XATTR_CREATE, XATTR_REPLACE = 1, 2
_PRIVILEGED = ("trusted.",)
_KNOWN = ("user.", "trusted.", "security.", "system.")


def _target(c: Call) -> Path:
    """Argument 0: a path (l* forms do not follow) or a descriptor (f* forms)."""
    if c.nr in (190, 193, 196, 199):       # fsetxattr fgetxattr flistxattr fremovexattr
        return fd_object(c, c.fd(0))
    follow = c.nr in (188, 191, 194, 197)
    return walk(c, AT_FDCWD, c.path(0), follow).must_exist()


def _name(c: Call, i: int) -> str:
    raw = c.mem.read_str(c.ptr(i), XATTR_NAME_MAX + 1)
    if not raw or len(raw) > XATTR_NAME_MAX:
        raise OSError(errno.ERANGE, "bad xattr name")
    name = os.fsdecode(raw)
    if not name.startswith(_KNOWN):
        raise OSError(errno.EOPNOTSUPP, "unknown namespace")
    return name


def _check(c: Call, p: Path, name: str, write: bool) -> None:
    creds = c.task.creds
    if name.startswith(_PRIVILEGED) and creds.euid != 0:
        raise OSError(errno.EPERM, "privileged namespace")
    a = p.inode.getattr()
    if name.startswith("user."):
        if not (st.S_ISREG(a.mode) or st.S_ISDIR(a.mode)):
            raise OSError(errno.EPERM if write else errno.ENODATA, "no user xattrs here")
    if write:
        if p.mount.readonly:
            raise OSError(errno.EROFS, "read-only file system")
        if name.startswith("security.") and creds.euid != 0:
            raise OSError(errno.EPERM, "privileged namespace")
        perm.permission(a, creds, perm.MAY_WRITE)
    elif name.startswith("user."):
        perm.permission(a, creds, perm.MAY_READ)


def _out(c: Call, ptr: int, size: int, data: bytes) -> int:
    if size == 0:
        return len(data)
    if size < len(data):
        return -errno.ERANGE
    c.write(ptr, data)
    return len(data)


@syscall("getxattr", "lgetxattr", "fgetxattr")
def sys_getxattr(c: Call) -> int:
    p = _target(c)
    name = _name(c, 1)
    _check(c, p, name, False)
    return _out(c, c.ptr(2), c.long(3), p.inode.getxattr(name))


@syscall("listxattr", "llistxattr", "flistxattr")
def sys_listxattr(c: Call) -> int:
    p = _target(c)
    names = p.inode.listxattr()
    if c.task.creds.euid != 0:
        names = [n for n in names if not n.startswith(_PRIVILEGED)]
    data = b"".join(os.fsencode(n) + b"\0" for n in names)
    if len(data) > XATTR_LIST_MAX:
        return -errno.E2BIG
    return _out(c, c.ptr(1), c.long(2), data)


@syscall("setxattr", "lsetxattr", "fsetxattr")
def sys_setxattr(c: Call) -> int:
    size, flags = c.long(3), c.int(4)
    if flags & ~(XATTR_CREATE | XATTR_REPLACE):
        return -errno.EINVAL
    if size < 0 or size > XATTR_SIZE_MAX:
        return -errno.E2BIG
    name = _name(c, 1)
    value = c.mem.read(c.ptr(2), size) if size else b""
    p = _target(c)
    _check(c, p, name, True)
    p.inode.setxattr(name, value, flags)
    return 0


@syscall("removexattr", "lremovexattr", "fremovexattr")
def sys_removexattr(c: Call) -> int:
    name = _name(c, 1)
    p = _target(c)
    _check(c, p, name, True)
    p.inode.removexattr(name)
    return 0
