"""open_ubd(): from a parsed ubd option to an open, locked block device.

- ``d`` (data only): the file is a raw image, even if it starts like a COW file.
- two files: the first is a COW file over the second, created (sparse, v3) if missing.
  If the COW header names another backing file than the command line, the command
  line's file is used only if its size and mtime match the header, and the header is
  rewritten to name it (UML's rule); otherwise the header's file must match.
- one file that starts with the COW magic: a COW file over the backing file its
  header names; any other file: a raw image.
- ``r`` read-only (EROFS on write), ``s`` O_SYNC, ``c`` no host locks. Without ``c``
  the image or COW file is write-locked (read-locked when ``r``) and the backing file
  read-locked, so a second user fails: "ubd0: image root_fs is in use by another
  process".
Every failure is a BlockError whose message starts with the device ("ubd0: ...").
"""
from __future__ import annotations

import os
from typing import Optional

from .cache import CachedDevice
from .cow import (check_backing, fsync_directory, has_cow_magic, init_cow, read_header,
                  rewrite_backing)
from .cow_device import CowDevice
from .device import BlockDevice, FileDevice
from .errors import BlockError
from .hostfile import open_host_file
from .options import UbdSpec


def open_ubd(spec: UbdSpec, cache_pages: int = 0) -> BlockDevice:
    """Open the device `spec` describes; with cache_pages > 0, behind a write-back
    cache of that many 4 KiB pages."""
    try:
        device = _open(spec)
    except BlockError as exc:
        raise exc.prefixed(spec.label) from None
    if cache_pages > 0:
        return CachedDevice(device, max_pages=cache_pages)
    return device


def _open(spec: UbdSpec) -> BlockDevice:
    writable, lock = not spec.read_only, not spec.shared
    if spec.backing:
        if not os.path.lexists(spec.file):
            _create_cow(spec)
        what = f"COW file {spec.file}"
    else:
        what = f"image {spec.file}"
    fd = open_host_file(spec.file, what, writable=writable, sync=spec.sync, lock=lock)
    try:
        if spec.data_only or (not spec.backing and not has_cow_magic(os.pread(fd, 4, 0))):
            return FileDevice(fd, spec.file, readonly=spec.read_only, sync=spec.sync)
        return _open_cow(spec, fd)
    except BaseException:
        os.close(fd)
        raise


def _create_cow(spec: UbdSpec) -> None:
    """A new COW file for spec.backing (O_EXCL: never clobbers a file that appeared)."""
    fd = open_host_file(spec.file, f"COW file {spec.file}", writable=True, create=True,
                        lock=not spec.shared)
    try:
        init_cow(fd, spec.backing)
    except BaseException:
        os.unlink(spec.file)                # ours, created a moment ago and unusable
        raise
    finally:
        os.close(fd)
    fsync_directory(spec.file)


def _same_file(a: str, b: str) -> bool:
    try:
        return os.path.samefile(a, b)
    except OSError:
        return False


def _open_cow(spec: UbdSpec, cow_fd: int) -> CowDevice:
    try:
        header = read_header(cow_fd, spec.file)
    except BlockError as exc:
        if spec.backing:
            raise
        # it starts like a COW file: refuse rather than write over it as a raw image
        raise BlockError(f"{exc.strerror} (use ubd{spec.index}d= to open it as a raw "
                         "image)", exc.errno) from None
    backing: Optional[str] = spec.backing
    if backing and not _same_file(backing, header.backing_file):
        check_backing(header, backing, spec.file)
        if not spec.read_only:
            header = rewrite_backing(cow_fd, header, backing, spec.file)
    else:
        backing = header.backing_file
        check_backing(header, backing, spec.file)
    backing_fd = open_host_file(backing, f"backing file {backing}", writable=False,
                                lock=not spec.shared)
    try:
        return CowDevice(cow_fd, backing_fd, header, spec.file, readonly=spec.read_only,
                         sync=spec.sync)
    except BaseException:
        os.close(backing_fd)
        raise


def open_image(path: str, readonly: bool = False, sync: bool = False,
               lock: bool = True) -> FileDevice:
    """A raw image file as a device (for tools and tests)."""
    fd = open_host_file(path, f"image {path}", writable=not readonly, sync=sync, lock=lock)
    return FileDevice(fd, path, readonly=readonly, sync=sync)

