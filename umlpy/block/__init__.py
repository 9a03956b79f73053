"""The block layer: ubd options, UML COW files, block devices and their cache.

Works on host files only (never imports umlpy.host): a test needs no guest.
"""
from .cache import CachedDevice
from .cow import CowHeader, decode_header, encode_header, read_header
from .cow_device import CowDevice
from .device import (BlockDevice, FileDevice, blkflsbuf, blkgetsize, blkgetsize64, blkroget,
                     blksszget)
from .errors import BlockError
from .options import (UbdSpec, collect_ubd_specs, default_root_spec, device_name,
                      device_numbers, parse_ubd_option)
from .ubd import open_image, open_ubd

__all__ = [
    "BlockDevice", "BlockError", "CachedDevice", "CowDevice", "CowHeader", "FileDevice",
    "UbdSpec", "blkflsbuf", "blkgetsize", "blkgetsize64", "blkroget", "blksszget",
    "collect_ubd_specs", "decode_header", "default_root_spec", "device_name",
    "device_numbers", "encode_header", "open_image", "open_ubd", "parse_ubd_option",
    "read_header",
]
