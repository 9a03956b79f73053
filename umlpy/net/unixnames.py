"""The names of the guest's unix sockets.

A socket the guest binds to a path is bound by the kernel to a fresh host
path in a private directory of the instance, and a socket inode (S_IFSOCK)
is made at the guest path in the guest's file system; connect resolves the
guest path through the VFS and finds the host path here. A socket file the
instance did not bind (a host daemon's, seen through hostfs) is not
connectable: ECONNREFUSED, as Linux gives for a socket nobody listens on.

Abstract names: in a network namespace of its own the guest's abstract
namespace is already private; sharing the host's stack, each guest name is
mapped to a host name private to the instance.
"""
from __future__ import annotations

import errno
import itertools
import os
import socket
import struct
from typing import Dict, Optional, Tuple

from umlpy.record import FrozenRecord

SUN_PATH_OFFSET = 2                 # offsetof(struct sockaddr_un, sun_path)
SOCKADDR_UN_SIZE = 110              # sizeof(struct sockaddr_un)
_FAMILY = struct.Struct("<H")


class UnixAddr(FrozenRecord):
    """A parsed sockaddr_un: kind is "path", "abstract" or "autobind"."""
    __slots__ = _fields = ("kind", "name")
    kind: str
    name: bytes                     # the path (no NUL), or the abstract name (no leading NUL)

    def __init__(self, kind: str, name: bytes) -> None:
        object.__setattr__(self, "kind", kind)
        object.__setattr__(self, "name", name)


def family_of(raw: bytes) -> int:
    return _FAMILY.unpack_from(raw)[0] if len(raw) >= 2 else socket.AF_UNSPEC


def parse(raw: bytes, allow_autobind: bool) -> UnixAddr:
    """Linux's reading of a sockaddr_un of len(raw) bytes (EINVAL if malformed)."""
    if len(raw) < SUN_PATH_OFFSET or len(raw) > SOCKADDR_UN_SIZE \
            or family_of(raw) != socket.AF_UNIX:
        raise OSError(errno.EINVAL, "bad unix address")
    if len(raw) == SUN_PATH_OFFSET:
        if allow_autobind:
            return UnixAddr("autobind", b"")
        raise OSError(errno.EINVAL, "bad unix address")
    body = raw[SUN_PATH_OFFSET:]
    if body[0] == 0:
        return UnixAddr("abstract", body[1:])
    return UnixAddr("path", body.split(b"\0", 1)[0])


def pack(kind_name: UnixAddr) -> bytes:
    """The sockaddr the guest sees (getsockname): a path gets its NUL."""
    head = _FAMILY.pack(socket.AF_UNIX)
    if kind_name.kind == "path":
        return head + kind_name.name + b"\0"
    return head + b"\0" + kind_name.name


class UnixNames:
    def __init__(self, directory: str, tag: str, private_abstract: bool) -> None:
        self.dir = directory                # 0700, inside the VFS scratch directory
        self.tag = tag.encode()
        self.private_abstract = private_abstract
        self._seq = itertools.count(1)
        self._by_inode: Dict[Tuple[int, int], Tuple[int, str]] = {}
        self._guest: Dict[bytes, bytes] = {}   # host sun_path bytes -> guest sockaddr

    # ---- path names ----
    def new_host_path(self) -> str:
        path = os.path.join(self.dir, f"s{next(self._seq)}")
        try:
            os.unlink(path)
        except FileNotFoundError:
            pass
        return path

    def bound_path(self, key: Tuple[int, int], stamp: int, host_path: str, guest: UnixAddr) -> None:
        """Remember that the inode `key` (made at time `stamp`) is host_path."""
        self._by_inode[key] = (stamp, host_path)
        self._guest[os.fsencode(host_path)] = pack(guest)

    def host_path(self, key: Tuple[int, int], stamp: int) -> str:
        """Where to connect for a guest socket inode: ECONNREFUSED if the
        instance never bound it (a leftover file, a host daemon's socket)."""
        entry = self._by_inode.get(key)
        if entry is None or entry[0] != stamp:
            raise OSError(errno.ECONNREFUSED, "connection refused")
        return entry[1]

    # ---- abstract names ----
    def host_abstract(self, name: bytes) -> bytes:
        """The host's abstract name for a guest's (without the leading NUL)."""
        if self.private_abstract:
            return name
        import hashlib      # here: loading OpenSSL costs every start-up 3 ms
        digest = hashlib.blake2b(name, digest_size=16).hexdigest().encode()
        return b"umlpy-" + self.tag + b"-" + digest

    def bound_abstract(self, name: bytes) -> bytes:
        host = self.host_abstract(name)
        if host != name:
            self._guest[b"\0" + host] = pack(UnixAddr("abstract", name))
        return host

    def autobind_name(self) -> bytes:
        """An autobind name as Linux makes them: five hex digits."""
        return os.urandom(3).hex()[:5].encode()

    # ---- addresses to and from the host ----
    def to_host(self, addr: UnixAddr, host_path: Optional[str] = None) -> bytes:
        head = _FAMILY.pack(socket.AF_UNIX)
        if addr.kind == "path":
            assert host_path is not None
            return head + os.fsencode(host_path) + b"\0"
        return head + b"\0" + self.host_abstract(addr.name)

    def guest_sun_path(self, host_name: bytes) -> Optional[bytes]:
        """The guest's sun_path for a host one (a path, or NUL and an abstract
        name) if the instance made it."""
        addr = self._guest.get(host_name)
        return addr[SUN_PATH_OFFSET:].rstrip(b"\0") if addr and addr[2:3] != b"\0" else \
            (addr[SUN_PATH_OFFSET:] if addr else None)

    def to_guest(self, raw: bytes) -> bytes:
        """A sockaddr the host reported (getsockname, getpeername) as the guest
        named it; names the instance did not make are shown as the host gives them."""
        if family_of(raw) != socket.AF_UNIX or len(raw) <= SUN_PATH_OFFSET:
            return raw
        body = raw[SUN_PATH_OFFSET:]
        key = body.split(b"\0", 1)[0] if body[0] != 0 else body
        return self._guest.get(key, raw)
