"""Permission checks: the guest's credentials against the VFS's attributes.

Linux's generic_permission, in the guest's terms: the owner, group and other
bits; root (fsuid 0) passes read and write always and search/execute when
anyone may. The host's own checks still apply below these (a normal host user
cannot read what the host forbids him), so these can only narrow.
"""
from __future__ import annotations

import errno
import stat as st

from umlpy.vfs.inode import Attr

MAY_EXEC, MAY_WRITE, MAY_READ = 1, 2, 4


def _denied() -> OSError:
    return OSError(errno.EACCES, "permission denied")


def in_group(creds, gid: int) -> bool:
    return gid == creds.fsgid or gid in creds.groups


def permission(attr: Attr, creds, mask: int) -> None:
    """Raise EACCES unless `creds` may access an inode with `attr` for `mask`."""
    mode = attr.mode
    if creds.fsuid == 0:
        if mask & MAY_EXEC and not st.S_ISDIR(mode) and not mode & 0o111:
            raise _denied()
        return
    if attr.uid == creds.fsuid:
        bits = mode >> 6
    elif in_group(creds, attr.gid):
        bits = mode >> 3
    else:
        bits = mode
    if mask & ~bits & 7:
        raise _denied()


def is_owner(attr: Attr, creds) -> bool:
    """The owner or root (CAP_FOWNER): who may chmod, utime to a given time..."""
    return creds.fsuid == 0 or attr.uid == creds.fsuid


def check_owner(attr: Attr, creds) -> None:
    if not is_owner(attr, creds):
        raise OSError(errno.EPERM, "operation not permitted")


def may_delete(dir_attr: Attr, victim: Attr, creds) -> None:
    """Removing or renaming away an entry: write+search on the directory and
    the sticky bit rule (only the owner of the file or the directory)."""
    permission(dir_attr, creds, MAY_WRITE | MAY_EXEC)
    if sticky_limits(dir_attr, creds) and victim.uid != creds.fsuid:
        raise OSError(errno.EPERM, "sticky directory")


def sticky_limits(dir_attr: Attr, creds) -> bool:
    """In this directory, may the caller remove only the entries it owns?"""
    return bool(dir_attr.mode & st.S_ISVTX) and creds.fsuid not in (0, dir_attr.uid)


def check_chown(attr: Attr, creds, uid: int, gid: int) -> None:
    """chown(2) rules: only root changes the owner; the owner may change the
    group to one of his own groups."""
    if creds.fsuid == 0:
        return
    if uid != -1 and uid != attr.uid:
        raise OSError(errno.EPERM, "operation not permitted")
    if gid != -1 and gid != attr.gid:
        if attr.uid != creds.fsuid or not in_group(creds, gid):
            raise OSError(errno.EPERM, "operation not permitted")
    if uid == -1 and gid == -1:
        return
    if attr.uid != creds.fsuid:
        raise OSError(errno.EPERM, "operation not permitted")


def chmod_mode(attr: Attr, creds, mode: int) -> int:
    """The mode chmod really sets: a non-root caller outside the file's group
    loses the setgid bit, as Linux does."""
    check_owner(attr, creds)
    if creds.fsuid != 0 and not st.S_ISDIR(attr.mode) and not in_group(creds, attr.gid):
        mode &= ~st.S_ISGID
    return mode & 0o7777


def chown_mode(attr: Attr, creds) -> int:
    """After a chown, setuid goes, and setgid on a group-executable file."""
    mode = st.S_IMODE(attr.mode)
    if st.S_ISDIR(attr.mode):
        return mode
    mode &= ~st.S_ISUID
    if mode & st.S_IXGRP:
        mode &= ~st.S_ISGID
    return mode
