"""Socket calls on kernel-held descriptors with raw sockaddr bytes.

The kernel performs a guest's bind, connect, addressed send and sendmsg itself, on a
duplicate of the guest's socket (pidfd_getfd), with the address it checked:
the host never re-reads an address from guest memory that another guest
thread could rewrite. Python's socket module wants parsed tuples and owns
its descriptors, so these go straight to libc (ctypes releases the GIL, so a
worker thread may block in them).
"""
from __future__ import annotations

import ctypes
import os
import socket

_libc = ctypes.CDLL(None, use_errno=True)
SOCKADDR_MAX = 128          # sizeof(struct sockaddr_storage)


def _check(ret: int, what: str) -> int:
    if ret < 0:
        e = ctypes.get_errno()
        raise OSError(e, f"{what}: {os.strerror(e)}")
    return ret


def bind(fd: int, addr: bytes) -> None:
    _check(_libc.bind(fd, ctypes.c_char_p(addr), len(addr)), "bind")


def connect(fd: int, addr: bytes) -> None:
    _check(_libc.connect(fd, ctypes.c_char_p(addr), len(addr)), "connect")


def sendto(fd: int, data: bytes, flags: int, addr: bytes) -> int:
    _libc.sendto.restype = ctypes.c_ssize_t
    return _check(_libc.sendto(fd, ctypes.c_char_p(data), ctypes.c_size_t(len(data)), flags,
                               ctypes.c_char_p(addr), len(addr)), "sendto")


class _Iovec(ctypes.Structure):
    _fields_ = [("base", ctypes.c_void_p), ("len", ctypes.c_size_t)]


class _Msghdr(ctypes.Structure):
    _fields_ = [("name", ctypes.c_void_p), ("namelen", ctypes.c_uint32),
                ("iov", ctypes.POINTER(_Iovec)), ("iovlen", ctypes.c_size_t),
                ("control", ctypes.c_void_p), ("controllen", ctypes.c_size_t),
                ("flags", ctypes.c_int)]


def sendmsg(fd: int, data: bytes, control: bytes, flags: int, addr: bytes) -> int:
    """sendmsg(2) of one buffer, with raw control messages and address."""
    dbuf = ctypes.create_string_buffer(data, len(data))
    cbuf = ctypes.create_string_buffer(control, len(control))
    nbuf = ctypes.create_string_buffer(addr, len(addr))
    iov = _Iovec(ctypes.cast(dbuf, ctypes.c_void_p), len(data))
    msg = _Msghdr(ctypes.cast(nbuf, ctypes.c_void_p) if addr else None, len(addr),
                  ctypes.pointer(iov), 1,
                  ctypes.cast(cbuf, ctypes.c_void_p) if control else None, len(control), 0)
    _libc.sendmsg.restype = ctypes.c_ssize_t
    return _check(_libc.sendmsg(fd, ctypes.byref(msg), flags), "sendmsg")


def _name(fn, fd: int, what: str) -> bytes:
    buf = ctypes.create_string_buffer(SOCKADDR_MAX)
    length = ctypes.c_uint32(SOCKADDR_MAX)
    _check(fn(fd, buf, ctypes.byref(length)), what)
    return buf.raw[:min(length.value, SOCKADDR_MAX)]


def getsockname(fd: int) -> bytes:
    return _name(_libc.getsockname, fd, "getsockname")


def getpeername(fd: int) -> bytes:
    return _name(_libc.getpeername, fd, "getpeername")


def getsockopt(fd: int, level: int, name: int, size: int = 4) -> bytes:
    buf = ctypes.create_string_buffer(size)
    length = ctypes.c_uint32(size)
    _check(_libc.getsockopt(fd, level, name, buf, ctypes.byref(length)), "getsockopt")
    return buf.raw[:length.value]


def sock_int(fd: int, name: int) -> int:
    """An int SOL_SOCKET option (SO_DOMAIN, SO_TYPE)."""
    return int.from_bytes(getsockopt(fd, socket.SOL_SOCKET, name, 4), "little", signed=True)
