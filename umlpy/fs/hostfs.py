"""hostfs: a host directory as a guest file system.

Every operation is relative to a host directory descriptor the path walk
holds (never a host path the guest wrote), and never follows a symlink on the
host: symlinks are the walk's to interpret, inside the guest's namespace.
"""
from __future__ import annotations

import errno
import os
import stat as st
from typing import Optional

from umlpy.fs import hostcalls

O_PATH = os.O_PATH


class HostFs:
    """A host directory tree. `readonly` refuses every change with EROFS."""

    type_name = "hostfs"

    def __init__(self, host_dir: str, readonly: bool = False) -> None:
        self.host_dir = os.path.realpath(host_dir)
        self.readonly = readonly
        self.root_fd = os.open(self.host_dir, O_PATH | os.O_DIRECTORY | os.O_CLOEXEC)

    def close(self) -> None:
        os.close(self.root_fd)

    # ---- the walk's step ----
    def lookup(self, dirfd: int, name: str, at_root: bool) -> int:
        """An O_PATH descriptor of `name` in `dirfd`, the symlink itself if it is one."""
        return os.open(name, O_PATH | os.O_NOFOLLOW | os.O_CLOEXEC, dir_fd=dirfd)

    def guest_path_of(self, host_path: str) -> Optional[str]:
        """Map a host path (from /proc/PID/fd) back into this fs, or None."""
        base = self.host_dir.rstrip("/")
        if host_path == self.host_dir or host_path == base:
            return ""
        if host_path.startswith(base + "/"):
            return host_path[len(base):]
        return None

    def _rw(self) -> None:
        if self.readonly:
            raise OSError(errno.EROFS, "read-only file system")

    # ---- operations on (dirfd, name); name "" means dirfd itself ----
    def open(self, dirfd: int, name: str, flags: int, mode: int) -> int:
        if self.readonly and flags & (os.O_WRONLY | os.O_RDWR | os.O_CREAT | os.O_TRUNC):
            raise OSError(errno.EROFS, "read-only file system")
        flags |= os.O_CLOEXEC | os.O_NOCTTY
        if name == "":
            if flags & os.O_CREAT and not (flags & os.O_TMPFILE == os.O_TMPFILE):
                raise OSError(errno.EISDIR, "is a directory")
            return os.open(".", flags & ~os.O_NOFOLLOW, mode, dir_fd=dirfd)
        return os.open(name, flags | os.O_NOFOLLOW, mode, dir_fd=dirfd)

    def stat(self, dirfd: int, name: str) -> os.stat_result:
        if name == "":
            return os.stat(dirfd)
        return os.stat(name, dir_fd=dirfd, follow_symlinks=False)

    def readlink(self, dirfd: int, name: str) -> str:
        if name == "":
            raise OSError(errno.EINVAL, "not a symlink")
        return os.readlink(name, dir_fd=dirfd)

    def access(self, dirfd: int, name: str, mode: int) -> None:
        if mode & os.W_OK and self.readonly:
            raise OSError(errno.EROFS, "read-only file system")
        target = name or "."
        if not os.access(target, mode, dir_fd=dirfd, follow_symlinks=False):
            raise OSError(errno.EACCES, "permission denied")

    def mkdir(self, dirfd: int, name: str, mode: int) -> None:
        self._rw()
        if name == "":
            raise OSError(errno.EEXIST, "exists")
        os.mkdir(name, mode, dir_fd=dirfd)

    def mknod(self, dirfd: int, name: str, mode: int, dev: int) -> None:
        self._rw()
        if name == "":
            raise OSError(errno.EEXIST, "exists")
        kind = st.S_IFMT(mode) or st.S_IFREG
        if kind == st.S_IFIFO:
            os.mkfifo(name, st.S_IMODE(mode), dir_fd=dirfd)
        elif kind == st.S_IFREG:
            os.close(os.open(name, os.O_CREAT | os.O_EXCL | os.O_WRONLY | os.O_CLOEXEC,
                             st.S_IMODE(mode), dir_fd=dirfd))
        else:
            # device nodes and sockets need the ownership layer of the VFS issue
            raise OSError(errno.EPERM, "operation not permitted")

    def unlink(self, dirfd: int, name: str, is_dir: bool) -> None:
        self._rw()
        if name == "":
            raise OSError(errno.EBUSY if is_dir else errno.EISDIR, "busy")
        if is_dir:
            os.rmdir(name, dir_fd=dirfd)
        else:
            os.unlink(name, dir_fd=dirfd)

    def symlink(self, target: str, dirfd: int, name: str) -> None:
        self._rw()
        if name == "":
            raise OSError(errno.EEXIST, "exists")
        os.symlink(target, name, dir_fd=dirfd)

    def link(self, odirfd: int, oname: str, ndirfd: int, nname: str) -> None:
        self._rw()
        if oname == "":
            raise OSError(errno.EPERM, "cannot link a directory")
        if nname == "":
            raise OSError(errno.EEXIST, "exists")
        os.link(oname, nname, src_dir_fd=odirfd, dst_dir_fd=ndirfd, follow_symlinks=False)

    def rename(self, odirfd: int, oname: str, ndirfd: int, nname: str, flags: int) -> None:
        self._rw()
        if oname == "" or nname == "":
            raise OSError(errno.EBUSY, "busy")
        hostcalls.renameat2(odirfd, oname, ndirfd, nname, flags)

    def _inode_fd(self, dirfd: int, name: str) -> int:
        """An O_PATH descriptor of the object itself, refusing symlinks."""
        if name == "":
            return os.dup(dirfd)
        return os.open(name, O_PATH | os.O_NOFOLLOW | os.O_CLOEXEC, dir_fd=dirfd)

    def chmod(self, dirfd: int, name: str, mode: int) -> None:
        self._rw()
        fd = self._inode_fd(dirfd, name)
        try:
            if st.S_ISLNK(os.fstat(fd).st_mode):
                raise OSError(errno.EOPNOTSUPP, "cannot chmod a symlink")
            os.chmod(f"/proc/self/fd/{fd}", mode)
        finally:
            os.close(fd)

    def chown(self, dirfd: int, name: str, uid: int, gid: int) -> None:
        self._rw()
        if name == "":
            os.chown(dirfd, uid, gid)
        else:
            os.chown(name, uid, gid, dir_fd=dirfd, follow_symlinks=False)

    def utimens(self, dirfd: int, name: str, times: Optional[bytes]) -> None:
        self._rw()
        hostcalls.utimensat(dirfd, name, times, nofollow=True)

    def truncate(self, dirfd: int, name: str, length: int) -> None:
        self._rw()
        fd = self.open(dirfd, name, os.O_WRONLY, 0)
        try:
            os.ftruncate(fd, length)
        finally:
            os.close(fd)

    def statfs(self, dirfd: int, name: str) -> bytes:
        fd = self._inode_fd(dirfd, name)
        try:
            return hostcalls.fstatfs(fd)
        finally:
            os.close(fd)


class DevFs(HostFs):
    """A few host character devices that are safe to share (null, zero...).

    The directory itself is a private placeholder listing those names; their
    lookups resolve to the host's device nodes. The VFS issue replaces this
    with a real devfs."""

    type_name = "devtmpfs"
    NAMES = ("null", "zero", "full", "random", "urandom", "tty")

    def __init__(self, scratch_dir: str) -> None:
        os.makedirs(scratch_dir, exist_ok=True)
        for n in self.NAMES:
            open(os.path.join(scratch_dir, n), "a").close()
        super().__init__(scratch_dir, readonly=True)

    def lookup(self, dirfd: int, name: str, at_root: bool) -> int:
        if at_root and name in self.NAMES:
            return os.open(f"/dev/{name}", O_PATH | os.O_CLOEXEC)
        raise OSError(errno.ENOENT, "no such device")

    def guest_path_of(self, host_path: str) -> Optional[str]:
        if host_path.startswith("/dev/") and host_path[5:] in self.NAMES:
            return host_path[4:]
        return super().guest_path_of(host_path)

    def open(self, dirfd: int, name: str, flags: int, mode: int) -> int:
        if name in self.NAMES:
            flags &= ~(os.O_CREAT | os.O_EXCL | os.O_TMPFILE | os.O_DIRECTORY)
            return os.open(f"/dev/{name}", flags | os.O_CLOEXEC | os.O_NOCTTY)
        return super().open(dirfd, name, flags, mode)

    def stat(self, dirfd: int, name: str) -> os.stat_result:
        if name in self.NAMES:
            return os.stat(f"/dev/{name}")
        return super().stat(dirfd, name)

    def access(self, dirfd: int, name: str, mode: int) -> None:
        if name in self.NAMES:
            return
        super().access(dirfd, name, mode)


class EmptyFs(HostFs):
    """An empty read-only directory: stands where procfs will be mounted, so
    that the host's /proc is never reachable through a hostfs root."""

    type_name = "proc"

    def __init__(self, scratch_dir: str) -> None:
        os.makedirs(scratch_dir, exist_ok=True)
        super().__init__(scratch_dir, readonly=True)

    def lookup(self, dirfd: int, name: str, at_root: bool) -> int:
        raise OSError(errno.ENOENT, "not implemented yet")
