"""Blocking connects and sends made by the kernel for a guest.

The kernel never blocks in them: it tries without waiting, then a worker
thread waits for the socket with poll() in short slices, and gives up as
soon as the guest's call is gone (the guest was killed or interrupted by a
signal), so no kernel thread outlives the call it serves.
"""
from __future__ import annotations

import errno
import fcntl
import os
import select
import socket
import struct
import time
from typing import Callable, Optional

from umlpy.net import rawsock

SLICE_MS = 100
_TIMEVAL = struct.Struct("<qq")


def try_nonblocking(sock: int, op: Callable[[], int]) -> int:
    """Run op once with O_NONBLOCK set on the (shared) description, then put
    the guest's flags back. Returns op's result or raises its OSError."""
    flags = fcntl.fcntl(sock, fcntl.F_GETFL)
    if flags & os.O_NONBLOCK:
        return op()
    fcntl.fcntl(sock, fcntl.F_SETFL, flags | os.O_NONBLOCK)
    try:
        return op()
    finally:
        fcntl.fcntl(sock, fcntl.F_SETFL, flags)


def send_timeout(sock: int) -> Optional[float]:
    """SO_SNDTIMEO in seconds (None: wait forever), which bounds connect and send."""
    sec, usec = _TIMEVAL.unpack(rawsock.getsockopt(sock, socket.SOL_SOCKET,
                                                   socket.SO_SNDTIMEO, _TIMEVAL.size))
    t = sec + usec / 1e6
    return t if t > 0 else None


def _wait_writable(sock: int, alive: Callable[[], bool], deadline: Optional[float]) -> bool:
    """True once writable; False at the deadline; EINTR once the call is gone."""
    while True:
        if not alive():
            raise OSError(errno.EINTR, "interrupted")
        if deadline is not None and time.monotonic() >= deadline:
            return False
        p = select.poll()
        p.register(sock, select.POLLOUT)
        if p.poll(SLICE_MS):
            return True


def finish_connect(sock: int, raw: bytes, first_errno: int, alive: Callable[[], bool]) -> int:
    """After a connect that would block (EINPROGRESS: TCP; EAGAIN: a unix
    listener's full backlog): the result a blocking connect gives."""
    limit = send_timeout(sock)
    deadline = time.monotonic() + limit if limit is not None else None
    err = first_errno
    while True:
        if not _wait_writable(sock, alive, deadline):
            raise OSError(errno.EINPROGRESS if err == errno.EINPROGRESS else errno.EAGAIN,
                          "timed out")
        if err == errno.EINPROGRESS:
            so = rawsock.sock_int(sock, socket.SO_ERROR)
            if so:
                raise OSError(so, os.strerror(so))
            return 0
        try:                             # a unix backlog had no room: try again
            return try_nonblocking(sock, lambda: (rawsock.connect(sock, raw), 0)[1])
        except OSError as e:
            if e.errno != errno.EAGAIN:
                raise
            time.sleep(SLICE_MS / 1000)


def finish_send(sock: int, send: Callable[[], int], alive: Callable[[], bool]) -> int:
    """A send that found no room: wait for room and send again."""
    limit = send_timeout(sock)
    deadline = time.monotonic() + limit if limit is not None else None
    while True:
        if not _wait_writable(sock, alive, deadline):
            raise OSError(errno.EAGAIN, "timed out")
        try:
            return send()
        except OSError as e:
            if e.errno != errno.EAGAIN:
                raise
