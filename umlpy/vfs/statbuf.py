"""struct stat and struct statx as the x86-64 ABI lays them out."""
from __future__ import annotations

import os
import struct

from umlpy.vfs.inode import Attr

_STAT = struct.Struct("<QQQIIIiQqqqqqqqqq24x")        # 144 bytes
_STATX_HEAD = struct.Struct("<IIQIIIHHQQQQ")            # up to stx_attributes_mask
_TS = struct.Struct("<qIi")

STATX_BASIC_STATS = 0x7FF
STATX_BTIME = 0x800
STATX_MNT_ID = 0x1000
STATX_SIZE = 256
_U32 = 0xFFFFFFFF   # uid_t/gid_t: a file system's stored owner is never trusted to fit


def _ns(t_ns: int):
    return t_ns // 1_000_000_000, t_ns % 1_000_000_000


def attr_from_host(s: os.stat_result) -> Attr:
    """A host object's own attributes (pipes, sockets, inherited files)."""
    return Attr(mode=s.st_mode, ino=s.st_ino, nlink=s.st_nlink, uid=s.st_uid, gid=s.st_gid,
                rdev=s.st_rdev, size=s.st_size, blksize=s.st_blksize, blocks=s.st_blocks,
                atime_ns=s.st_atime_ns, mtime_ns=s.st_mtime_ns, ctime_ns=s.st_ctime_ns,
                dev=s.st_dev)


def pack_stat(a: Attr) -> bytes:
    at, an = _ns(a.atime_ns)
    mt, mn = _ns(a.mtime_ns)
    ct, cn = _ns(a.ctime_ns)
    blocks = a.blocks if a.blocks else (a.size + 511) // 512
    return _STAT.pack(a.dev, a.ino, a.nlink, a.mode, a.uid & _U32, a.gid & _U32, 0, a.rdev, a.size,
                      a.blksize, blocks, at, an, mt, mn, ct, cn)


def pack_statx(a: Attr, mnt_id: int = 0) -> bytes:
    mask = STATX_BASIC_STATS | STATX_MNT_ID | (STATX_BTIME if a.btime_ns else 0)
    blocks = a.blocks if a.blocks else (a.size + 511) // 512
    head = _STATX_HEAD.pack(mask, a.blksize, 0, a.nlink, a.uid & _U32, a.gid & _U32, a.mode, 0,
                            a.ino, a.size, blocks, 0)
    times = b"".join(_TS.pack(*_ns(t), 0) for t in
                     (a.atime_ns, a.btime_ns, a.ctime_ns, a.mtime_ns))
    devs = struct.pack("<IIIIQ", os.major(a.rdev), os.minor(a.rdev),
                       os.major(a.dev), os.minor(a.dev), mnt_id)
    out = head + times + devs
    return out + bytes(STATX_SIZE - len(out))
