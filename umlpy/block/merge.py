"""Merging a COW file into a plain image (what uml_moo does).

merge_cow(cow, output): a new image, each sector from the COW file if its bit is set,
else from the backing file. Differences from uml_moo, both on purpose: the output is
written to a temporary file beside it and renamed into place when complete and
durable (a failed merge leaves no half image and no clobbered file), all-zero 1 MiB
chunks are left as holes, and a backing size that is not a multiple of 512 is kept
(uml_moo drops the last partial sector).

merge_cow(cow, None): in place (uml_moo -d): the COW file's sectors are written over
the backing file, which is write-locked meanwhile. The COW file is left as it was (it
no longer matches the backing file's mtime, so UML and open_ubd will refuse it).
"""
from __future__ import annotations

import errno
import os
import stat as st
from dataclasses import dataclass
from typing import Callable, Optional

from .cow import check_backing, fsync_directory, read_header
from .cow_device import CowDevice
from .errors import BlockError
from .hostfile import open_host_file, pwrite_full

CHUNK = 1 << 20
Progress = Callable[[int, int], None]       # (bytes done, bytes total)


@dataclass(frozen=True)
class MergeResult:
    output: str
    size: int                               # bytes of the merged image
    sectors_from_cow: int


def _open_cow_for_merge(cow_path: str, backing: Optional[str], in_place: bool) -> CowDevice:
    cow_fd = open_host_file(cow_path, f"COW file {cow_path}", writable=False)
    try:
        header = read_header(cow_fd, cow_path)
        backing_path = backing or header.backing_file
        check_backing(header, backing_path, cow_path)
        backing_fd = open_host_file(backing_path, f"backing file {backing_path}",
                                    writable=in_place)
    except BaseException:
        os.close(cow_fd)
        raise
    return CowDevice(cow_fd, backing_fd, header, cow_path, readonly=True)


def _same_file(a: str, b: str) -> bool:
    try:
        return os.path.samefile(a, b)
    except OSError:
        return False


def merge_cow(cow_path: str, output: Optional[str] = None, backing: Optional[str] = None,
              progress: Optional[Progress] = None) -> MergeResult:
    """Merge `cow_path` into a new image `output`, or into its backing file in place
    when output is None. `backing` overrides the header's backing path (uml_moo -b)."""
    device = _open_cow_for_merge(cow_path, backing, in_place=output is None)
    try:
        backing_path = backing or device.backing_file
        if output is None:
            return _merge_in_place(device, backing_path, progress)
        for other in (cow_path, backing_path):
            if _same_file(output, other):
                raise BlockError(f"output {output} is the same file as {other}", errno.EEXIST)
        return _merge_to_new(device, output, progress)
    finally:
        device.close()


def _merge_in_place(device: CowDevice, backing_path: str,
                    progress: Optional[Progress]) -> MergeResult:
    size, ss = device.header.size, device.sector_size
    fd = device.backing_fd                   # opened read-write and write-locked above
    copied = 0
    for first, count in device.cow_extents():
        pos, end = first * ss, min((first + count) * ss, size)
        while pos < end:
            step = min(CHUNK, end - pos)
            pwrite_full(fd, device.read(pos, step), pos)
            pos += step
            if progress:
                progress(pos, size)
        copied += count
    os.fsync(fd)
    if progress:
        progress(size, size)
    return MergeResult(backing_path, size, copied)


def _merge_to_new(device: CowDevice, output: str, progress: Optional[Progress]) -> MergeResult:
    size = device.header.size
    try:
        target_is_regular = st.S_ISREG(os.stat(output).st_mode)
    except FileNotFoundError:
        target_is_regular = True
    except OSError as exc:
        raise BlockError(f"output {output}: {exc.strerror}", exc.errno) from None
    # a regular file is built beside the target and renamed over it at the end
    temp = (os.path.join(os.path.dirname(os.path.abspath(output)),
                         f".{os.path.basename(output)}.moo-{os.getpid()}")
            if target_is_regular else output)
    flags = os.O_WRONLY | os.O_CLOEXEC | (os.O_CREAT | os.O_EXCL if target_is_regular else 0)
    try:
        fd = os.open(temp, flags, 0o644)
    except OSError as exc:
        raise BlockError(f"output {output}: {exc.strerror}", exc.errno) from None
    try:
        zero = bytes(CHUNK)
        for pos in range(0, size, CHUNK):
            chunk = device.read(pos, min(CHUNK, size - pos))
            if chunk != zero[:len(chunk)] or not target_is_regular:
                pwrite_full(fd, chunk, pos)
            if progress:
                progress(pos + len(chunk), size)
        if target_is_regular:
            os.ftruncate(fd, size)
        os.fsync(fd)
    except BaseException:
        os.close(fd)
        if target_is_regular:
            os.unlink(temp)
        raise
    os.close(fd)
    if target_is_regular:
        os.replace(temp, output)
        fsync_directory(output)
    return MergeResult(output, size, device.sectors_in_cow())
