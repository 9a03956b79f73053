"""fsync, fdatasync, sync and syncfs: a file system whose page cache the kernel
keeps (ext2 on a ubd device) writes it back here; for every other descriptor
the host's own call does the work."""
from __future__ import annotations

from umlpy.syscalls.call import PASS, Call
from umlpy.syscalls.registry import syscall


@syscall("fsync", "fdatasync")
def sys_fsync(c: Call):
    _s, h = c.kernel.fds.lookup(c.task, c.fd(0))
    fsync = getattr(h.path.inode, "fsync", None) if h is not None else None
    if fsync is None:
        return PASS
    fsync()
    return 0


@syscall("sync")
def sys_sync(c: Call):
    c.kernel.vfs.sync()
    return PASS                 # and the host's sync, for hostfs and the images


@syscall("syncfs")
def sys_syncfs(c: Call):
    _s, h = c.kernel.fds.lookup(c.task, c.fd(0))
    if h is not None:
        h.path.mount.fs.sync()
    return PASS
