"""devfs: the guest's /dev, a tmpfs populated like a small Linux /dev.

Only the nodes are made here; opening a device node by its rdev is the VFS's
business (its device table). Guest root may mknod more: it is a tmpfs.
"""
from __future__ import annotations

import os
import stat as st
from typing import Optional, Tuple

from umlpy.fs.tmpfs import TmpFs

# name, major, minor, mode (as on Debian)
CHAR_DEVICES: Tuple[Tuple[str, int, int, int], ...] = (
    ("null", 1, 3, 0o666),
    ("zero", 1, 5, 0o666),
    ("full", 1, 7, 0o666),
    ("random", 1, 8, 0o666),
    ("urandom", 1, 9, 0o666),
    ("tty", 5, 0, 0o666),
    ("console", 5, 1, 0o600),
    ("ptmx", 5, 2, 0o666),
)
# mount points: the VFS puts devpts on pts and a tmpfs on shm (pts is 0755
# as devtmpfs makes it; devpts's own root mode shows once it is mounted)
DIRECTORIES: Tuple[Tuple[str, int], ...] = (("pts", 0o755), ("shm", 0o1777))
SYMLINKS: Tuple[Tuple[str, str], ...] = (
    ("fd", "/proc/self/fd"),
    ("stdin", "/proc/self/fd/0"),
    ("stdout", "/proc/self/fd/1"),
    ("stderr", "/proc/self/fd/2"),
)
TTY_GID = 5                     # Debian's "tty" group owns the tty devices


class DevFs(TmpFs):
    """A devtmpfs look-alike (type "devtmpfs" in /proc/mounts, tmpfs magic)."""

    type_name = "devtmpfs"

    def __init__(self, scratch_dir: Optional[str] = None, size: Optional[int] = None,
                 readonly: bool = False) -> None:
        super().__init__(size=size, mode=0o755, scratch_dir=scratch_dir)
        populate(self)
        self.readonly = readonly

    def mount_options(self) -> str:
        return "mode=755,inode64"


def populate(fs: TmpFs) -> None:
    """Fill the root of `fs` with the standard nodes, directories and links."""
    root = fs.root
    for name, major, minor, mode in CHAR_DEVICES:
        gid = TTY_GID if name in ("tty", "ptmx") else 0
        root.mknod(name, st.S_IFCHR | mode, os.makedev(major, minor), 0, gid)
    for name, mode in DIRECTORIES:
        root.mkdir(name, mode, 0, 0)
    for name, target in SYMLINKS:
        root.symlink(name, target, 0, 0)
