"""struct stat and struct statx as the x86-64 ABI lays them out."""
from __future__ import annotations

import os
import struct

_STAT = struct.Struct("<QQQIIIiQqqqqqqqqq24x")        # 144 bytes
_STATX_HEAD = struct.Struct("<IIQIIIHHQQQQ")            # up to stx_attributes_mask
_TS = struct.Struct("<qIi")

STATX_BASIC_STATS = 0x7FF
STATX_SIZE = 256


def _ns(t_ns: int):
    return t_ns // 1_000_000_000, t_ns % 1_000_000_000


def pack_stat(s: os.stat_result) -> bytes:
    a, an = _ns(s.st_atime_ns)
    m, mn = _ns(s.st_mtime_ns)
    c, cn = _ns(s.st_ctime_ns)
    return _STAT.pack(s.st_dev, s.st_ino, s.st_nlink, s.st_mode, s.st_uid, s.st_gid, 0,
                      s.st_rdev, s.st_size, s.st_blksize, s.st_blocks, a, an, m, mn, c, cn)


def pack_statx(s: os.stat_result, mnt_id: int = 0) -> bytes:
    head = _STATX_HEAD.pack(STATX_BASIC_STATS, s.st_blksize, 0, s.st_nlink, s.st_uid,
                            s.st_gid, s.st_mode, 0, s.st_ino, s.st_size, s.st_blocks, 0)
    times = b"".join(_TS.pack(*_ns(t), 0) for t in
                     (s.st_atime_ns, 0, s.st_ctime_ns, s.st_mtime_ns))
    devs = struct.pack("<IIIIQ", os.major(s.st_rdev), os.minor(s.st_rdev),
                       os.major(s.st_dev), os.minor(s.st_dev), mnt_id)
    out = head + times + devs
    return out + bytes(STATX_SIZE - len(out))
