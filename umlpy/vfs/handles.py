"""Which VFS object a guest descriptor refers to.

Guest descriptors are host descriptors (DESIGN principle 2), so the only thing
the kernel can learn from one is the host object's identity, (st_dev, st_ino).
This registry maps that identity back to the place in the guest's namespace
it was opened from. Objects with no host object of their own (directories of
every file system, O_PATH opens, procfs snapshots...) get a stand-in: a
private host object made for that one open, so its identity also names the
open file description. A directory stand-in is an empty host directory,
removed at once, so read(2) gives EISDIR natively and its file offset (which
lseek and rewinddir move natively) is the getdents position.
"""
from __future__ import annotations

import itertools
import os
from typing import Dict, List, Optional, Tuple

from umlpy.vfs.mount import Path

Key = Tuple[int, int]
_NO_ACCESS = os.O_ACCMODE      # "3": permission-checked, but neither readable nor writable


class Handle:
    __slots__ = ("path", "is_dir", "o_path", "listing", "stat_ahead")

    def __init__(self, path: Path, is_dir: bool = False, o_path: bool = False) -> None:
        self.path = path
        self.is_dir = is_dir
        self.o_path = o_path        # opened O_PATH: no data or attribute calls through it
        self.listing: Optional[List[tuple]] = None      # directory snapshot for getdents
        self.stat_ahead = 0         # listing entries whose stats are published (statcache)


class Handles:
    GC_AT = 50_000
    # A deleted file's data lives as long as a handle names its inode: collect
    # after this many last names removed, or this many bytes in them, so that a
    # guest writing and deleting files cannot pin unbounded host memory.
    ORPHAN_FILES = 64
    ORPHAN_BYTES = 64 << 20

    def __init__(self, scratch: str) -> None:
        self.dir = os.path.join(scratch, "standin")
        os.makedirs(self.dir, mode=0o700, exist_ok=True)
        self.by_key: Dict[Key, Handle] = {}
        self._names = itertools.count()
        self.gc_hook = None         # callable returning the keys guests still hold
        self._orphans = 0
        self._orphan_bytes = 0

    def register(self, key: Key, path: Path, is_dir: bool = False,
                 o_path: bool = False) -> Handle:
        if len(self.by_key) >= self.GC_AT:
            self.collect()
        h = Handle(path, is_dir, o_path)
        self.by_key[key] = h
        return h

    def get(self, key: Key) -> Optional[Handle]:
        return self.by_key.get(key)

    def path_of_key(self, key: Key) -> Optional[Path]:
        h = self.by_key.get(key)
        return h.path if h is not None else None

    def standin(self, path: Path, is_dir: bool, o_path: bool) -> int:
        """A fresh host descriptor standing for `path` in one open.

        Never an O_PATH descriptor: seccomp's ADDFD refuses those (EBADF).
        For O_PATH opens of non-directories a memfd opened with access mode
        3 stands in: Linux gives such a descriptor neither read nor write
        access, so read(2) and write(2) fail with EBADF natively, as on an
        O_PATH descriptor."""
        if is_dir:
            d = os.path.join(self.dir, str(next(self._names)))
            os.mkdir(d, 0o500)
            try:
                fd = os.open(d, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
            finally:
                os.rmdir(d)
        else:
            mfd = os.memfd_create("umlpy-path", os.MFD_CLOEXEC)
            try:
                fd = os.open(f"/proc/self/fd/{mfd}", _NO_ACCESS | os.O_CLOEXEC)
            finally:
                os.close(mfd)
        s = os.fstat(fd)
        self.register((s.st_dev, s.st_ino), path, is_dir, o_path)
        return fd

    def orphaned(self, size: int) -> None:
        """The last name of a file of `size` bytes went away (unlink, rename over)."""
        self._orphans += 1
        self._orphan_bytes += max(0, size)
        if self._orphans >= self.ORPHAN_FILES or self._orphan_bytes >= self.ORPHAN_BYTES:
            self.collect()

    def collect(self) -> None:
        """Forget stand-ins no guest holds any more."""
        self._orphans = self._orphan_bytes = 0
        if self.gc_hook is None:
            return
        live = self.gc_hook()
        self.by_key = {k: h for k, h in self.by_key.items() if k in live}
