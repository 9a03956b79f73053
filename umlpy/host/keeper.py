"""The keeper: a child of the kernel that holds the guests' exec images.

A guest has no host capabilities and may live in a user namespace of its
own, so the host lets it open /proc/<pid>/fd/N only of a process that is no
more privileged: not the kernel's. The keeper (csrc/keeper.c) is made exactly
as unprivileged as the guests; each exec image is passed to it once, and
guests exec /proc/<keeper pid>/fd/<its number there>. It is also the only
thing of the kernel's a guest could name that way, and it holds nothing else.
"""
from __future__ import annotations

import errno
import os
import socket
import struct
import threading

from umlpy.host._accel import ffi, lib

_REQ = struct.Struct("<iiii")
_WORD = struct.Struct("<i")


class KeeperError(OSError):
    pass


class Keeper:
    def __init__(self, netns: bool = False) -> None:
        out = ffi.new("int *")
        pid = lib.uml_keeper(lib.UML_KEEPER_NETNS if netns else 0, out)
        if pid < 0:
            raise KeeperError(-pid, os.strerror(-pid))
        self.pid = pid
        self._sock = socket.socket(fileno=out[0])
        self._lock = threading.Lock()       # one request at a time (forwarders ask too)

    def path(self, number: int) -> str:
        """The host path a guest execs a kept image by."""
        return f"/proc/{self.pid}/fd/{number}"

    def keep(self, fd: int) -> int:
        """Hand the keeper a copy of fd; returns its number there."""
        with self._lock:
            socket.send_fds(self._sock, [_REQ.pack(lib.UML_KEEPER_KEEP, 0, 0, 0)], [fd])
            return self._answer()

    def drop(self, number: int) -> None:
        with self._lock:
            self._sock.sendall(_REQ.pack(lib.UML_KEEPER_DROP, number, 0, 0))
            self._answer()

    def socket(self, family: int, type_: int, proto: int = 0) -> socket.socket:
        """A socket made in the keeper's network namespace."""
        with self._lock:
            self._sock.sendall(_REQ.pack(lib.UML_KEEPER_SOCKET, family, type_, proto))
            msg, fds, _flags, _addr = socket.recv_fds(self._sock, 4, 1)
        if fds:
            return socket.socket(fileno=fds[0])
        code = _WORD.unpack(msg)[0] if len(msg) == 4 else errno.EPROTO
        raise OSError(code, os.strerror(code))

    def _answer(self) -> int:
        msg = self._sock.recv(4)
        if len(msg) != 4:
            raise KeeperError(errno.EPIPE, "the keeper is gone")
        value = _WORD.unpack(msg)[0]
        if value < 0:
            raise KeeperError(-value, os.strerror(-value))
        return value

    def close(self) -> None:
        if self._sock.fileno() < 0:
            return
        self._sock.close()
        try:
            os.kill(self.pid, 9)
            os.waitpid(self.pid, 0)
        except (ChildProcessError, ProcessLookupError):
            pass
