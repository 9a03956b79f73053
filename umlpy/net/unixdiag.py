"""The peer of a unix socket, from the host's sock_diag netlink interface.

When the kernel connects or sends for a guest, the host records the
kernel's process as the peer's credentials; the kernel finds which of its
guests it acted for through the peer socket's inode, which only sock_diag
reports (`ss -x` uses it, no privilege needed).
"""
from __future__ import annotations

import os
import socket
import struct
from typing import Optional

NETLINK_SOCK_DIAG = 4
SOCK_DIAG_BY_FAMILY = 20
NLM_F_REQUEST = 1
NLMSG_ERROR = 2
UDIAG_SHOW_PEER = 0x4
UNIX_DIAG_PEER = 2
NO_COOKIE = 0xFFFFFFFF
_NLMSGHDR = struct.Struct("<IHHII")
_REQ = struct.Struct("<BBHIII2I")          # unix_diag_req
_MSG = struct.Struct("<BBBBI2I")           # unix_diag_msg
_RTA = struct.Struct("<HH")


def request(ino: int, seq: int = 1) -> bytes:
    body = _REQ.pack(socket.AF_UNIX, 0, 0, 0xFFFFFFFF, ino, UDIAG_SHOW_PEER,
                     NO_COOKIE, NO_COOKIE)
    return _NLMSGHDR.pack(_NLMSGHDR.size + len(body), SOCK_DIAG_BY_FAMILY, NLM_F_REQUEST,
                          seq, 0) + body


def parse_peer(reply: bytes) -> Optional[int]:
    """The UNIX_DIAG_PEER inode in a reply (None: an error, or no peer)."""
    if len(reply) < _NLMSGHDR.size + _MSG.size:
        return None
    length, kind = _NLMSGHDR.unpack_from(reply)[:2]
    if kind == NLMSG_ERROR or length > len(reply):
        return None
    off = _NLMSGHDR.size + _MSG.size
    while off + _RTA.size <= length:
        rlen, rtype = _RTA.unpack_from(reply, off)
        if rlen < _RTA.size:
            return None
        if rtype == UNIX_DIAG_PEER and rlen >= _RTA.size + 4:
            return struct.unpack_from("<I", reply, off + _RTA.size)[0]
        off += (rlen + 3) & ~3
    return None


def peer_inode(sock: int) -> Optional[int]:
    """The inode of the socket connected to `sock` (a kernel-held descriptor)."""
    ino = os.fstat(sock).st_ino
    try:
        with socket.socket(socket.AF_NETLINK, socket.SOCK_DGRAM | socket.SOCK_CLOEXEC,
                           NETLINK_SOCK_DIAG) as nl:
            nl.settimeout(1.0)
            nl.send(request(ino))
            return parse_peer(nl.recv(8192))
    except OSError:
        return None
