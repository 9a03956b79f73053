"""The guest's file-system namespace: a mount table and lookups in it."""
from __future__ import annotations

import errno
import os
import shutil
import tempfile
from typing import Optional

from umlpy.fs.hostfs import DevFs, EmptyFs, HostFs
from umlpy.vfs.namei import Lookup, Mount, Walker


SCRATCH_PREFIX = "umlpy-vfs-"


def _remove_stale_scratch() -> None:
    """Scratch directories of instances that were killed (kill -9 skips cleanup)."""
    base = tempfile.gettempdir()
    try:
        names = os.listdir(base)
    except OSError:
        return
    for name in names:
        if not name.startswith(SCRATCH_PREFIX):
            continue
        pid = name[len(SCRATCH_PREFIX):].split("-", 1)[0]
        if pid.isdigit() and not os.path.exists(f"/proc/{pid}"):
            shutil.rmtree(os.path.join(base, name), ignore_errors=True)


class Vfs:
    """One instance's mounts. The first release: a hostfs root, a small devfs
    at /dev and an empty placeholder at /proc (procfs comes with the VFS issue)."""

    def __init__(self, root_dir: str, readonly: bool = False) -> None:
        if not os.path.isdir(root_dir):
            raise OSError(errno.ENOTDIR, f"root {root_dir!r} is not a directory")
        _remove_stale_scratch()
        self.scratch = tempfile.mkdtemp(prefix=f"{SCRATCH_PREFIX}{os.getpid()}-")
        os.chmod(self.scratch, 0o700)
        self.mounts: dict = {}
        self.mount("/", HostFs(root_dir, readonly), root_dir, "ro" if readonly else "rw")
        self.mount("/dev", DevFs(os.path.join(self.scratch, "dev")), "devtmpfs", "ro")
        self.mount("/proc", EmptyFs(os.path.join(self.scratch, "proc")), "proc", "ro")
        self.walker = Walker(self.mounts)

    def mount(self, path: str, fs, source: str, options: str) -> None:
        self.mounts[path] = Mount(path, fs, source, options)

    def close(self) -> None:
        for m in self.mounts.values():
            m.fs.close()
        self.mounts.clear()
        shutil.rmtree(self.scratch, ignore_errors=True)

    def lookup(self, path: str, cwd: str = "/", follow: bool = True) -> Lookup:
        return self.walker.walk(path, cwd, follow)

    def guest_path_of(self, host_path: str) -> Optional[str]:
        """The guest path of a host object the guest holds open, or None when it
        has none (pipes, sockets, deleted files)."""
        if not host_path.startswith("/") or host_path.endswith(" (deleted)"):
            return None
        best = None
        for m in self.mounts.values():
            rel = m.fs.guest_path_of(host_path)
            if rel is None:
                continue
            host_len = len(getattr(m.fs, "host_dir", ""))
            if best is None or host_len > best[0]:
                best = (host_len, (m.path.rstrip("/") + rel) or "/")
        return best[1] if best else None

    def is_mountpoint(self, guest_path: str) -> bool:
        return guest_path in self.mounts
