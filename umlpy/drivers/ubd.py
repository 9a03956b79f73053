"""The ubd driver: the guest's /dev/ubda, /dev/ubdb... (block major 98, 16
minors per device, as UML numbers them).

Each unit is a block device of umlpy.block (a raw image or a COW file over a
backing file). The kernel's own file systems (ext2) use the device object;
a guest that opens the node itself (dd, mke2fs, fsck) gets a host descriptor
of the image file, so its reads and writes run natively and share the host
page cache with the kernel's. A COW unit has no single host file to hand
out, so opening its node is refused (EOPNOTSUPP) for now.
"""
from __future__ import annotations

import errno
import os
import stat as st
from dataclasses import dataclass, field
from typing import Dict, Iterator, List, Optional

from umlpy.block import device as blockdev
from umlpy.block.device import BlockDevice
from umlpy.block.options import UbdSpec, device_name
from umlpy.block.ubd import open_ubd
from umlpy.drivers import chardev
from umlpy.drivers.block_ioctls import (BLKALIGNOFF, BLKBSZGET, BLKDISCARDZEROES, BLKFLSBUF,
                                        BLKGETSIZE, BLKGETSIZE64, BLKIOMIN, BLKIOOPT, BLKPBSZGET,
                                        BLKROGET, BLKRRPART, BLKSSZGET)

UBD_MAJOR = 98
MINORS_PER_DEVICE = 16


@dataclass
class UbdUnit:
    spec: UbdSpec
    device: BlockDevice
    mounts: List[object] = field(default_factory=list)     # file systems using it

    @property
    def index(self) -> int:
        return self.spec.index

    @property
    def name(self) -> str:
        return device_name(self.spec.index)

    @property
    def rdev(self) -> int:
        return os.makedev(UBD_MAJOR, self.spec.index * MINORS_PER_DEVICE)

    def ioctl(self, cmd: int) -> Optional[tuple]:
        """(value, size in bytes) to write back for `cmd`, None when nothing is
        written; OSError for a request this device refuses."""
        dev = self.device
        if cmd == BLKGETSIZE64:
            return blockdev.blkgetsize64(dev), 8
        if cmd == BLKGETSIZE:
            return blockdev.blkgetsize(dev), 8
        if cmd in (BLKSSZGET, BLKPBSZGET, BLKIOMIN):
            return blockdev.blksszget(dev), 4
        if cmd == BLKBSZGET:
            return 4096, 8
        if cmd == BLKROGET:
            return blockdev.blkroget(dev), 4
        if cmd in (BLKIOOPT, BLKALIGNOFF, BLKDISCARDZEROES):
            return 0, 4
        if cmd == BLKFLSBUF:
            blockdev.blkflsbuf(dev)
            return None
        if cmd == BLKRRPART:
            raise OSError(errno.EINVAL, "ubd devices have no partition table")
        raise OSError(errno.ENOTTY, "not a block ioctl")


class UbdTable:
    """The units of one kernel, by index."""

    def __init__(self) -> None:
        self.units: Dict[int, UbdUnit] = {}

    def add(self, spec: UbdSpec) -> UbdUnit:
        """Open the device (BlockError, one line, on failure) and plug it in."""
        if spec.index in self.units:
            raise OSError(errno.EEXIST, f"{device_name(spec.index)} exists")
        unit = UbdUnit(spec, open_ubd(spec))
        self.units[spec.index] = unit
        return unit

    def get(self, index: int) -> Optional[UbdUnit]:
        return self.units.get(index)

    def by_rdev(self, rdev: int) -> Optional[UbdUnit]:
        if os.major(rdev) != UBD_MAJOR or os.minor(rdev) % MINORS_PER_DEVICE:
            return None
        return self.units.get(os.minor(rdev) // MINORS_PER_DEVICE)

    def remove(self, index: int) -> None:
        unit = self.units.get(index)
        if unit is None:
            raise OSError(errno.ENODEV, f"{device_name(index)} does not exist")
        if unit.mounts:
            raise OSError(errno.EBUSY, "Device is currently open")
        del self.units[index]
        unit.device.close()

    def __iter__(self) -> Iterator[UbdUnit]:
        return iter(list(self.units.values()))

    def close(self) -> None:
        """Flush and release every device (locks included)."""
        for unit in list(self.units.values()):
            try:
                unit.device.close()
            except OSError:
                pass
        self.units.clear()

    def add_nodes(self, devdir) -> None:
        """/dev/ubdX block nodes in the guest's /dev (an inode of a devfs)."""
        for unit in self:
            try:
                devdir.mknod(unit.name, st.S_IFBLK | 0o660, unit.rdev, 0, DISK_GID)
            except FileExistsError:
                pass


DISK_GID = 6        # the "disk" group of Debian's base passwd


def open_node(kernel, minor: int, flags: int) -> int:
    """A guest open of /dev/ubdX: the image file itself, natively."""
    table: Optional[UbdTable] = getattr(kernel, "ubd", None)
    unit = table.by_rdev(os.makedev(UBD_MAJOR, minor)) if table is not None else None
    if unit is None:
        raise OSError(errno.ENXIO, "no such device")
    if flags & os.O_ACCMODE != os.O_RDONLY and unit.device.readonly:
        raise OSError(errno.EROFS, "read-only device")
    host_fd = getattr(unit.device, "fd", None)
    if host_fd is None:
        raise OSError(errno.EOPNOTSUPP, "raw access to a COW device")
    return os.open(f"/proc/self/fd/{host_fd}", flags | os.O_CLOEXEC)


chardev.register_block(UBD_MAJOR, range(256), open_node)
