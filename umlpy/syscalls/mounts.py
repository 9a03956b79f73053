"""mount(2) and umount2(2): the guest's own mount table.

Guest root may mount the kernel's file systems (tmpfs, proc, sysfs, devpts,
devtmpfs), bind-mount, move (MS_MOVE), remount and pivot_root; a host
directory (hostfs) is not reachable this way: what the guest may see of the
host is decided on the command line.  Every one of these only rearranges the
guest's own mount table, so none can reach past the root it was given.

umount of / gives EBUSY; Linux would instead remount the root read-only
(without MNT_DETACH) or detach it lazily (with it), neither useful here.
"""
from __future__ import annotations

import errno
import os
import stat as st

from umlpy.kernel.blockmount import BLOCK_FS_TYPES, mount_block_fs, unmounted
from umlpy.syscalls.call import AT_FDCWD, Call
from umlpy.syscalls.fs import walk
from umlpy.syscalls.registry import syscall
from umlpy.vfs.mount import (MNT_DETACH, MNT_FORCE, MS_BIND, MS_NODEV, MS_NOEXEC, MS_NOSUID,
                             MS_RDONLY, MS_REC, MS_REMOUNT, UMOUNT_NOFOLLOW, Path)

MS_SILENT, MS_NOATIME, MS_NODIRATIME, MS_RELATIME, MS_STRICTATIME = 32768, 1024, 2048, 1 << 21, 1 << 24
MS_PRIVATE, MS_SLAVE, MS_SHARED, MS_UNBINDABLE = 1 << 18, 1 << 19, 1 << 20, 1 << 17
MS_MOVE = 8192
MS_MGC_MSK, MS_MGC_VAL = 0xFFFF0000, 0xC0ED0000
_PER_MOUNT = MS_RDONLY | MS_NOSUID | MS_NODEV | MS_NOEXEC
_PROPAGATION = MS_PRIVATE | MS_SLAVE | MS_SHARED | MS_UNBINDABLE
_IGNORED = MS_SILENT | MS_NOATIME | MS_NODIRATIME | MS_RELATIME | MS_STRICTATIME | MS_REC


def _new_fs(c: Call, fstype: str, data: str):
    k = c.kernel
    scratch = k.vfs.scratch_dir(f"mnt-{len(list(k.vfs.mounts))}")
    if fstype in ("tmpfs", "devtmpfs", "ramfs"):
        from umlpy.fs.devfs import DevFs
        from umlpy.fs.tmpfs import TmpFs
        if fstype == "devtmpfs":
            return DevFs(scratch_dir=scratch)
        fs = TmpFs.from_options(data, scratch_dir=scratch)
        fs.orphan_hook = k.vfs.handles.collect      # deleted files give their space back
        return fs
    if fstype == "proc":
        from umlpy.fs.procfs import ProcFs
        return ProcFs(k)
    if fstype == "sysfs":
        from umlpy.fs.sysfs import SysFs
        return SysFs(k)
    if fstype == "devpts":
        return k.devpts
    raise OSError(errno.ENODEV, f"unknown file system type {fstype!r}")


@syscall("mount")
def sys_mount(c: Call) -> int:
    if c.task.creds.euid != 0:
        return -errno.EPERM
    flags = c.args[3] & 0xFFFFFFFFFFFFFFFF
    if flags & MS_MGC_MSK == MS_MGC_VAL:
        flags &= ~MS_MGC_MSK
    target = walk(c, AT_FDCWD, c.path(1), True).must_exist()
    table = c.kernel.vfs.mounts
    if flags & _PROPAGATION:
        return 0                        # one namespace, nothing propagates
    if flags & MS_REMOUNT:
        if target.dentry.inode.key != target.mount.root.inode.key:
            return -errno.EINVAL
        data = os.fsdecode(c.bytes_arg(4, 4096)) if c.ptr(4) else ""
        remount = getattr(target.mount.fs, "remount", None)
        if data and remount is not None:
            remount(data)               # new limits (tmpfs size=, nr_inodes=)
        target.mount.flags = (target.mount.flags & ~_PER_MOUNT) | (flags & _PER_MOUNT)
        return 0
    if not target.inode.is_dir():
        return -errno.ENOTDIR
    if flags & MS_MOVE:
        src = walk(c, AT_FDCWD, c.path(0), True).must_exist()
        if src.dentry.inode.key != src.mount.root.inode.key:
            return -errno.EINVAL            # not a mount point
        table.move(src.mount, target)
        return 0
    if flags & MS_BIND:
        src = walk(c, AT_FDCWD, c.path(0), True).must_exist()
        table.attach(src.mount.fs, target, src.mount.source, flags & _PER_MOUNT,
                     root=src.dentry)
        return 0
    fstype = os.fsdecode(c.bytes_arg(2, 64)) if c.ptr(2) else ""
    data = os.fsdecode(c.bytes_arg(4, 4096)) if c.ptr(4) else ""
    source = os.fsdecode(c.bytes_arg(0, 4096)) if c.ptr(0) else "none"
    if fstype in BLOCK_FS_TYPES or fstype == "auto":
        fs = _block_fs(c, source, fstype, bool(flags & MS_RDONLY))
    else:
        fs = _new_fs(c, fstype, data)
    table.attach(fs, target, source, flags & _PER_MOUNT)
    return 0


def _block_fs(c: Call, source: str, fstype: str, readonly: bool):
    """ext2/3/4 on a ubd device node named by `source`."""
    dev = walk(c, AT_FDCWD, source, True).must_exist()
    a = dev.inode.getattr()
    if not st.S_ISBLK(a.mode):
        raise OSError(errno.ENOTBLK, "not a block device")
    if dev.mount.flags & MS_NODEV:
        raise OSError(errno.EACCES, "nodev mount")
    table = getattr(c.kernel, "ubd", None)
    unit = table.by_rdev(a.rdev) if table is not None else None
    if unit is None:
        raise OSError(errno.ENXIO, "no such device")
    if unit.mounts:
        raise OSError(errno.EBUSY, "already mounted")
    return mount_block_fs(unit, fstype, readonly, c.kernel.kmsg)


@syscall("umount2")
def sys_umount2(c: Call) -> int:
    flags = c.int(1)
    if flags & ~(MNT_FORCE | MNT_DETACH | UMOUNT_NOFOLLOW | 4):
        return -errno.EINVAL
    if c.task.creds.euid != 0:
        return -errno.EPERM
    target: Path = walk(c, AT_FDCWD, c.path(0), not flags & UMOUNT_NOFOLLOW).must_exist()
    m = target.mount
    if target.dentry.inode.key != m.root.inode.key:
        return -errno.EINVAL            # not a mount point
    table = c.kernel.vfs.mounts
    if m is table.root:
        return -errno.EBUSY             # see the module's note on umount of /
    for task in c.kernel.pids.tasks.values():
        for p in (task.fs.cwd, task.fs.root):
            if p.mount is m and not flags & MNT_DETACH:
                return -errno.EBUSY
    # umount -l takes the whole tree with it, as Linux's umount_tree does
    for gone in (table.subtree(m) if flags & MNT_DETACH else [m]):
        table.detach(gone)
        _release(c, gone.fs)
    return 0


def _release(c: Call, fs) -> None:
    """fs is mounted nowhere any more: write it back and let it go."""
    if any(o.fs is fs for o in c.kernel.vfs.mounts):
        return
    fs.sync()
    if fs is not getattr(c.kernel, "devpts", None):
        fs.close()
    for unit in getattr(c.kernel, "ubd", ()):
        unmounted(unit, fs)


@syscall("pivot_root")
def sys_pivot_root(c: Call) -> int:
    """new_root becomes / of the namespace, the old root moves to put_old; the
    checks and their errnos are Linux's (fs/namespace.c), in its order. The
    namespace's root is taken to sit on a rootfs, as a booted root does."""
    if c.task.creds.euid != 0:
        return -errno.EPERM
    new = walk(c, AT_FDCWD, c.path(0), True).must_exist()
    old = walk(c, AT_FDCWD, c.path(1), True).must_exist()
    for p in (new, old):
        if not p.inode.is_dir():
            return -errno.ENOTDIR
    table = c.kernel.vfs.mounts
    root = c.task.fs.root
    if new.mount is root.mount or old.mount is root.mount:
        return -errno.EBUSY
    if root.dentry.inode.key != root.mount.root.inode.key:
        return -errno.EINVAL            # the caller's root is not a mount's root (chroot)
    if new.dentry.inode.key != new.mount.root.inode.key:
        return -errno.EINVAL            # new_root is not a mount point
    if not table.below(old, new) or not table.below(new, root):
        return -errno.EINVAL
    old_root = Path(root.mount, root.mount.root)
    table.pivot(new.mount, old, root.mount)
    new_root = Path(new.mount, new.mount.root)
    for task in c.kernel.pids.tasks.values():       # Linux's chroot_fs_refs
        if task.fs.root.same(old_root):
            task.fs.root = new_root
        if task.fs.cwd.same(old_root):
            task.fs.cwd = new_root
    c.kernel.mirror_sharers()
    return 0
