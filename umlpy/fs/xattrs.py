"""Extended attributes kept in memory, with Linux's rules (tmpfs, and any
other file system whose inodes live in the kernel's memory)."""
from __future__ import annotations

import errno
import os
import stat as st
from typing import Dict, Iterable

XATTR_CREATE, XATTR_REPLACE = 1, 2
XATTR_SIZE_MAX = 65536
XATTR_NAME_MAX = 255
XATTR_PREFIXES = ("user.", "trusted.", "security.")


def _err(code: int) -> OSError:
    return OSError(code, os.strerror(code))


def check_name(name: str) -> None:
    if len(name.encode("utf-8", "surrogateescape")) > XATTR_NAME_MAX:
        raise _err(errno.ERANGE)
    if not name.startswith(XATTR_PREFIXES):
        raise _err(errno.EOPNOTSUPP)        # system.* (ACLs) and unknown namespaces
    if name in XATTR_PREFIXES:
        raise _err(errno.EINVAL)            # a namespace with no name


class XattrStore:
    """Mixin for an Inode: a dict of xattrs. The inode provides `mode`,
    `_rw()` (EROFS check) and `touch_ctime()`. Who may touch trusted.* and
    security.* is the VFS's to check."""

    xattrs: Dict[str, bytes]

    def getxattr(self, name: str) -> bytes:
        check_name(name)
        try:
            return self.xattrs[name]
        except KeyError:
            raise _err(errno.ENODATA) from None

    def setxattr(self, name: str, value: bytes, flags: int) -> None:
        check_name(name)
        if flags & ~(XATTR_CREATE | XATTR_REPLACE):
            raise _err(errno.EINVAL)
        if len(value) > XATTR_SIZE_MAX:
            raise _err(errno.E2BIG)
        # as Linux: user.* only on regular files and directories
        if name.startswith("user.") and not (st.S_ISREG(self.mode) or st.S_ISDIR(self.mode)):
            raise _err(errno.EPERM)
        self._rw()
        if flags & XATTR_CREATE and name in self.xattrs:
            raise _err(errno.EEXIST)
        if flags & XATTR_REPLACE and name not in self.xattrs:
            raise _err(errno.ENODATA)
        self.xattrs[name] = bytes(value)
        self.touch_ctime()

    def listxattr(self) -> Iterable[str]:
        return list(self.xattrs)

    def removexattr(self, name: str) -> None:
        check_name(name)
        self._rw()
        if name not in self.xattrs:
            raise _err(errno.ENODATA)
        del self.xattrs[name]
        self.touch_ctime()
