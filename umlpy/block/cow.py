"""UML COW files: the header, the layout, creation and the backing-file check.

Version 3 (the only one written), all big-endian, 4128 bytes packed:

    0 magic 0x4f4f4f4d "OOOM" | 4 version 3 | 8 backing mtime (s, low 32 bits)
    12 backing size (u64) | 20 sector size 512 | 24 alignment 4096 | 28 cow_format 0
    32 backing path, absolute, NUL-terminated, 4096 bytes (zeros after the NUL)

Bitmap at round_up(header, alignment), one bit per sector, LSB first; data at
round_up(bitmap end, alignment), sector N at data_offset + N * 512; the file is sparse
and data_offset + size long. Also read: v1 (magic's byte order, 256-byte path, 280-byte
header), v2 (4096-byte path, 4120 bytes) and "broken v3" (old 64-bit builds: 4 bytes of
padding after mtime; recognised by the 4 zero bytes of cow_format where the path starts).
Versions 1 and 2 size their bitmap as (size + ss - 1) // (8 * ss) bytes (UML's rounding
bug), so a tail of sectors may have no bit: they read from backing and refuse writes.
"""
from __future__ import annotations

import errno
import os
import stat as st
import struct
from dataclasses import dataclass, replace
from typing import Tuple

from .errors import BlockError

COW_MAGIC = 0x4F4F4F4D
COW_VERSION = 3
COW_BITMAP_FORMAT = 0
SECTOR_SIZE = 512
COW_ALIGNMENT = 4096
PATH_LEN_V1 = 256
PATH_LEN_V3 = 4096

_V3 = struct.Struct(">IIIQIII")                 # then the path
_V3_BROKEN = struct.Struct(">IIIxxxxQIII")       # mtime padded to 8 bytes
_V1_TAIL = "IQi"                                 # mtime, size, sector size after the path
HEADER_V3_SIZE = _V3.size + PATH_LEN_V3          # 4128
HEADER_V3_BROKEN_SIZE = 4136                     # _V3_BROKEN + path, padded to 8
HEADER_V2_SIZE = 8 + PATH_LEN_V3 + 16            # 4120
HEADER_V1_SIZE = 8 + PATH_LEN_V1 + 16            # 280
HEADER_READ_SIZE = HEADER_V3_BROKEN_SIZE         # enough for every version
MAX_ALIGNMENT = 1 << 20


def round_up(value: int, align: int) -> int:
    return -(-value // align) * align


@dataclass(frozen=True)
class CowHeader:
    """A COW header as read or written, with the layout it implies."""
    backing_file: str
    mtime: int                      # backing mtime, seconds, low 32 bits
    size: int                       # backing size in bytes
    version: int = COW_VERSION
    sector_size: int = SECTOR_SIZE
    alignment: int = COW_ALIGNMENT
    header_size: int = HEADER_V3_SIZE
    broken_layout: bool = False

    @property
    def sectors(self) -> int:
        """Sectors of the device: the backing size rounded up."""
        return -(-self.size // self.sector_size)

    @property
    def bitmap_offset(self) -> int:
        if self.version < 3:
            return self.header_size                 # right after the header
        return round_up(self.header_size, self.alignment)

    @property
    def bitmap_len(self) -> int:
        if self.version < 3:
            return (self.size + self.sector_size - 1) // (8 * self.sector_size)
        return -(-self.sectors // 8)

    @property
    def data_offset(self) -> int:
        align = self.sector_size if self.version < 3 else self.alignment
        return round_up(self.bitmap_offset + self.bitmap_len, align)

    @property
    def covered_sectors(self) -> int:
        """Sectors that have a bit (all of them except in v1/v2's rounded-down tail)."""
        return min(self.sectors, self.bitmap_len * 8)

    @property
    def file_size(self) -> int:
        """The length UML gives a new COW file (sparse)."""
        return self.data_offset + self.size


def encode_header(header: CowHeader) -> bytes:
    """The 4128 bytes of a version 3 header (the path zero-padded)."""
    path = os.fsencode(header.backing_file)
    if not path or b"\0" in path or len(path) >= PATH_LEN_V3:
        raise BlockError(f"backing file name {header.backing_file!r} is empty or too long "
                         f"(at most {PATH_LEN_V3 - 1} bytes)", errno.ENAMETOOLONG)
    fixed = _V3.pack(COW_MAGIC, COW_VERSION, header.mtime & 0xFFFFFFFF, header.size,
                     header.sector_size, header.alignment, COW_BITMAP_FORMAT)
    return fixed + path.ljust(PATH_LEN_V3, b"\0")


def has_cow_magic(data: bytes) -> bool:
    """Whether `data` (a file's first bytes) starts like a COW file, in either order."""
    return data[:4] in (b"OOOM", b"MOOO")


def decode_header(data: bytes, name: str = "COW file") -> CowHeader:
    """Parse a header from a file's first bytes; BlockError naming `name` if bad."""
    if len(data) < 8:
        raise BlockError(f"{name}: short COW header ({len(data)} bytes)")
    if data[:4] == b"OOOM":
        order = ">"
    elif data[:4] == b"MOOO":
        order = "<"
    else:
        raise BlockError(f"{name}: not a COW file (bad magic {data[:4].hex()})")
    (version,) = struct.unpack_from(order + "I", data, 4)
    if version == 1:
        header = _decode_v1_v2(data, name, order, PATH_LEN_V1, HEADER_V1_SIZE, 1)
    elif version == 2:
        header = _decode_v1_v2(data, name, ">", PATH_LEN_V3, HEADER_V2_SIZE, 2)
    elif version == 3:
        header = _decode_v3(data, name)
    else:
        raise BlockError(f"{name}: unknown COW version {version}")
    _sanity_check(header, name)
    return header


def _need(data: bytes, size: int, name: str, version: int) -> None:
    if len(data) < size:
        raise BlockError(f"{name}: short COW v{version} header "
                         f"({len(data)} of {size} bytes)")


def _path_field(raw: bytes, name: str) -> str:
    end = raw.find(b"\0")
    if end < 0:
        raise BlockError(f"{name}: COW header's backing file name is not NUL-terminated")
    if end == 0:
        raise BlockError(f"{name}: COW header has an empty backing file name")
    return os.fsdecode(raw[:end])


def _decode_v1_v2(data: bytes, name: str, order: str, path_len: int, size: int,
                  version: int) -> CowHeader:
    # v1 is in the writer's byte order (that of the magic); v2 numbers are big-endian
    _need(data, size, name, version)
    path = _path_field(data[8:8 + path_len], name)
    mtime, length, sector_size = struct.unpack_from(order + _V1_TAIL, data, 8 + path_len)
    return CowHeader(path, mtime, length, version=version, sector_size=sector_size,
                     alignment=sector_size, header_size=size)


def _decode_v3(data: bytes, name: str) -> CowHeader:
    _need(data, HEADER_V3_SIZE, name, 3)
    if data[_V3.size:_V3.size + 4] != b"\0\0\0\0":
        _, _, mtime, size, sector_size, align, fmt = _V3.unpack_from(data)
        path = _path_field(data[_V3.size:HEADER_V3_SIZE], name)
        header_size, broken = HEADER_V3_SIZE, False
    else:
        _need(data, HEADER_V3_BROKEN_SIZE, name, 3)
        _, _, mtime, size, sector_size, align, fmt = _V3_BROKEN.unpack_from(data)
        path = _path_field(data[_V3_BROKEN.size:_V3_BROKEN.size + PATH_LEN_V3], name)
        header_size, broken = HEADER_V3_BROKEN_SIZE, True
    if fmt != COW_BITMAP_FORMAT:
        raise BlockError(f"{name}: unsupported COW format {fmt} (only 0, the bitmap)")
    return CowHeader(path, mtime, size, version=3, sector_size=sector_size, alignment=align,
                     header_size=header_size, broken_layout=broken)


def _sanity_check(header: CowHeader, name: str) -> None:
    if header.sector_size != SECTOR_SIZE:
        raise BlockError(f"{name}: unsupported COW sector size {header.sector_size} "
                         f"(only {SECTOR_SIZE})")
    align = header.alignment
    if align <= 0 or align > MAX_ALIGNMENT or align & (align - 1):
        raise BlockError(f"{name}: absurd COW alignment {align}")
    if header.size >= 1 << 62:
        raise BlockError(f"{name}: absurd backing size {header.size} in COW header")


def read_header(fd: int, name: str) -> CowHeader:
    """Read and check the header of an open COW file, and that the file holds its
    whole bitmap and data area."""
    data = os.pread(fd, HEADER_READ_SIZE, 0)
    header = decode_header(data, f"COW file {name}")
    length = os.fstat(fd).st_size
    if length < header.file_size:
        raise BlockError(f"COW file {name}: truncated ({length} bytes, the header "
                         f"needs {header.file_size})")
    return header


def absolutize(path: str) -> str:
    """The backing path UML records: the directory resolved as the kernel sees it (no
    "..", physical), the last component kept as given (a symlink stays a symlink)."""
    head, tail = os.path.split(path)
    if not tail:
        raise BlockError(f"backing file {path!r} names a directory", errno.EISDIR)
    return os.path.join(os.path.realpath(head or "."), tail)


def backing_identity(path: str) -> Tuple[int, int]:
    """(size, mtime low 32 bits) of a backing file (or host block device)."""
    try:
        info = os.stat(path)
        size = info.st_size
        if st.S_ISBLK(info.st_mode):        # a device's st_size is 0: ask the device
            fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
            try:
                size = os.lseek(fd, 0, os.SEEK_END)
            finally:
                os.close(fd)
        elif st.S_ISDIR(info.st_mode):
            raise BlockError(f"backing file {path}: is a directory", errno.EISDIR)
    except BlockError:
        raise
    except OSError as exc:
        raise BlockError(f"backing file {path}: {exc.strerror}", exc.errno) from None
    return size, (info.st_mtime_ns // 1_000_000_000) & 0xFFFFFFFF


def check_backing(header: CowHeader, path: str, cow_name: str) -> None:
    """Refuse a backing file whose size or mtime is not the one the COW was made for."""
    size, mtime = backing_identity(path)
    if size != header.size:
        raise BlockError(f"COW file {cow_name}: size mismatch ({header.size} vs {size}) "
                         f"of COW header vs backing file {path}")
    if mtime != header.mtime:
        raise BlockError(f"COW file {cow_name}: mtime mismatch ({header.mtime} vs {mtime}) "
                         f"of COW header vs backing file {path}")


def new_header(backing_path: str) -> CowHeader:
    """The v3 header UML and uml_mkcow write for `backing_path` as it is now."""
    absolute = absolutize(backing_path)
    size, mtime = backing_identity(absolute)
    header = CowHeader(absolute, mtime, size)
    encode_header(header)                   # refuse an over-long path before any write
    return header


def init_cow(fd: int, backing_path: str) -> CowHeader:
    """Turn the open, empty (or to-be-overwritten) file `fd` into a fresh COW file for
    `backing_path`: header, zero bitmap, sparse data area; made durable."""
    header = new_header(backing_path)
    os.ftruncate(fd, 0)                     # no stale bitmap bits from an older file
    os.pwrite(fd, encode_header(header), 0)
    os.ftruncate(fd, header.file_size)      # sparse: bitmap and data read as zeros
    os.fsync(fd)
    return header


def rewrite_backing(fd: int, header: CowHeader, new_path: str, cow_name: str) -> CowHeader:
    """Point the COW file at `new_path`, a file that passed check_backing(): UML does
    this when the command line names another backing file than the header."""
    updated = replace(header, backing_file=absolutize(new_path), version=COW_VERSION,
                      header_size=HEADER_V3_SIZE, broken_layout=False)
    if header.version < 3 or updated.bitmap_offset != header.bitmap_offset:
        raise BlockError(f"COW file {cow_name}: cannot switch the backing file of a "
                         f"version {header.version} COW file to {new_path}")
    os.pwrite(fd, encode_header(updated), 0)
    os.fsync(fd)
    return updated


def fsync_directory(path: str) -> None:
    """Make a newly created file's directory entry durable."""
    try:
        fd = os.open(os.path.dirname(os.path.abspath(path)), os.O_RDONLY | os.O_DIRECTORY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)
