"""Extended attributes by path (the fd forms run natively)."""
from __future__ import annotations

import errno
import os
import stat as st

from umlpy.syscalls.call import AT_FDCWD, Call
from umlpy.syscalls.fs import lookup
from umlpy.syscalls.registry import syscall

XATTR_NAME_MAX = 255
XATTR_SIZE_MAX = 65536


def _object_fd(c: Call, follow: bool) -> int:
    """An O_PATH descriptor of the named object; symlinks carry no xattrs here."""
    with lookup(c, AT_FDCWD, c.path(0), follow) as lk:
        fd = lk.fs._inode_fd(lk.dirfd, lk.name)
    if st.S_ISLNK(os.fstat(fd).st_mode):
        os.close(fd)
        raise OSError(errno.ENODATA if c.nr in (192,) else errno.EPERM, "symlink")
    return fd


def _name(c: Call, i: int) -> str:
    raw = c.mem.read_str(c.ptr(i), XATTR_NAME_MAX + 1)
    if not raw or len(raw) > XATTR_NAME_MAX:
        raise OSError(errno.ERANGE, "bad xattr name")
    return os.fsdecode(raw)


def _out(c: Call, ptr: int, size: int, data: bytes) -> int:
    if size == 0:
        return len(data)
    if size < len(data):
        return -errno.ERANGE
    c.write(ptr, data)
    return len(data)


@syscall("getxattr", "lgetxattr")
def sys_getxattr(c: Call) -> int:
    fd = _object_fd(c, c.nr == 191)
    try:
        value = os.getxattr(f"/proc/self/fd/{fd}", _name(c, 1))
    finally:
        os.close(fd)
    return _out(c, c.ptr(2), c.long(3), value)


@syscall("listxattr", "llistxattr")
def sys_listxattr(c: Call) -> int:
    fd = _object_fd(c, c.nr == 194)
    try:
        names = os.listxattr(f"/proc/self/fd/{fd}")
    finally:
        os.close(fd)
    data = b"".join(os.fsencode(n) + b"\0" for n in names)
    return _out(c, c.ptr(1), c.long(2), data)


@syscall("setxattr", "lsetxattr")
def sys_setxattr(c: Call) -> int:
    size = c.long(3)
    if size < 0 or size > XATTR_SIZE_MAX:
        return -errno.E2BIG
    name = _name(c, 1)
    value = c.mem.read(c.ptr(2), size) if size else b""
    fd = _object_fd(c, c.nr == 188)
    try:
        os.setxattr(f"/proc/self/fd/{fd}", name, value, c.int(4))
    finally:
        os.close(fd)
    return 0


@syscall("removexattr", "lremovexattr")
def sys_removexattr(c: Call) -> int:
    name = _name(c, 1)
    fd = _object_fd(c, c.nr == 197)
    try:
        os.removexattr(f"/proc/self/fd/{fd}", name)
    finally:
        os.close(fd)
    return 0
