"""The device table: which host object a guest device node opens.

A device node on any guest file system is only a (major, minor) number; the
guest reaches a host device solely through this table. Anything not in it
is ENXIO, as for a node whose driver is not loaded, so a guest that mknods
8:0 or 1:1 (/dev/mem) gets nothing of the host's. Drivers add their devices
with register_char()/register_block() (the ubd driver registers its block
majors, the console driver may take over 5:1).

Every descriptor returned is O_CLOEXEC and, unless asked otherwise,
O_NOCTTY: the kernel process must never gain a controlling terminal by
opening a guest's tty.
"""
from __future__ import annotations

import errno
import fcntl
import os
import stat as st
import struct
from typing import Callable, Dict, List, Optional, Tuple

from umlpy.host import procinfo

Opener = Callable[[object, int, int], int]      # (kernel, minor, host open flags) -> host fd

MEM_MAJOR, TTYAUX_MAJOR = 1, 5
UNIX98_PTY_SLAVE_MAJOR, UNIX98_PTY_MAJOR_COUNT = 136, 8
TIOCGPTN = 0x80045430                           # _IOR('T', 0x30, unsigned int)
# status flags a device open passes to the host; O_CREAT, O_TRUNC, O_EXCL,
# O_DIRECTORY... were the VFS's business
PASSED_FLAGS = (os.O_ACCMODE | os.O_APPEND | os.O_NONBLOCK | os.O_SYNC | os.O_DSYNC)

_char: Dict[int, List[Tuple[range, Opener]]] = {}
_block: Dict[int, List[Tuple[range, Opener]]] = {}


def _enxio() -> OSError:
    return OSError(errno.ENXIO, "no such device or address")


def register_char(major: int, minors: range, opener: Opener) -> None:
    """Serve char devices major:m for m in minors with opener(kernel, minor, flags).
    A later registration of the same numbers takes precedence."""
    _char.setdefault(major, []).insert(0, (minors, opener))


def register_block(major: int, minors: range, opener: Opener) -> None:
    _block.setdefault(major, []).insert(0, (minors, opener))


def unregister_char(major: int, opener: Opener) -> None:
    _char[major] = [(r, o) for r, o in _char.get(major, []) if o is not opener]


def unregister_block(major: int, opener: Opener) -> None:
    _block[major] = [(r, o) for r, o in _block.get(major, []) if o is not opener]


def _find(table: Dict[int, List[Tuple[range, Opener]]], rdev: int) -> Tuple[Opener, int]:
    major, minor = os.major(rdev), os.minor(rdev)
    for minors, opener in table.get(major, []):
        if minor in minors:
            return opener, minor
    raise _enxio()


def host_flags(flags: int, ctty: bool = False) -> int:
    return (flags & PASSED_FLAGS) | os.O_CLOEXEC | (0 if ctty else os.O_NOCTTY)


def open_device(kernel, rdev: int, flags: int, ctty: bool = False) -> int:
    """A host descriptor for the guest's char device rdev, opened with the
    guest's access mode and status flags."""
    opener, minor = _find(_char, rdev)
    return opener(kernel, minor, host_flags(flags, ctty))


def open_block(kernel, rdev: int, flags: int) -> int:
    opener, minor = _find(_block, rdev)
    return opener(kernel, minor, host_flags(flags))


# ---- the memory devices: the host's own, which reveal nothing ----
def host_node(path: str) -> Opener:
    def opener(kernel, minor: int, flags: int) -> int:
        return os.open(path, flags)
    return opener


for _minor, _name in ((3, "null"), (5, "zero"), (7, "full"), (8, "random"), (9, "urandom")):
    register_char(MEM_MAJOR, range(_minor, _minor + 1), host_node(f"/dev/{_name}"))


# ---- terminals ----
def pts_number(rdev: int) -> Optional[int]:
    """The pty number of a Unix98 pty slave device, else None."""
    major = os.major(rdev)
    if UNIX98_PTY_SLAVE_MAJOR <= major < UNIX98_PTY_SLAVE_MAJOR + UNIX98_PTY_MAJOR_COUNT:
        return (major - UNIX98_PTY_SLAVE_MAJOR) * 256 + os.minor(rdev)
    return None


def pts_rdev(n: int) -> int:
    return os.makedev(UNIX98_PTY_SLAVE_MAJOR + n // 256, n % 256)


def own_terminal() -> Optional[str]:
    """The terminal umlpy itself runs on (its stdin, stdout or stderr), if any."""
    for fd in (0, 1, 2):
        try:
            if os.isatty(fd):
                return os.ttyname(fd)
        except OSError:
            continue
    return None


def _ptys(kernel):
    return kernel.ptys


def open_pts(kernel, n: int, flags: int) -> int:
    """/dev/pts/N of the host, only for a pty the guest may reach."""
    if not _ptys(kernel).allowed(n):
        raise _enxio()
    try:
        return os.open(f"/dev/pts/{n}", flags)
    except FileNotFoundError:
        raise _enxio() from None


def _open_pts_minor(kernel, minor: int, flags: int, major: int) -> int:
    return open_pts(kernel, (major - UNIX98_PTY_SLAVE_MAJOR) * 256 + minor, flags)


for _i in range(UNIX98_PTY_MAJOR_COUNT):
    register_char(UNIX98_PTY_SLAVE_MAJOR + _i, range(256),
                  lambda kernel, minor, flags, _m=UNIX98_PTY_SLAVE_MAJOR + _i:
                  _open_pts_minor(kernel, minor, flags, _m))


def open_ptmx(kernel, minor: int, flags: int) -> int:
    """A new pty pair from the host; its slave becomes reachable by the guest,
    owned by the caller's guest fsuid/fsgid as Linux's devpts would make it."""
    fd = os.open("/dev/ptmx", flags)
    try:
        n = struct.unpack("I", fcntl.ioctl(fd, TIOCGPTN, b"\0\0\0\0"))[0]
        cur = kernel.current
        uid, gid = (cur.creds.fsuid, cur.creds.fsgid) if cur is not None else (0, 0)
        _ptys(kernel).allow(n, uid, gid)
    except BaseException:
        os.close(fd)
        raise
    return fd


def open_tty(kernel, minor: int, flags: int) -> int:
    """/dev/tty: the calling process's controlling terminal, ENXIO without one.
    Only a terminal the guest may reach (its ptys, umlpy's own) is opened."""
    cur = kernel.current
    if cur is None:
        raise _enxio()
    try:
        rdev = procinfo.host_ctty(cur.host_tid)
    except OSError:
        raise _enxio() from None
    if rdev == 0:
        raise _enxio()
    n = pts_number(rdev)
    if n is not None and _ptys(kernel).allowed(n):
        return os.open(f"/dev/pts/{n}", flags)
    mine = own_terminal()
    if mine is not None and os.stat(mine).st_rdev == rdev:
        return os.open(mine, flags)
    raise _enxio()


def open_console(kernel, minor: int, flags: int) -> int:
    """/dev/console: umlpy's own terminal. Without one: its stdin for reading,
    its stdout (reopened, appending) for writing, else its controlling
    terminal; ENXIO when there is none of these (a socket cannot be reopened).
    A console driver with channels (con0=...) registers 5:1 over this."""
    mine = own_terminal()
    if mine is not None:
        return os.open(mine, flags)
    acc = flags & os.O_ACCMODE
    src = 0 if acc == os.O_RDONLY else 1
    out_flags = flags
    if acc == os.O_RDWR:
        # no terminal to read and write: writes are what a console is for
        out_flags = (flags & ~os.O_ACCMODE) | os.O_WRONLY
    try:
        s = os.fstat(src)
        if not st.S_ISSOCK(s.st_mode):
            if st.S_ISREG(s.st_mode) and src == 1:
                out_flags |= os.O_APPEND         # never write over the log from offset 0
            return os.open(f"/proc/self/fd/{src}", out_flags)
    except OSError:
        pass
    try:
        return os.open("/dev/tty", flags)
    except OSError:
        raise _enxio() from None


register_char(TTYAUX_MAJOR, range(0, 1), open_tty)
register_char(TTYAUX_MAJOR, range(1, 2), open_console)
register_char(TTYAUX_MAJOR, range(2, 3), open_ptmx)
