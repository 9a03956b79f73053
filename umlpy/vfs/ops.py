"""The VFS operations behind the path syscalls: Linux's rules on top of the
file systems' inodes (permissions, read-only mounts, sticky directories,
cross-mount renames, what O_CREAT/O_EXCL/O_TRUNC/O_DIRECTORY mean).

No guest here: callers pass a Lookup from the walk and the caller's
credentials; results are Attrs, inodes, or host descriptors to install.
"""
from __future__ import annotations

import errno
import os
import stat as st
from typing import Optional

from umlpy.vfs import perm
from umlpy.vfs.inode import (RENAME_EXCHANGE, RENAME_NOREPLACE, RENAME_WHITEOUT, Attr, Inode,
                             check_name, now_ns)
from umlpy.vfs.mount import MS_NODEV, MS_NOEXEC, Path, names_changed
from umlpy.vfs.namei import Lookup

O_TMPFILE = os.O_TMPFILE
UTIME_NOW = (1 << 30) - 1
UTIME_OMIT = (1 << 30) - 2


def err(code: int, what: str = "") -> OSError:
    return OSError(code, what or os.strerror(code))


def getattr_of(path: Path) -> Attr:
    return _with_dev(path.inode.getattr(), path)


def view_attr_of(path: Path) -> Attr:
    """getattr_of() for a published stat view (Inode.view_attr)."""
    return _with_dev(path.inode.view_attr(), path)


def _with_dev(a: Attr, path: Path) -> Attr:
    if not a.dev:
        a.dev = path.mount.fs.dev
    return a


def _writable(path: Path) -> None:
    if path.mount.readonly:
        raise err(errno.EROFS)


def _new_name(lk: Lookup) -> str:
    """The name a creating call makes: the final component must not exist."""
    if lk.path is not None or not lk.name:
        raise err(errno.EEXIST)
    check_name(lk.name)
    return lk.name


def _may_create(lk: Lookup, creds) -> Attr:
    """Check that creds may add a name to the directory; returns its attributes."""
    _writable(lk.parent)
    pa = lk.parent.inode.getattr()
    perm.permission(pa, creds, perm.MAY_WRITE | perm.MAY_EXEC)
    return pa


def new_file_gid(pa: Attr, creds) -> int:
    """Files take the directory's group when it is setgid (BSD semantics)."""
    return pa.gid if pa.mode & st.S_ISGID else creds.fsgid


def _new_file_owner(lk: Lookup, creds, mode: int) -> tuple:
    """(gid, mode) of a new non-directory after the permission check: in a
    setgid directory of a group the creator is not in, a group-executable
    file loses its setgid bit unless the creator has CAP_FSETID (as Linux)."""
    pa = _may_create(lk, creds)
    gid = new_file_gid(pa, creds)
    sgid_exec = st.S_ISGID | st.S_IXGRP
    if mode & sgid_exec == sgid_exec and pa.mode & st.S_ISGID and creds.fsuid != 0 \
            and not perm.in_group(creds, gid):
        mode &= ~st.S_ISGID
    return gid, mode


# ---- creating names ----
def mkdir(lk: Lookup, creds, mode: int) -> None:
    names_changed(structural=False)
    name = _new_name(lk)
    pa = _may_create(lk, creds)
    mode &= 0o7777
    if pa.mode & st.S_ISGID:
        mode |= st.S_ISGID              # a setgid directory passes the bit on to subdirectories
    lk.parent.inode.mkdir(name, mode, creds.fsuid, new_file_gid(pa, creds))


def mknod(lk: Lookup, creds, mode: int, rdev: int) -> None:
    names_changed(structural=False)
    kind = st.S_IFMT(mode) or st.S_IFREG
    if kind not in (st.S_IFREG, st.S_IFIFO, st.S_IFCHR, st.S_IFBLK, st.S_IFSOCK):
        raise err(errno.EINVAL)
    if kind in (st.S_IFCHR, st.S_IFBLK) and creds.fsuid != 0:
        raise err(errno.EPERM)
    name = _new_name(lk)
    gid, perms = _new_file_owner(lk, creds, mode & 0o7777)
    if kind == st.S_IFREG:
        lk.parent.inode.create(name, perms, creds.fsuid, gid)
    else:
        lk.parent.inode.mknod(name, kind | perms, rdev if kind in (st.S_IFCHR, st.S_IFBLK) else 0,
                              creds.fsuid, gid)


def symlink(lk: Lookup, creds, target: str) -> None:
    names_changed(structural=False)
    name = _new_name(lk)
    lk.parent.inode.symlink(name, target, creds.fsuid, new_file_gid(_may_create(lk, creds), creds))


def link(old: Lookup, new: Lookup, creds) -> None:
    names_changed(structural=False)
    src = old.must_exist()
    if new.path is not None:
        raise err(errno.EEXIST)
    name = _new_name(new)
    if src.mount is not new.parent.mount:
        raise err(errno.EXDEV)
    a = src.inode.getattr()
    if st.S_ISDIR(a.mode):
        raise err(errno.EPERM)
    _may_create(new, creds)
    # protected_hardlinks: others' files only if readable and writable by the caller
    if creds.fsuid not in (0, a.uid):
        if not st.S_ISREG(a.mode) or a.mode & st.S_ISUID or \
                (a.mode & (st.S_ISGID | st.S_IXGRP)) == (st.S_ISGID | st.S_IXGRP):
            raise err(errno.EPERM)
        try:
            perm.permission(a, creds, perm.MAY_READ | perm.MAY_WRITE)
        except OSError:
            raise err(errno.EPERM) from None
    new.parent.inode.link(name, src.inode)


# ---- removing names ----
def last_name_size(inode: Inode) -> Optional[int]:
    """The size of regular file `inode` when it has one name left, else None
    (what handles.orphaned counts once that name goes)."""
    try:
        return inode.size_if_last_name()
    except OSError:
        return None



def _victim(lk: Lookup, creds) -> Attr:
    if lk.path is None:
        raise err(errno.ENOENT)
    _writable(lk.parent)
    a = lk.path.inode.getattr()
    perm.may_delete(lk.parent.inode.getattr(), a, creds)
    return a


def unlink(lk: Lookup, creds, mounts) -> None:
    names_changed(structural=False)
    if not lk.name:
        raise err(errno.EISDIR)
    a = _victim(lk, creds)
    if st.S_ISLNK(a.mode):
        names_changed()             # cached directory walks may cross this link
    if st.S_ISDIR(a.mode):
        raise err(errno.EISDIR)
    if mounts.mounted_on(Path(lk.parent.mount, lk.path.dentry)) is not None:
        raise err(errno.EBUSY)
    lk.parent.inode.unlink(lk.name)
    lk.path.dentry.drop()


def rmdir(lk: Lookup, creds, mounts) -> None:
    names_changed()
    if not lk.name:
        raise err(errno.EBUSY)
    if lk.name == ".":
        raise err(errno.EINVAL)
    if lk.path is not None and lk.path.mount is not lk.parent.mount:
        raise err(errno.EBUSY)      # a mount point
    a = _victim(lk, creds)
    if not st.S_ISDIR(a.mode):
        raise err(errno.ENOTDIR)
    lk.parent.inode.rmdir(lk.name)
    lk.path.dentry.drop()


def _is_ancestor(a: Path, b: Path) -> bool:
    """Is directory a above (or equal to) b in the same mount?"""
    d = b.dentry
    key = a.inode.key
    for _ in range(4096):
        if d is None:
            return False
        if d.inode.key == key:
            return True
        d = d.parent
    return False


def rename(old: Lookup, new: Lookup, creds, flags: int, mounts) -> None:
    names_changed()
    if flags & ~(RENAME_NOREPLACE | RENAME_EXCHANGE | RENAME_WHITEOUT):
        raise err(errno.EINVAL)
    if flags & RENAME_EXCHANGE and flags & (RENAME_NOREPLACE | RENAME_WHITEOUT):
        raise err(errno.EINVAL)
    if flags & RENAME_WHITEOUT:
        raise err(errno.EINVAL)     # whiteouts are the overlay's own business
    if not old.name or not new.name:
        raise err(errno.EBUSY)
    if old.path is None:
        raise err(errno.ENOENT)
    if old.parent.mount is not new.parent.mount or old.path.mount is not old.parent.mount:
        raise err(errno.EXDEV)
    if new.path is not None and new.path.mount is not new.parent.mount:
        raise err(errno.EBUSY)
    if flags & RENAME_NOREPLACE and new.path is not None:
        raise err(errno.EEXIST)
    if flags & RENAME_EXCHANGE and new.path is None:
        raise err(errno.ENOENT)
    if new.path is None:
        check_name(new.name)
    a = _victim(old, creds)
    if new.path is not None:
        _victim(new, creds)
        if new.path.inode.key == old.path.inode.key:
            return                  # the same file under two names: nothing to do
    else:
        _may_create(new, creds)
    if st.S_ISDIR(a.mode) and _is_ancestor(old.path, new.parent):
        raise err(errno.EINVAL)
    if flags & RENAME_EXCHANGE and new.path is not None and new.path.inode.is_dir() \
            and _is_ancestor(new.path, old.parent):
        raise err(errno.EINVAL)
    old.parent.inode.rename(old.name, new.parent.inode, new.name, flags)
    moved = old.path.dentry
    if flags & RENAME_EXCHANGE:
        _move(new.path.dentry, old.parent.dentry, old.name)
    elif new.path is not None:
        new.path.dentry.drop()
    _move(moved, new.parent.dentry, new.name)


def _move(d, parent, name: str) -> None:
    """Move a dentry, and tell path-based inodes (hostfs) below it where they are."""
    d.move(parent, name)
    todo = [d]
    while todo:
        d = todo.pop()
        moved = getattr(d.inode, "moved", None)
        if moved is not None:
            moved(d.parent.inode, d.name)
        if d.kids:
            todo.extend(d.kids.values())


# ---- attributes ----
def chmod(path: Path, creds, mode: int) -> None:
    names_changed(structural=path.inode.is_dir())      # search permission
    a = path.inode.getattr()
    mode = perm.chmod_mode(a, creds, mode)
    _writable(path)
    if st.S_ISLNK(a.mode):
        raise err(errno.EOPNOTSUPP)
    path.inode.setattr(mode=mode)


def chown(path: Path, creds, uid: int, gid: int) -> None:
    names_changed(structural=path.inode.is_dir())
    a = path.inode.getattr()
    perm.check_chown(a, creds, uid, gid)
    _writable(path)
    # even chown(-1, -1) moves ctime and drops setuid/setgid, as Linux does
    changes = {"uid": uid, "gid": gid}
    if not st.S_ISLNK(a.mode):
        new_mode = perm.chown_mode(a, creds)
        if new_mode != st.S_IMODE(a.mode):
            changes["mode"] = new_mode
    path.inode.setattr(**changes)


def utimens(path: Path, creds, times: Optional[tuple]) -> None:
    """times: ((sec, nsec), (sec, nsec)) with UTIME_NOW/UTIME_OMIT, or None for now."""
    _writable(path)
    a = path.inode.getattr()
    now = now_ns()
    if times is None or all(t[1] == UTIME_NOW for t in times):
        if not perm.is_owner(a, creds):
            perm.permission(a, creds, perm.MAY_WRITE)
        path.inode.setattr(atime_ns=now, mtime_ns=now)
        return
    vals = []
    for sec, nsec in times:
        if nsec == UTIME_OMIT:
            vals.append(None)
        elif nsec == UTIME_NOW:
            vals.append(now)
        elif not 0 <= nsec < 1_000_000_000:
            raise err(errno.EINVAL)
        else:
            vals.append(sec * 1_000_000_000 + nsec)
    if vals == [None, None]:
        return
    # any times but "now" for both (UTIME_NOW with UTIME_OMIT too): the owner's
    perm.check_owner(a, creds)
    path.inode.setattr(atime_ns=vals[0], mtime_ns=vals[1])


def truncate(path: Path, creds, length: int) -> None:
    if length < 0:
        raise err(errno.EINVAL)
    a = path.inode.getattr()
    if st.S_ISDIR(a.mode):
        raise err(errno.EISDIR)
    if not st.S_ISREG(a.mode):
        raise err(errno.EINVAL)
    perm.permission(a, creds, perm.MAY_WRITE)
    _writable(path)
    path.inode.setattr(size=length)


def access(path: Path, creds, mode: int) -> None:
    a = path.inode.getattr()
    if mode & os.W_OK and path.mount.readonly and not st.S_ISCHR(a.mode) \
            and not st.S_ISBLK(a.mode) and not st.S_ISFIFO(a.mode):
        raise err(errno.EROFS)
    if mode & os.X_OK and path.mount.flags & MS_NOEXEC and st.S_ISREG(a.mode):
        raise err(errno.EACCES)
    if mode:
        perm.permission(a, creds, mode & 7)


# ---- open ----
class OpenResult:
    """What open() decided: a host fd, or a FIFO to open off the event loop."""
    __slots__ = ("fd", "fifo", "path")

    def __init__(self, fd: int = -1, fifo: str = "", path: Optional[Path] = None) -> None:
        self.fd = fd
        self.fifo = fifo
        self.path = path


def _access_mask(flags: int) -> int:
    acc = flags & os.O_ACCMODE
    mask = {os.O_RDONLY: perm.MAY_READ, os.O_WRONLY: perm.MAY_WRITE,
            os.O_RDWR: perm.MAY_READ | perm.MAY_WRITE}.get(acc, perm.MAY_READ | perm.MAY_WRITE)
    if flags & os.O_TRUNC:
        mask |= perm.MAY_WRITE
    return mask


def open_(vfs, lk: Lookup, creds, flags: int, mode: int, devices) -> OpenResult:
    """open(2) after the walk. `devices` opens character devices by rdev."""
    if flags & O_TMPFILE == O_TMPFILE:
        return _open_tmpfile(vfs, lk, creds, flags, mode)
    path = lk.path
    if flags & os.O_PATH:
        p = lk.must_exist()
        is_dir = p.inode.is_dir()
        if flags & os.O_DIRECTORY and not is_dir:
            raise err(errno.ENOTDIR)
        return OpenResult(vfs.handles.standin(p, is_dir, True), path=p)
    created = False
    if path is None:
        if not flags & os.O_CREAT:
            raise err(errno.ENOENT)
        if lk.trailing_slash:
            raise err(errno.EISDIR)
        name = _new_name(lk)
        gid, mode = _new_file_owner(lk, creds, mode & 0o7777)
        names_changed(structural=False)
        inode = lk.parent.inode.create(name, mode, creds.fsuid, gid)
        path = lk.parent.child(name, inode)
        created = True
    elif flags & os.O_CREAT and flags & os.O_EXCL:
        raise err(errno.EEXIST)
    a = path.inode.getattr()
    kind = st.S_IFMT(a.mode)
    if flags & os.O_DIRECTORY and kind != st.S_IFDIR:
        raise err(errno.ENOTDIR)
    acc = flags & os.O_ACCMODE
    if not created:
        if kind == st.S_IFLNK:
            if getattr(path.inode, "magic_target", None) is not None and \
                    not flags & os.O_NOFOLLOW:
                # /proc/PID/fd/N of a pipe or socket: reopen the object itself
                return OpenResult(path.inode.open(flags), path=None)
            raise err(errno.ELOOP)          # O_NOFOLLOW on a symlink
        if kind == st.S_IFDIR and (acc != os.O_RDONLY or flags & (os.O_CREAT | os.O_TRUNC)):
            raise err(errno.EISDIR)         # before the permission check, as Linux
        perm.permission(a, creds, _access_mask(flags))
        if flags & os.O_NOATIME and creds.fsuid not in (0, a.uid):
            raise err(errno.EPERM)
    if kind == st.S_IFDIR:
        if acc != os.O_RDONLY or flags & (os.O_CREAT | os.O_TRUNC):
            raise err(errno.EISDIR)
        return OpenResult(vfs.handles.standin(path, True, False), path=path)
    if kind in (st.S_IFCHR, st.S_IFBLK):
        if path.mount.flags & MS_NODEV:
            raise err(errno.EACCES)
        fd = devices(a.rdev, flags, kind == st.S_IFBLK)
        if kind == st.S_IFBLK:      # the host object is an image file: remember what it is
            s = os.fstat(fd)
            vfs.handles.register((s.st_dev, s.st_ino), path)
        return OpenResult(fd, path=path)
    if kind == st.S_IFSOCK:
        raise err(errno.ENXIO)
    if acc != os.O_RDONLY or flags & os.O_TRUNC:
        _writable(path)
    if kind == st.S_IFIFO:
        fifo = getattr(path.inode, "fifo_path", None)
        if fifo is None:
            raise err(errno.ENXIO)
        return OpenResult(fifo=fifo(), path=path)
    if flags & os.O_TRUNC and not created and acc != os.O_RDONLY and a.size:
        path.inode.setattr(size=0)
    keep = os.O_ACCMODE | os.O_APPEND | os.O_NONBLOCK | os.O_DIRECT | os.O_SYNC \
        | os.O_DSYNC | os.O_NOATIME | os.O_LARGEFILE
    fd = path.inode.open(flags & keep)
    key = path.inode.host_key()
    if key is not None:
        vfs.handles.register(key, path)
    else:
        s = os.fstat(fd)
        vfs.handles.register((s.st_dev, s.st_ino), path)
    return OpenResult(fd, path=path)


def _open_tmpfile(vfs, lk: Lookup, creds, flags: int, mode: int) -> OpenResult:
    d = lk.must_exist()
    if not d.inode.is_dir():
        raise err(errno.ENOTDIR)
    if flags & os.O_ACCMODE == os.O_RDONLY:
        raise err(errno.EINVAL)
    name = f".umlpy-tmpfile-{os.getpid()}-{id(lk)}"
    # owned as a file created in d (a setgid directory's group), checked as one
    gid, mode = _new_file_owner(Lookup(d, name, None), creds, mode & 0o7777)
    inode = d.inode.create(name, mode, creds.fsuid, gid)
    try:
        fd = inode.open(flags & (os.O_ACCMODE | os.O_APPEND | os.O_NONBLOCK))
    finally:
        d.inode.unlink(name)
    s = os.fstat(fd)
    vfs.handles.register((s.st_dev, s.st_ino), d.child(name, inode))
    return OpenResult(fd, path=d.child(name, inode))
