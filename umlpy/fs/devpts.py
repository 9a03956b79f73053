"""devpts: the guest's /dev/pts.

The guest's ptys are host ptys (its tty I/O runs natively), but the guest
may reach only those it allocated through its own ptmx, plus the terminal
umlpy runs on; a host pty of someone else's session is ENXIO (chardev.py)
and absent here. PtyTable is that set, one per kernel (kernel.ptys).
A pts node belongs to the guest fsuid that opened ptmx, with the mount's
gid= and mode= (Linux's devpts rules); the host node's owner is a host uid
that means nothing in the guest. chown/chmod change only the guest's view.

The ptmx node is 5:2 with mode 0000 by default, as Linux's devpts makes it
(ptmxmode=000): /dev/ptmx (0666, in devfs) is the usual way in; mount with
ptmxmode=0o666 for a /dev/ptmx -> pts/ptmx symlink layout.
"""
from __future__ import annotations

import errno
import os
import stat as st
import time
from typing import Dict, Iterable, List, Optional, Tuple

from umlpy.drivers import chardev
from umlpy.record import Record
from umlpy.vfs.inode import Attr, FileSystem, Inode, dtype_of

DEVPTS_SUPER_MAGIC = 0x1CD1
TTY_GID = 5
PTMX_INO = 2


class Pty(Record):
    # mutable: chown/chmod (PtsNode.setattr) change uid, gid and mode
    __slots__ = _fields = ("uid", "gid", "mode", "ident", "console", "alloc_gid")
    uid: int
    gid: Optional[int]      # None: the devpts mount's gid= (else the allocator's fsgid)
    mode: Optional[int]     # None: the devpts mount's mode=
    ident: Tuple[int, int]  # (st_ino, st_ctime_ns) of the host node when allowed
    console: bool
    alloc_gid: int

    def __init__(self, uid: int, gid: Optional[int], mode: Optional[int],
                 ident: Tuple[int, int], console: bool = False, alloc_gid: int = 0) -> None:
        self.uid = uid
        self.gid = gid
        self.mode = mode
        self.ident = ident
        self.console = console
        self.alloc_gid = alloc_gid


def _host_node(n: int) -> Optional[os.stat_result]:
    try:
        return os.stat(f"/dev/pts/{n}")
    except OSError:
        return None


class PtyTable:
    """The host ptys this guest may open, with the owner and mode it sees."""

    def __init__(self, adopt_terminal: bool = True) -> None:
        self._ptys: Dict[int, Pty] = {}
        if adopt_terminal:
            self._adopt_terminal()

    def _adopt_terminal(self) -> None:
        name = chardev.own_terminal()
        if name is None:
            return
        s = _host_node_path(name)
        n = chardev.pts_number(s.st_rdev) if s is not None else None
        if n is not None:
            self._ptys[n] = Pty(0, TTY_GID, 0o620, (s.st_ino, s.st_ctime_ns), console=True)

    def allow(self, n: int, uid: int, gid: int) -> None:
        """pty n was just allocated for the guest (by a guest open of ptmx)."""
        s = _host_node(n)
        if s is None:
            raise OSError(errno.EIO, "pty vanished")
        self._ptys[n] = Pty(uid, None, None, (s.st_ino, s.st_ctime_ns), alloc_gid=gid)

    def get(self, n: int) -> Optional[Pty]:
        """The pty if the guest may reach it. The host frees a pty number
        when its master closes and may give it to anyone after: a node whose
        identity changed is no longer the guest's."""
        p = self._ptys.get(n)
        if p is None:
            return None
        s = _host_node(n)
        if s is None or (not p.console and (s.st_ino, s.st_ctime_ns) != p.ident):
            if not p.console:
                del self._ptys[n]
            return None
        return p

    def allowed(self, n: int) -> bool:
        return self.get(n) is not None

    def numbers(self) -> List[int]:
        return sorted(n for n in list(self._ptys) if self.get(n) is not None)


def _host_node_path(path: str) -> Optional[os.stat_result]:
    try:
        return os.stat(path)
    except OSError:
        return None


class _Node(Inode):
    def __init__(self, fs: "DevPtsFs", ino: int) -> None:
        self.fs = fs
        self.ino = ino

    def _attr(self, mode: int, uid: int, gid: int, rdev: int = 0, t: int = 0) -> Attr:
        t = t or self.fs.mount_ns
        return Attr(mode=mode, ino=self.ino, nlink=2 if st.S_ISDIR(mode) else 1, uid=uid,
                    gid=gid, rdev=rdev, atime_ns=t, mtime_ns=t, ctime_ns=t, btime_ns=t)


class PtsNode(_Node):
    """/dev/pts/N: char 136:N, opened through the device table."""

    def __init__(self, fs: "DevPtsFs", n: int) -> None:
        super().__init__(fs, n + 3)         # Linux numbers pts N as inode N+3
        self.n = n

    def _pty(self) -> Pty:
        p = self.fs.ptys.get(self.n)
        if p is None:
            raise OSError(errno.ENOENT, "no such pty")
        return p

    def getattr(self) -> Attr:
        p = self._pty()
        s = _host_node(self.n)
        fs = self.fs
        gid = p.gid if p.gid is not None else (fs.gid if fs.gid is not None else p.alloc_gid)
        mode = p.mode if p.mode is not None else fs.mode
        return self._attr(st.S_IFCHR | mode, p.uid, gid, chardev.pts_rdev(self.n),
                          s.st_mtime_ns if s is not None else 0)

    def setattr(self, *, mode=None, uid=None, gid=None, size=None, atime_ns=None,
                mtime_ns=None) -> None:
        """chown/chmod (grantpt, login, sshd): the guest's view only; the host node
        stays as the host made it."""
        p = self._pty()
        if mode is not None:
            p.mode = mode & 0o7777
        if uid is not None and uid != -1:
            p.uid = uid
        if gid is not None and gid != -1:
            p.gid = gid

    def open(self, flags: int) -> int:
        return chardev.open_device(self.fs.kernel, chardev.pts_rdev(self.n), flags)


class PtmxNode(_Node):
    def getattr(self) -> Attr:
        return self._attr(st.S_IFCHR | self.fs.ptmxmode, 0, 0, os.makedev(5, 2))

    def setattr(self, *, mode=None, uid=None, gid=None, size=None, atime_ns=None,
                mtime_ns=None) -> None:
        if mode is not None:
            self.fs.ptmxmode = mode & 0o7777

    def open(self, flags: int) -> int:
        return chardev.open_device(self.fs.kernel, os.makedev(5, 2), flags)


class PtsRoot(_Node):
    def getattr(self) -> Attr:
        return self._attr(st.S_IFDIR | 0o755, 0, 0)

    def lookup(self, name: str) -> Inode:
        if name == "ptmx":
            return self.fs.ptmx
        if name.isdigit() and (name == "0" or not name.startswith("0")) \
                and self.fs.ptys.allowed(int(name)):
            return PtsNode(self.fs, int(name))
        raise FileNotFoundError(errno.ENOENT, "no such file or directory", name)

    def readdir(self) -> Iterable[Tuple[str, int, int]]:
        yield "ptmx", PTMX_INO, dtype_of(st.S_IFCHR)
        for n in self.fs.ptys.numbers():
            yield str(n), n + 3, dtype_of(st.S_IFCHR)

    # nodes come only from ptmx, as in Linux's devpts
    def create(self, name, mode, uid, gid):
        raise OSError(errno.EACCES, "permission denied")

    def mkdir(self, name, mode, uid, gid):
        raise OSError(errno.EPERM, "operation not permitted")

    def mknod(self, name, mode, rdev, uid, gid):
        raise OSError(errno.EPERM, "operation not permitted")

    def symlink(self, name, target, uid, gid):
        raise OSError(errno.EPERM, "operation not permitted")

    def unlink(self, name):
        raise OSError(errno.EPERM, "operation not permitted")


class DevPtsFs(FileSystem):
    type_name = "devpts"
    magic = DEVPTS_SUPER_MAGIC

    def __init__(self, kernel, ptmxmode: int = 0o000, gid: Optional[int] = TTY_GID,
                 mode: int = 0o620) -> None:
        super().__init__()
        self.kernel = kernel
        self.ptys: PtyTable = kernel.ptys
        self.ptmxmode = ptmxmode
        self.gid = gid
        self.mode = mode
        self.mount_ns = time.time_ns()
        self.ptmx = PtmxNode(self, PTMX_INO)
        self.root = PtsRoot(self, 1)

    def mount_options(self) -> str:
        opts = [] if self.gid is None else [f"gid={self.gid}"]
        opts += [f"mode={self.mode:03o}", f"ptmxmode={self.ptmxmode:03o}"]
        return ",".join(opts)
