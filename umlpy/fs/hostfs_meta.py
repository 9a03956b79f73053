"""The persistent ownership store of host objects that cannot carry xattrs.

Linux allows user.* extended attributes on regular files and directories
only, so a guest's owner and mode of a symlink, FIFO or socket on a host
directory (and of everything, on a host file system without user xattrs)
go to a log file at the top of that directory, `.umlpy-meta`, which the
guest never sees. One line per change, the last one wins:

    <host ino> <host type, octal> <uid> <gid> <mode, octal> <rdev>
    <host ino> <host type, octal> -                 (override dropped)

Entries are keyed by the host inode number and type, so they follow renames
and hard links; an entry whose inode number the host has since given to an
object of another type is ignored. The log is appended to (crash-safe line
by line), made durable by sync(), and compacted when it is loaded.
"""
from __future__ import annotations

import os
from typing import Dict, Optional, Tuple

LOG_NAME = ".umlpy-meta"
Meta = Tuple[int, int, int, int]            # uid, gid, mode (with type), rdev


def is_private_name(rel: str) -> bool:
    """The names of the store itself (and its compaction temporary), at the top."""
    return rel.startswith(LOG_NAME)


class MetaLog:
    def __init__(self, root_fd: int, writable: bool) -> None:
        self.root_fd = root_fd
        self.writable = writable
        self.entries: Dict[Tuple[int, int], Meta] = {}
        self.fd = -1
        self._load()

    def get(self, ino: int, host_type: int) -> Optional[Meta]:
        return self.entries.get((ino, host_type))

    def set(self, ino: int, host_type: int, meta: Optional[Meta]) -> None:
        key = (ino, host_type)
        if meta is None:
            if self.entries.pop(key, None) is not None:
                self._append(f"{ino} {host_type:o} -\n")
            return
        if self.entries.get(key) == meta:
            return
        self.entries[key] = meta
        uid, gid, mode, rdev = meta
        self._append(f"{ino} {host_type:o} {uid} {gid} {mode:o} {rdev}\n")

    def sync(self) -> None:
        if self.fd >= 0:
            os.fsync(self.fd)

    def close(self) -> None:
        if self.fd >= 0:
            os.close(self.fd)
            self.fd = -1

    # ---- the file ----
    def _append(self, line: str) -> None:
        if not self.writable:
            return
        if self.fd < 0:
            self.fd = os.open(LOG_NAME, os.O_WRONLY | os.O_CREAT | os.O_APPEND | os.O_NOFOLLOW
                              | os.O_CLOEXEC, 0o600, dir_fd=self.root_fd)
        os.write(self.fd, line.encode())

    def _load(self) -> None:
        try:
            fd = os.open(LOG_NAME, os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC, dir_fd=self.root_fd)
        except OSError:
            return
        try:
            with os.fdopen(fd, "rb") as f:
                lines = f.read().splitlines()
        except OSError:
            return
        for raw in lines:
            self._parse(raw)
        if self.writable and len(lines) > 2 * len(self.entries) + 64:
            self._compact()

    def _parse(self, raw: bytes) -> None:
        """One line; a torn or foreign line is skipped, never fatal."""
        parts = raw.split()
        try:
            key = (int(parts[0]), int(parts[1], 8))
            if parts[2] == b"-":
                self.entries.pop(key, None)
            else:
                self.entries[key] = (int(parts[2]), int(parts[3]), int(parts[4], 8),
                                     int(parts[5]))
        except (ValueError, IndexError):
            pass

    def _compact(self) -> None:
        tmp = LOG_NAME + ".new"
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_NOFOLLOW | os.O_CLOEXEC,
                     0o600, dir_fd=self.root_fd)
        try:
            text = "".join(f"{ino} {t:o} {u} {g} {m:o} {r}\n"
                           for (ino, t), (u, g, m, r) in self.entries.items())
            os.write(fd, text.encode())
            os.fsync(fd)
        finally:
            os.close(fd)
        os.rename(tmp, LOG_NAME, src_dir_fd=self.root_fd, dst_dir_fd=self.root_fd)
