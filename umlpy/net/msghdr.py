"""struct msghdr, mmsghdr and control messages as x86-64 Linux lays them out.

The kernel reads a guest's msghdr once, checks it as Linux does, and works
on its own copy from then on (a guest thread rewriting the structure, its
address or its iovec meanwhile changes nothing).
"""
from __future__ import annotations

import errno
import socket
import struct
from typing import List, Tuple

from umlpy.record import Record

MSGHDR = struct.Struct("<QI4xQQQQi4x")     # name, namelen, iov, iovlen, control, controllen, flags
MMSGHDR_SIZE = MSGHDR.size + 8             # ... then unsigned msg_len, padded
NAMELEN_OFFSET = 8                         # offsetof(struct msghdr, msg_namelen)
CONTROLLEN_OFFSET = 40                     # offsetof(struct msghdr, msg_controllen)
FLAGS_OFFSET = 48                          # offsetof(struct msghdr, msg_flags)
IOVEC = struct.Struct("<QQ")
CMSGHDR = struct.Struct("<Qii")            # cmsg_len, cmsg_level, cmsg_type
UCRED = struct.Struct("<iII")              # pid, uid, gid
UIO_MAXIOV = 1024
SOCKADDR_STORAGE = 128
SSIZE_MAX = (1 << 63) - 1
INT_MAX = (1 << 31) - 1
SCM_MAX_FD = 253                           # fds in one SCM_RIGHTS message
SCM_RIGHTS = 1
SCM_CREDENTIALS = 2


class MsgHdr(Record):
    """The kernel's copy of a guest's msghdr: mutable (parse_msghdr clamps namelen)."""
    __slots__ = _fields = ("name", "namelen", "iov", "iovlen", "control", "controllen", "flags")
    name: int
    namelen: int
    iov: int
    iovlen: int
    control: int
    controllen: int
    flags: int

    def __init__(self, name: int, namelen: int, iov: int, iovlen: int, control: int,
                 controllen: int, flags: int) -> None:
        self.name = name
        self.namelen = namelen
        self.iov = iov
        self.iovlen = iovlen
        self.control = control
        self.controllen = controllen
        self.flags = flags


def parse_msghdr(raw: bytes) -> MsgHdr:
    """The checks Linux makes before looking at the socket."""
    h = MsgHdr(*MSGHDR.unpack(raw))
    if h.name == 0:
        h.namelen = 0
    if h.namelen & 0x80000000:             # msg_namelen is an int
        raise OSError(errno.EINVAL, "bad msg_namelen")
    h.namelen = min(h.namelen, SOCKADDR_STORAGE)
    if h.iovlen > UIO_MAXIOV:
        raise OSError(errno.EMSGSIZE, "too many iovecs")
    if h.controllen > INT_MAX:
        raise OSError(errno.ENOBUFS, "control too long")
    return h


def iov_spans(raw: bytes) -> List[Tuple[int, int]]:
    """(base, len) pairs of an iovec array; EINVAL when the total overflows ssize_t."""
    spans, total = [], 0
    for off in range(0, len(raw), IOVEC.size):
        base, length = IOVEC.unpack_from(raw, off)
        if length > SSIZE_MAX or total + length > SSIZE_MAX:
            raise OSError(errno.EINVAL, "iovec too long")
        total += length
        spans.append((base, length))
    return spans


def cmsg_align(n: int) -> int:
    return (n + 7) & ~7


def cmsg_len(data_len: int) -> int:
    return CMSGHDR.size + data_len


def parse_cmsgs(raw: bytes) -> List[Tuple[int, int, bytes]]:
    """(level, type, data) of each control message; EINVAL for a malformed one."""
    out, off = [], 0
    while off + CMSGHDR.size <= len(raw):
        length, level, kind = CMSGHDR.unpack_from(raw, off)
        if length < CMSGHDR.size or length > len(raw) - off:
            raise OSError(errno.EINVAL, "bad control message")
        out.append((level, kind, raw[off + CMSGHDR.size:off + length]))
        off += cmsg_align(length)
    return out


def pack_cmsgs(msgs: List[Tuple[int, int, bytes]]) -> bytes:
    out = bytearray()
    for level, kind, data in msgs:
        out += CMSGHDR.pack(cmsg_len(len(data)), level, kind) + data
        out += bytes(cmsg_align(len(out)) - len(out))
    return bytes(out)


def creds_offsets(raw: bytes) -> List[int]:
    """Offsets of the struct ucred of each SCM_CREDENTIALS message (a received
    control buffer, which may end in a truncated message)."""
    out, off = [], 0
    while off + CMSGHDR.size <= len(raw):
        length, level, kind = CMSGHDR.unpack_from(raw, off)
        if length < CMSGHDR.size or length > len(raw) - off:
            break
        if level == socket.SOL_SOCKET and kind == SCM_CREDENTIALS \
                and length >= cmsg_len(UCRED.size):
            out.append(off + CMSGHDR.size)
        off += cmsg_align(length)
    return out
