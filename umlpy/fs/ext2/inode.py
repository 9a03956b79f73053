"""The on-disk inode: fields, timestamps, device numbers, checksum, attributes."""
from __future__ import annotations

import os
import stat as st
import struct
from dataclasses import dataclass
from typing import Optional, Tuple

from . import constants as c
from .checksum import crc32c_raw
from .rawstruct import Field, RawStruct

_TIME_FIELDS = {           # name -> (seconds field, extra field or None)
    "atime": ("i_atime", "i_atime_extra"),
    "mtime": ("i_mtime", "i_mtime_extra"),
    "ctime": ("i_ctime", "i_ctime_extra"),
    "crtime": ("i_crtime", "i_crtime_extra"),
}
NS = 1_000_000_000


@dataclass
class InodeAttr:
    """What getattr() returns; times in nanoseconds since the epoch."""
    ino: int
    mode: int
    nlink: int
    uid: int
    gid: int
    size: int
    atime_ns: int
    mtime_ns: int
    ctime_ns: int
    crtime_ns: int
    rdev: int
    blocks: int           # 512-byte units, as stat(2) counts
    blksize: int
    flags: int
    generation: int


class Inode(RawStruct):
    """One inode's raw bytes (inode_size long) plus its number."""

    i_mode = Field(0x0, "H")
    i_uid_lo = Field(0x2, "H")
    i_size_lo = Field(0x4, "I")
    i_atime = Field(0x8, "I")
    i_ctime = Field(0xC, "I")
    i_mtime = Field(0x10, "I")
    i_dtime = Field(0x14, "I")
    i_gid_lo = Field(0x18, "H")
    i_links_count = Field(0x1A, "H")
    i_blocks_lo = Field(0x1C, "I")
    i_flags = Field(0x20, "I")
    i_block = Field(0x28, "60s")
    i_generation = Field(0x64, "I")
    i_file_acl_lo = Field(0x68, "I")
    i_size_high = Field(0x6C, "I")
    i_blocks_hi = Field(0x74, "H")
    i_file_acl_hi = Field(0x76, "H")
    i_uid_hi = Field(0x78, "H")
    i_gid_hi = Field(0x7A, "H")
    i_checksum_lo = Field(0x7C, "H")
    i_extra_isize = Field(0x80, "H")
    i_checksum_hi = Field(0x82, "H")
    i_ctime_extra = Field(0x84, "I")
    i_mtime_extra = Field(0x88, "I")
    i_atime_extra = Field(0x8C, "I")
    i_crtime = Field(0x90, "I")
    i_crtime_extra = Field(0x94, "I")
    i_projid = Field(0x9C, "I")

    def __init__(self, ino: int, buf) -> None:
        super().__init__(buf)
        self.ino = ino
        self.dirty = False
        self.filemap = None          # the cached FileMap (blockmap or extents)

    # ---- which extended fields exist ----
    def fits(self, name: str) -> bool:
        """Whether a field past the 128-byte core is inside this inode's extra space."""
        field = type(self).__dict__[name]
        if field.offset < c.GOOD_OLD_INODE_SIZE:
            return True
        if len(self.buf) <= c.GOOD_OLD_INODE_SIZE:
            return False
        return field.end <= c.GOOD_OLD_INODE_SIZE + self.i_extra_isize

    # ---- composite fields ----
    @property
    def mode(self) -> int:
        return self.i_mode

    @property
    def size(self) -> int:
        return self.i_size_lo | (self.i_size_high << 32)

    @size.setter
    def size(self, value: int) -> None:
        self.i_size_lo = value & 0xFFFFFFFF
        self.i_size_high = value >> 32

    @property
    def uid(self) -> int:
        return self.i_uid_lo | (self.i_uid_hi << 16)

    @uid.setter
    def uid(self, value: int) -> None:
        self.i_uid_lo, self.i_uid_hi = value & 0xFFFF, (value >> 16) & 0xFFFF

    @property
    def gid(self) -> int:
        return self.i_gid_lo | (self.i_gid_hi << 16)

    @gid.setter
    def gid(self, value: int) -> None:
        self.i_gid_lo, self.i_gid_hi = value & 0xFFFF, (value >> 16) & 0xFFFF

    @property
    def file_acl(self) -> int:
        return self.i_file_acl_lo | (self.i_file_acl_hi << 32)

    @file_acl.setter
    def file_acl(self, value: int) -> None:
        self.i_file_acl_lo, self.i_file_acl_hi = value & 0xFFFFFFFF, value >> 32

    def blocks_512(self, huge_file: bool, block_size: int) -> int:
        """i_blocks in 512-byte units (huge_file: 48 bits, maybe counted in fs blocks)."""
        if not huge_file:
            return self.i_blocks_lo
        value = self.i_blocks_lo | (self.i_blocks_hi << 32)
        if self.i_flags & c.HUGE_FILE_FL:
            value *= block_size // 512
        return value

    def set_blocks_512(self, value: int, huge_file: bool) -> None:
        if value >> 32 and not huge_file:
            raise OverflowError("i_blocks overflow without huge_file")
        self.i_flags &= ~c.HUGE_FILE_FL
        self.i_blocks_lo, self.i_blocks_hi = value & 0xFFFFFFFF, (value >> 32) & 0xFFFF

    def block_slots(self) -> Tuple[int, ...]:
        return struct.unpack_from("<15I", self.buf, 0x28)

    def set_block_slots(self, slots) -> None:
        struct.pack_into("<15I", self.buf, 0x28, *slots)

    # ---- times ----
    def get_time_ns(self, which: str) -> int:
        sec_field, extra_field = _TIME_FIELDS[which]
        if not self.fits(sec_field):
            return 0
        seconds = getattr(self, sec_field)
        seconds -= (seconds & 0x80000000) << 1          # stored as signed 32 bits
        nsec = 0
        if self.fits(extra_field):
            extra = getattr(self, extra_field)
            seconds += (extra & 3) << 32
            nsec = min(extra >> 2, NS - 1)
        return seconds * NS + nsec

    def set_time_ns(self, which: str, value_ns: int) -> None:
        sec_field, extra_field = _TIME_FIELDS[which]
        if not self.fits(sec_field):
            return
        seconds, nsec = divmod(value_ns, NS)
        low = seconds & 0xFFFFFFFF
        setattr(self, sec_field, low)
        if self.fits(extra_field):
            signed_low = low - ((low & 0x80000000) << 1)
            epoch = ((seconds - signed_low) >> 32) & 3
            setattr(self, extra_field, epoch | (nsec << 2))

    # ---- devices ----
    @property
    def rdev(self) -> int:
        slot0, slot1 = struct.unpack_from("<2I", self.buf, 0x28)
        if slot0:
            return os.makedev((slot0 >> 8) & 0xFF, slot0 & 0xFF)
        return os.makedev((slot1 & 0xFFF00) >> 8, (slot1 & 0xFF) | ((slot1 >> 12) & 0xFFF00))

    def set_rdev(self, rdev: int) -> None:
        major, minor = os.major(rdev), os.minor(rdev)
        if major < 256 and minor < 256:            # the old encoding, as Linux writes it
            slots = ((major << 8) | minor, 0)
        else:
            slots = (0, (minor & 0xFF) | (major << 8) | ((minor & ~0xFF) << 12))
        struct.pack_into("<2I", self.buf, 0x28, *slots)

    def is_device(self) -> bool:
        return st.S_IFMT(self.i_mode) in (st.S_IFCHR, st.S_IFBLK)

    # ---- checksum ----
    def _csum_input(self) -> bytes:
        raw = bytearray(self.buf)
        raw[0x7C:0x7E] = b"\0\0"
        if self.fits("i_checksum_hi"):
            raw[0x82:0x84] = b"\0\0"
        return bytes(raw)

    def compute_checksum(self, fs_seed: int) -> int:
        seed = inode_seed(fs_seed, self.ino, self.i_generation)
        return crc32c_raw(seed, self._csum_input())

    def checksum_ok(self, fs_seed: int) -> bool:
        csum = self.compute_checksum(fs_seed)
        if self.fits("i_checksum_hi"):
            return csum == (self.i_checksum_lo | (self.i_checksum_hi << 16))
        return (csum & 0xFFFF) == self.i_checksum_lo

    def update_checksum(self, fs_seed: int) -> None:
        csum = self.compute_checksum(fs_seed)
        self.i_checksum_lo = csum & 0xFFFF
        if self.fits("i_checksum_hi"):
            self.i_checksum_hi = csum >> 16


def inode_seed(fs_seed: int, ino: int, generation: int) -> int:
    """The per-inode seed that extent, directory and inode checksums start from."""
    return crc32c_raw(crc32c_raw(fs_seed, struct.pack("<I", ino)), struct.pack("<I", generation))


def make_attr(inode: Inode, huge_file: bool, block_size: int,
              nlink_override: Optional[int] = None) -> InodeAttr:
    return InodeAttr(
        ino=inode.ino, mode=inode.i_mode,
        nlink=inode.i_links_count if nlink_override is None else nlink_override,
        uid=inode.uid, gid=inode.gid, size=inode.size,
        atime_ns=inode.get_time_ns("atime"), mtime_ns=inode.get_time_ns("mtime"),
        ctime_ns=inode.get_time_ns("ctime"), crtime_ns=inode.get_time_ns("crtime"),
        rdev=inode.rdev if inode.is_device() else 0,
        blocks=inode.blocks_512(huge_file, block_size), blksize=block_size,
        flags=inode.i_flags, generation=inode.i_generation)
