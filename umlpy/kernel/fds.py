"""Guest descriptors, as the kernel sees them.

A guest fd is a host fd in the guest process; the kernel learns what it is
from the host object's identity (umlpy.vfs.handles), and reaches the open
file description itself through pidfd_getfd when it must (a directory's
position, reopening a pipe through /proc/PID/fd/N).
"""
from __future__ import annotations

import errno
import os
import stat as st
from typing import Dict, List, Optional, Tuple

from umlpy.fs import hostcalls
from umlpy.host import procinfo
from umlpy.record import Record
from umlpy.vfs.handles import Handle
from umlpy.vfs.mount import Path


class FdInfo(Record):
    __slots__ = _fields = ("path", "text", "flags", "pos", "mnt_id")

    def __init__(self, path: Optional[Path], text: str, flags: int, pos: int,
                 mnt_id: int) -> None:
        self.path = path            # the place it was opened from, when the VFS knows it
        self.text = text            # what readlink(/proc/PID/fd/N) shows
        self.flags = flags
        self.pos = pos
        self.mnt_id = mnt_id


def _badf() -> OSError:
    return OSError(errno.EBADF, "bad file descriptor")


class Fds:
    def __init__(self, kernel) -> None:
        self.kernel = kernel
        self.pidfds: Dict[int, int] = {}        # host tgid -> pidfd

    # ---- identity ----
    def stat(self, task, fd: int) -> os.stat_result:
        return procinfo.fd_stat(task.host_tid, fd)

    def lookup(self, task, fd: int) -> Tuple[os.stat_result, Optional[Handle]]:
        s = self.stat(task, fd)
        return s, self.kernel.vfs.handles.get((s.st_dev, s.st_ino))

    def path(self, task, fd: int) -> Optional[Path]:
        _s, h = self.lookup(task, fd)
        return h.path if h is not None else None

    def dir_handle(self, task, fd: int) -> Tuple[os.stat_result, Handle]:
        """The host stat and handle of the directory a dirfd names (ENOTDIR
        for anything else)."""
        s, h = self.lookup(task, fd)
        if h is None or not h.path.inode.is_dir():
            raise OSError(errno.ENOTDIR, "not a directory")
        return s, h

    def dir_path(self, task, fd: int) -> Path:
        """The directory a dirfd names (ENOTDIR for anything else)."""
        return self.dir_handle(task, fd)[1].path

    # ---- the open file description ----
    def _pidfd(self, task) -> int:
        tgid = task.group.host_tgid
        pfd = self.pidfds.get(tgid)
        if pfd is None:
            pfd = os.pidfd_open(tgid)
            self.pidfds[tgid] = pfd
        return pfd

    def dup(self, task, fd: int) -> int:
        """A kernel-side duplicate of the guest's descriptor (same description)."""
        try:
            return procinfo.pidfd_getfd(self._pidfd(task), fd)
        except OSError as e:
            if e.errno == errno.ESRCH:
                raise _badf() from None
            raise

    def forget(self, host_tgid: int) -> None:
        pfd = self.pidfds.pop(host_tgid, None)
        if pfd is not None:
            os.close(pfd)

    def close(self) -> None:
        for pfd in self.pidfds.values():
            os.close(pfd)
        self.pidfds.clear()

    # ---- what procfs shows ----
    def list(self, task) -> List[int]:
        return procinfo.fd_numbers(task.host_tid)

    def info(self, task, fd: int) -> FdInfo:
        s, h = self.lookup(task, fd)
        fi = procinfo.fd_info(task.host_tid, fd)
        flags = int(fi.get("flags", "0"), 8)
        pos = int(fi.get("pos", "0"))
        if h is not None:
            text = self.kernel.vfs.path_string(h.path, task.fs.root) or "/"
            if h.path.inode.getattr().nlink == 0 and not st.S_ISDIR(s.st_mode):
                text += " (deleted)"
            return FdInfo(h.path, text, flags, pos, h.path.mount.id)
        return FdInfo(None, self._foreign_text(task, fd), flags, pos, 0)

    def _foreign_text(self, task, fd: int) -> str:
        """Pipes, sockets, anonymous inodes show as the host names them; host
        files the guest was given at start show without their host path."""
        target = procinfo.fd_target(task.host_tid, fd)
        if target.startswith("/") and not target.startswith(("/memfd:", "/dev/pts/", "/dev/null",
                                                              "/dev/tty")):
            return "/" + os.path.basename(target) + " (host)"
        return target

    def reopen(self, task, fd: int, flags: int) -> int:
        """Open the object behind a guest descriptor anew (a pipe through
        /proc/PID/fd/N): only objects without a VFS path come here."""
        k = self.dup(task, fd)
        try:
            s = os.fstat(k)
            if st.S_ISSOCK(s.st_mode):
                raise OSError(errno.ENXIO, "no such device or address")
            return hostcalls.reopen(k, (flags & ~os.O_CREAT) | os.O_CLOEXEC | os.O_NOCTTY)
        finally:
            os.close(k)

    def live_keys(self) -> set:
        """Every host identity some guest descriptor refers to (for the handle GC)."""
        keys = set()
        for g in self.kernel.pids.live_groups():
            for fd in procinfo.fd_numbers(g.host_tgid):
                try:
                    s = procinfo.fd_stat(g.host_tgid, fd)
                except OSError:
                    continue
                keys.add((s.st_dev, s.st_ino))
        return keys
