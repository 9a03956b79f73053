"""Directories of generated files: the machinery procfs and sysfs share.

A synthetic file has no stored data: opening it runs a generator and hands
back a sealed memfd holding the text, reopened read-only, so that read,
lseek, pread and mmap run natively and a write fails with EBADF as on a
read-only descriptor. Every open is a fresh snapshot, like Linux's seq files
read in one go. Directories are listed through readdir() and looked up
through lookup(); they are never opened as files (the VFS's rule).
"""
from __future__ import annotations

import errno
import fcntl
import itertools
import os
import stat as st
import time
from typing import Callable, Dict, Iterable, Iterator, List, Optional, Tuple, Union

from umlpy.fs import hostcalls
from umlpy.vfs.inode import Attr, FileSystem, Inode, StatFs, dtype_of

Text = Union[str, bytes]
SEALS = fcntl.F_SEAL_SEAL | fcntl.F_SEAL_SHRINK | fcntl.F_SEAL_GROW | fcntl.F_SEAL_WRITE
# status flags a snapshot keeps; the access mode is always O_RDONLY
KEPT_FLAGS = os.O_NONBLOCK


def fail(err: int) -> OSError:
    """An OSError to raise, as a Linux operation fails with err."""
    return OSError(err, os.strerror(err))


def as_bytes(data: Text) -> bytes:
    return data.encode("utf-8", "surrogateescape") if isinstance(data, str) else data


def snapshot_fd(data: Text, flags: int = os.O_RDONLY, name: str = "umlpy-synth") -> int:
    """A read-only host descriptor (O_CLOEXEC, at offset 0) of a sealed memfd holding data."""
    mfd = os.memfd_create(name, os.MFD_CLOEXEC | os.MFD_ALLOW_SEALING)
    try:
        buf = memoryview(as_bytes(data))
        while buf:
            buf = buf[os.write(mfd, buf):]
        fcntl.fcntl(mfd, fcntl.F_ADD_SEALS, SEALS)
        # A new open file description, read-only: writes fail EBADF natively,
        # and it does not share the writer's offset.
        return hostcalls.reopen(mfd, os.O_RDONLY | os.O_CLOEXEC | (flags & KEPT_FLAGS))
    finally:
        os.close(mfd)


def check_read_only(flags: int) -> None:
    """Generated files refuse write access at open, as Linux's read-only proc files do."""
    if flags & os.O_ACCMODE != os.O_RDONLY or flags & os.O_TRUNC:
        raise fail(errno.EACCES)


class SynthFs(FileSystem):
    """A file system of generated inodes. Subclasses build `self.root`."""

    volatile = True         # contents change behind the VFS (processes come and go)

    def __init__(self, kernel) -> None:
        super().__init__()
        self.kernel = kernel
        # inode times default to the kernel's boot time
        self.boot_ns: int = getattr(kernel, "boot_time_ns", None) or time.time_ns()
        self._inos = itertools.count(2)       # 1 is the root, as Linux's proc root

    def next_ino(self) -> int:
        return next(self._inos)

    def statfs(self) -> StatFs:
        return StatFs(self.magic, f_bsize=4096, f_frsize=4096)


class SynthInode(Inode):
    """An inode whose attributes are computed; subclasses say what it holds."""

    def __init__(self, fs: SynthFs, ino: int, mode: int) -> None:
        self.fs = fs
        self.ino = ino
        self._mode = mode

    # hooks for dynamic owners and times (per-process entries)
    def owner(self) -> Tuple[int, int]:
        return 0, 0

    def time_ns(self) -> int:
        return self.fs.boot_ns

    def nlink(self) -> int:
        return 1

    def getattr(self) -> Attr:
        uid, gid = self.owner()
        t = self.time_ns()
        return Attr(mode=self._mode, ino=self.ino, nlink=self.nlink(), uid=uid, gid=gid,
                    size=0, blocks=0, atime_ns=t, mtime_ns=t, ctime_ns=t, btime_ns=t,
                    blksize=1024 if st.S_ISREG(self._mode) else 4096)

    @property
    def mode(self) -> int:
        return self._mode


class GenFile(SynthInode):
    """A regular file whose text comes from `gen` at each open."""

    def __init__(self, fs: SynthFs, ino: int, gen: Callable[[], Text], perm: int = 0o444) -> None:
        super().__init__(fs, ino, st.S_IFREG | perm)
        self.gen = gen

    def check_access(self) -> None:
        """Extra checks before generating (ptrace access for per-process files)."""

    def open(self, flags: int) -> int:
        check_read_only(flags)
        self.check_access()
        return snapshot_fd(self.gen(), flags)


class Symlink(SynthInode):
    """A plain symlink; `target` may be computed at each readlink."""

    def __init__(self, fs: SynthFs, ino: int, target: Union[str, Callable[[], str]]) -> None:
        super().__init__(fs, ino, st.S_IFLNK | 0o777)
        self._target = target

    def readlink(self) -> str:
        t = self._target
        return t() if callable(t) else t


class SynthDir(SynthInode):
    """A read-only directory. Subclasses provide child() and children()."""

    def __init__(self, fs: SynthFs, ino: int, perm: int = 0o555) -> None:
        super().__init__(fs, ino, st.S_IFDIR | perm)

    def child(self, name: str) -> Optional[Inode]:
        raise NotImplementedError

    def children(self) -> Iterable[Tuple[str, Inode]]:
        raise NotImplementedError

    def lookup(self, name: str) -> Inode:
        inode = self.child(name)
        if inode is None:
            raise FileNotFoundError(errno.ENOENT, os.strerror(errno.ENOENT), name)
        return inode

    def readdir(self) -> Iterator[Tuple[str, int, int]]:
        for name, inode in self.children():
            yield name, inode.ino, dtype_of(inode.mode)

    def nlink(self) -> int:
        return 2

    # A synthetic directory is not the guest's to change (Linux's errors for
    # a directory without these operations).
    def create(self, name, mode, uid, gid):
        raise fail(errno.EACCES)

    def mkdir(self, name, mode, uid, gid):
        raise fail(errno.EPERM)

    def mknod(self, name, mode, rdev, uid, gid):
        raise fail(errno.EPERM)

    def symlink(self, name, target, uid, gid):
        raise fail(errno.EPERM)

    def link(self, name, inode):
        raise fail(errno.EPERM)

    def unlink(self, name):
        raise fail(errno.EPERM)

    def rmdir(self, name):
        raise fail(errno.EPERM)

    def rename(self, name, newdir, newname, flags=0):
        raise fail(errno.EPERM)


class StaticDir(SynthDir):
    """A directory whose entries are fixed when the tree is built (their
    contents are still generated at each open)."""

    def __init__(self, fs: SynthFs, ino: Optional[int] = None, perm: int = 0o555) -> None:
        super().__init__(fs, ino if ino is not None else fs.next_ino(), perm)
        self.entries: Dict[str, Inode] = {}

    def add(self, name: str, inode: Inode) -> Inode:
        self.entries[name] = inode
        return inode

    def add_file(self, name: str, gen: Callable[[], Text], perm: int = 0o444) -> GenFile:
        return self.add(name, GenFile(self.fs, self.fs.next_ino(), gen, perm))

    def add_dir(self, name: str, perm: int = 0o555) -> "StaticDir":
        existing = self.entries.get(name)
        if isinstance(existing, StaticDir):
            return existing
        return self.add(name, StaticDir(self.fs, perm=perm))

    def add_link(self, name: str, target: Union[str, Callable[[], str]]) -> Symlink:
        return self.add(name, Symlink(self.fs, self.fs.next_ino(), target))

    def makedirs(self, path: str) -> "StaticDir":
        d = self
        for comp in path.split("/"):
            if comp:
                d = d.add_dir(comp)
        return d

    def child(self, name: str) -> Optional[Inode]:
        return self.entries.get(name)

    def children(self) -> Iterable[Tuple[str, Inode]]:
        return list(self.entries.items())

    def nlink(self) -> int:
        return 2 + sum(1 for i in self.entries.values() if st.S_ISDIR(i.mode))


def read_text(read: Callable[[], bytes], default: str = "") -> str:
    """A host read for a generator, with `default` when the host has no such file."""
    try:
        return read().decode("utf-8", "surrogateescape")
    except (FileNotFoundError, PermissionError):
        return default


def cpu_list(ids: List[int]) -> str:
    """Linux's cpulist format: "0-3,5"."""
    out: List[str] = []
    ids = sorted(set(ids))
    i = 0
    while i < len(ids):
        j = i
        while j + 1 < len(ids) and ids[j + 1] == ids[j] + 1:
            j += 1
        out.append(str(ids[i]) if i == j else f"{ids[i]}-{ids[j]}")
        i = j + 1
    return ",".join(out)


def parse_cpu_list(text: str) -> List[int]:
    ids: List[int] = []
    for part in text.strip().split(","):
        if not part:
            continue
        lo, _, hi = part.partition("-")
        ids.extend(range(int(lo), int(hi or lo) + 1))
    return ids
