"""A pure-Python ext2/ext3/ext4 driver working on a block device.

    from umlpy.fs.ext2 import Ext2Volume, FileDevice, ROOT_INO
    vol = Ext2Volume.open(FileDevice("disk.img"))
    ino = vol.lookup(ROOT_INO, b"etc")
    ...
    vol.close()

Ext2Volume (volume.py, namespace.py, fileio.py) works on inode numbers and
bytes names; mkfs() formats a device and populate() copies a host tree in.
Nothing here depends on the guest runtime or the host layer: any object with
the BlockDevice protocol (device.py) will do.
"""
from .constants import ROOT_INO
from .device import BlockDevice, BytesDevice, FileDevice
from .errors import Ext2Error
from .inode import InodeAttr
from .mkfs import mkfs
from .namespace import RENAME_EXCHANGE, RENAME_NOREPLACE
from .populate import populate
from .volume import Ext2Volume, StatFs

__all__ = ["BlockDevice", "BytesDevice", "FileDevice", "Ext2Error", "Ext2Volume", "InodeAttr",
           "StatFs", "ROOT_INO", "RENAME_EXCHANGE", "RENAME_NOREPLACE", "mkfs", "populate"]
