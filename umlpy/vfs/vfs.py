"""The guest's file-system namespace: its mount table, the walk, and the
registry of what guest descriptors refer to."""
from __future__ import annotations

import errno
import os
import shutil
import tempfile
from typing import Optional

from umlpy.vfs.handles import Handles
from umlpy.vfs.inode import FileSystem
from umlpy.vfs.mount import Mount, MountTable, Path
from umlpy.vfs.namei import Lookup, Walker, path_string

SCRATCH_PREFIX = "umlpy-vfs-"


def _scratch_base() -> str:
    """Memory-backed when the host has /dev/shm: stand-ins and fifos live there."""
    shm = "/dev/shm"
    if os.path.isdir(shm) and os.access(shm, os.W_OK | os.X_OK):
        return shm
    return tempfile.gettempdir()


def _remove_stale_scratch(base: str) -> None:
    """Scratch directories of instances that were killed (kill -9 skips cleanup)."""
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
    def __init__(self) -> None:
        base = _scratch_base()
        _remove_stale_scratch(base)
        self.scratch = tempfile.mkdtemp(prefix=f"{SCRATCH_PREFIX}{os.getpid()}-", dir=base)
        os.chmod(self.scratch, 0o700)
        self.mounts = MountTable()
        self.walker = Walker(self.mounts)
        self.handles = Handles(self.scratch)

    def scratch_dir(self, name: str) -> str:
        d = os.path.join(self.scratch, name)
        os.makedirs(d, mode=0o700, exist_ok=True)
        return d

    # ---- mounts ----
    def set_root(self, fs: FileSystem, source: str, flags: int = 0) -> Mount:
        return self.mounts.set_root(fs, source, flags)

    def root_path(self) -> Path:
        return self.mounts.root_path()

    def mount(self, fs: FileSystem, where: str, source: str, flags: int = 0) -> Mount:
        """Mount at a guest path. A missing mount point is made up in the
        namespace (PRoot's "glue"): the kernel never writes into a user's
        directory or image just to mount its own /proc, /sys or /dev."""
        root = self.root_path()
        lk = self.walker.walk(where, root, root, None)
        if lk.path is None:
            target = self.mounts.add_glue(lk.parent, lk.name)
        else:
            target = lk.path
        if not target.inode.is_dir():
            raise OSError(errno.ENOTDIR, f"{where}: not a directory")
        return self.mounts.attach(fs, target, source, flags)

    def lookup(self, path: str, start: Optional[Path] = None, root: Optional[Path] = None,
               creds=None, follow: bool = True, resolve: int = 0) -> Lookup:
        root = root or self.root_path()
        return self.walker.walk(path, start or root, root, creds, follow, resolve)

    def path_string(self, path: Path, root: Optional[Path] = None) -> Optional[str]:
        return path_string(path, root or self.root_path())

    # ---- lifetime ----
    def sync(self) -> None:
        for m in self.mounts:
            try:
                m.fs.sync()
            except OSError:
                pass

    def close(self) -> None:
        self.sync()
        seen = set()
        for m in reversed(list(self.mounts)):
            if id(m.fs) not in seen:
                seen.add(id(m.fs))
                m.fs.close()
        shutil.rmtree(self.scratch, ignore_errors=True)
