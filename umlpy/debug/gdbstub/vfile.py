"""vFile: gdb reads the guest's files (the program, its libraries, their debug
files) through the stub, read-only, as the debugged process sees them.

Every path gdb sends is hostile: it is walked by the kernel's VFS from the
process's root, with its credentials, exactly as its own open(O_RDONLY)
would be, so `..` and symlinks stay inside the guest. Only regular files
open (no devices, FIFOs or sockets: a read must never block the kernel).
"""
from __future__ import annotations

import errno
import os
import stat as st
import struct
from typing import Callable, Dict, Optional, Tuple

from umlpy.debug.gdbstub.packets import hexint

# gdb's File-I/O errno values; anything else is EUNKNOWN
FILEIO_ERRNO = {errno.EPERM: 1, errno.ENOENT: 2, errno.EINTR: 4, errno.EBADF: 9,
                errno.EACCES: 13, errno.EFAULT: 14, errno.EBUSY: 16, errno.EEXIST: 17,
                errno.ENODEV: 19, errno.ENOTDIR: 20, errno.EISDIR: 21, errno.EINVAL: 22,
                errno.ENFILE: 23, errno.EMFILE: 24, errno.EFBIG: 27, errno.ENOSPC: 28,
                errno.ESPIPE: 29, errno.EROFS: 30, errno.ENAMETOOLONG: 91}
EUNKNOWN = 9999
# gdb's O_WRONLY, O_RDWR, O_APPEND, O_CREAT, O_TRUNC, O_EXCL: refused (read-only)
FILEIO_WRITING = 0x1 | 0x2 | 0x8 | 0x200 | 0x400 | 0x800
MAX_FILES = 64
MAX_PATH = 4096
# struct stat in gdb's File-I/O format: big-endian, 32-bit except size/blksize/blocks
FILEIO_STAT = struct.Struct(">IIIIIIIQQQIII")
U32, NS = 0xFFFFFFFF, 10**9

# (root, cwd, creds) the paths of one guest process resolve against
FsView = Tuple[object, object, object]


class FileError(Exception):
    def __init__(self, code: int) -> None:
        super().__init__(code)
        self.code = code


def fail(code: int) -> bytes:
    return b"F-1,%x" % FILEIO_ERRNO.get(code, EUNKNOWN)


class HostIO:
    """The vFile packets of one gdb connection. `view(pid)` gives the file-system
    view of guest pid (0: the debugged process), or None when there is none."""

    def __init__(self, vfs, view: Callable[[int], Optional[FsView]], max_read: int) -> None:
        self.vfs = vfs
        self.view = view
        self.max_read = max_read
        self.pid = 0                        # vFile:setfs
        self.files: Dict[int, Tuple[int, object]] = {}  # gdb's fd -> (host fd, guest Attr)
        self.next_fd = 3

    def close_all(self) -> None:
        for fd, _ in self.files.values():
            os.close(fd)
        self.files.clear()

    def handle(self, pkt: bytes) -> bytes:
        """pkt: what follows "vFile:"."""
        op, _, args = pkt.partition(b":")
        fn = OPS.get(op)
        if fn is None:
            return b""                      # not supported: gdb falls back or gives up
        try:
            return fn(self, args)
        except FileError as e:
            return fail(e.code)
        except OSError as e:
            return fail(e.errno or errno.EIO)
        except (ValueError, IndexError, UnicodeError):
            return fail(errno.EINVAL)

    # ---- operations ----
    def _setfs(self, args: bytes) -> bytes:
        pid = hexint(args)
        if pid and self.view(pid) is None:
            raise FileError(errno.ESRCH)
        self.pid = pid
        return b"F0"

    def _open(self, args: bytes) -> bytes:
        name, flags, _mode = args.split(b",")
        if hexint(flags) & FILEIO_WRITING:
            raise FileError(errno.EROFS)
        if len(self.files) >= MAX_FILES:
            raise FileError(errno.EMFILE)
        self.files[self.next_fd] = self.open_guest(self.path_arg(name))
        self.next_fd += 1
        return b"F%x" % (self.next_fd - 1)

    def _close(self, args: bytes) -> bytes:
        fd, _ = self._file(args)
        del self.files[hexint(args)]
        os.close(fd)
        return b"F0"

    def _pread(self, args: bytes) -> bytes:
        gfd, count, offset = args.split(b",")
        count, offset = hexint(count), hexint(offset)
        if count < 0 or offset < 0:
            raise FileError(errno.EINVAL)
        data = os.pread(self._file(gfd)[0], min(count, self.max_read), offset)
        return b"F%x;" % len(data) + data

    def _fstat(self, args: bytes) -> bytes:
        a = self._file(args)[1]             # the guest's attributes, not the host's
        data = FILEIO_STAT.pack(a.dev & U32, a.ino & U32, a.mode & U32, a.nlink & U32,
                                a.uid & U32, a.gid & U32, a.rdev & U32, a.size, a.blksize,
                                a.blocks, a.atime_ns // NS & U32, a.mtime_ns // NS & U32,
                                a.ctime_ns // NS & U32)
        return b"F%x;" % len(data) + data

    def _readlink(self, args: bytes) -> bytes:
        lk = self.lookup(self.path_arg(args), follow=False)
        if not st.S_ISLNK(lk.path.inode.getattr().mode):
            raise FileError(errno.EINVAL)
        target = os.fsencode(lk.path.inode.readlink())
        return b"F%x;" % len(target) + target

    def _readonly(self, _args: bytes) -> bytes:
        raise FileError(errno.EROFS)

    # ---- helpers ----
    @staticmethod
    def path_arg(hexname: bytes) -> str:
        raw = bytes.fromhex(hexname.decode("ascii"))
        if not raw:
            raise FileError(errno.ENOENT)
        if len(raw) > MAX_PATH or b"\0" in raw:
            raise FileError(errno.ENAMETOOLONG if len(raw) > MAX_PATH else errno.EINVAL)
        return os.fsdecode(raw)

    def lookup(self, path: str, follow: bool = True):
        view = self.view(self.pid)
        if view is None:
            raise FileError(errno.ESRCH)
        root, cwd, creds = view
        lk = self.vfs.lookup(path, cwd, root, creds, follow)
        lk.must_exist()
        return lk

    def open_guest(self, path: str) -> Tuple[int, object]:
        """(host fd, guest attributes) of the guest file `path`, after the checks
        the guest's own open(O_RDONLY) would make."""
        from umlpy.vfs import ops
        lk = self.lookup(path)
        a = lk.path.inode.getattr()
        if st.S_ISDIR(a.mode):
            raise FileError(errno.EISDIR)
        if not st.S_ISREG(a.mode):
            raise FileError(errno.ENODEV)
        creds = self.view(self.pid)[2]
        return ops.open_(self.vfs, lk, creds, os.O_RDONLY, 0, _no_devices).fd, a

    def _file(self, gfd: bytes) -> Tuple[int, object]:
        f = self.files.get(hexint(gfd))
        if f is None:
            raise FileError(errno.EBADF)
        return f


def _no_devices(*_args) -> int:
    raise FileError(errno.ENODEV)


OPS: Dict[bytes, Callable[[HostIO, bytes], bytes]] = {
    b"setfs": HostIO._setfs, b"open": HostIO._open, b"close": HostIO._close,
    b"pread": HostIO._pread, b"fstat": HostIO._fstat, b"readlink": HostIO._readlink,
    b"pwrite": HostIO._readonly, b"unlink": HostIO._readonly,
}
