"""Mounting a file system that lives on a block device (a ubd unit)."""
from __future__ import annotations

import errno
from typing import Optional

from umlpy.kernel.klog import KERN_NOTICE, KERN_WARNING

BLOCK_FS_TYPES = ("ext2", "ext3", "ext4")


def mount_block_fs(unit, fstype: Optional[str], readonly: bool, klog=None):
    """The file system on `unit` (type detected when fstype is None or "auto"):
    OSError with one line when there is none we can mount."""
    from umlpy.fs import ext2fs
    from umlpy.fs.ext2.errors import Ext2Error
    from umlpy.fs.ext2.volume import Ext2Volume
    if fstype not in (None, "auto") + BLOCK_FS_TYPES:
        raise OSError(errno.ENODEV, f"unknown file system type '{fstype}'")
    if not ext2fs.probe(unit.device):
        raise OSError(errno.EINVAL, f"/dev/{unit.name}: can't find an ext2/ext3/ext4 "
                                    "file system (bad superblock)")
    try:
        volume = Ext2Volume.open(unit.device, readonly=readonly)
    except Ext2Error as e:
        raise OSError(e.errno or errno.EINVAL, f"/dev/{unit.name}: {e}") from None
    fs = ext2fs.Ext2Fs(volume, f"/dev/{unit.name}")
    unit.mounts.append(fs)
    if klog is not None:
        if volume.readonly_reason and not readonly:
            klog.printk(f"EXT4-fs ({unit.name}): {volume.readonly_reason}", KERN_WARNING)
        klog.printk(f"EXT4-fs ({unit.name}): mounted filesystem "
                    f"{'r/o' if fs.readonly else 'r/w'} ({fs.type_name})", KERN_NOTICE)
    return fs


def unmounted(unit, fs) -> None:
    """The mount of `fs` on `unit` is gone."""
    if fs in unit.mounts:
        unit.mounts.remove(fs)
