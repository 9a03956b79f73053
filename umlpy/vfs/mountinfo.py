"""/proc/PID/mounts and /proc/PID/mountinfo, from the guest's mount table.

Both are seen from a root (the process's): a mount whose mount point is not
below that root is left out, and mount points are written relative to it, as
Linux does for a chrooted reader.
"""
from __future__ import annotations

import os
from typing import Iterator, List, Optional, Tuple

from umlpy.vfs.mount import MS_NODEV, MS_NOEXEC, MS_NOSUID, Mount, MountTable, Path
from umlpy.vfs.namei import path_string

_ESCAPED = {" ": "\\040", "\t": "\\011", "\n": "\\012", "\\": "\\134"}


def escape(s: str) -> str:
    """Octal escapes for the characters that would break the fields' syntax."""
    return "".join(_ESCAPED.get(c, c) for c in s)


def mount_point(m: Mount, root: Path) -> Optional[str]:
    """Where mount m sits, as a path from `root`; None when not visible from there."""
    return path_string(Path(m, m.root), root)


def root_in_fs(m: Mount) -> str:
    """The directory of its file system that m shows (not "/" for a bind of a subtree)."""
    names: List[str] = []
    d = m.root
    while d is not None and d.parent is not None:
        names.append(d.name)
        d = d.parent
    return "/" + "/".join(reversed(names))


def visible(table: MountTable, root: Path) -> Iterator[Tuple[Mount, str]]:
    """(mount, mount point) in mount order, as seen from root."""
    for m in table:
        where = mount_point(m, root)
        if where is not None:
            yield m, where


def _dev(fs) -> str:
    return f"{os.major(fs.dev)}:{os.minor(fs.dev)}"


def _source(m: Mount) -> str:
    return escape(m.source) if m.source else "none"


def mounts_text(table: MountTable, root: Path) -> str:
    """/proc/mounts: "source mountpoint type options 0 0" lines."""
    return "".join(f"{_source(m)} {escape(where)} {escape(m.fs.type_name)} {m.options()} 0 0\n"
                   for m, where in visible(table, root))


def _mount_opts(m: Mount) -> str:
    """Per-mount options (mountinfo field 6): ro/rw of the mount and its flags."""
    opts = ["ro" if m.readonly else "rw"]
    for bit, name in ((MS_NOSUID, "nosuid"), (MS_NODEV, "nodev"), (MS_NOEXEC, "noexec")):
        if m.flags & bit:
            opts.append(name)
    return ",".join(opts)


def _super_opts(m: Mount) -> str:
    """Per-superblock options (the last field): ro/rw of the fs and its own options."""
    extra = m.fs.mount_options()
    return ("ro" if m.fs.readonly else "rw") + ("," + extra if extra else "")


def mountinfo_text(table: MountTable, root: Path) -> str:
    """/proc/PID/mountinfo lines:
    id parent maj:min root mountpoint opts [optional fields] - type source super-opts."""
    lines = []
    for m, where in visible(table, root):
        parent = m.parent.id if m.parent is not None else m.id   # the namespace root: itself
        lines.append(f"{m.id} {parent} {_dev(m.fs)} {escape(root_in_fs(m))} {escape(where)} "
                     f"{_mount_opts(m)} - {escape(m.fs.type_name)} {_source(m)} "
                     f"{_super_opts(m)}\n")
    return "".join(lines)
