"""Socket calls that name addresses: bind, connect, addressed sendto, and
the names and credentials a socket reports (sendmsg and the receiving
calls: net_msg).

The kernel performs bind, connect and an addressed sendto itself, on a
duplicate of the guest's socket, with an address it copied once and checked:
a unix path is resolved by the VFS in the guest's root (umlpy.net.unixnames),
never by the host, and another guest thread rewriting the address or the
descriptor table meanwhile changes nothing. Data calls without an address
(send, recv, write, read) run natively.

Credentials: the host stamps the kernel's pid on what the kernel connects
or sends, so the kernel keeps a ledger of the guest credentials it acted
with (umlpy.net.ucred); SO_PEERCRED is answered from it or from the peer
process's guest credentials.
"""
from __future__ import annotations

import errno
import fcntl
import os
import signal
import socket
import stat as st
import struct
from typing import Callable

from umlpy.net import blocking, rawsock, ucred, unixdiag, unixnames
from umlpy.net.stack import net_of
from umlpy.net.unixnames import UnixAddr
from umlpy.syscalls.call import AT_FDCWD, PASS, Call, Deferred
from umlpy.syscalls.fs import walk
from umlpy.syscalls.registry import syscall
from umlpy.vfs import ops, perm

SOCKADDR_STORAGE = 128
SEND_MAX = 4 << 20              # an addressed send copies at most this much at once
PRIVILEGED_PORTS = 1024         # net.ipv4.ip_unprivileged_port_start, as a guest sees it
_PEERCRED = struct.Struct("<iII")
_INT = struct.Struct("<i")


def read_sockaddr(c: Call, ptr_i: int, len_i: int) -> bytes:
    """The address argument, copied once (EINVAL past sockaddr_storage)."""
    length = c.int(len_i)
    if length < 0 or length > SOCKADDR_STORAGE:
        raise OSError(errno.EINVAL, "bad address length")
    return c.mem.read(c.ptr(ptr_i), length) if length else b""


def _blocking_stream(sock: int) -> bool:
    """A connect on it may wait (a full backlog, a slow peer)."""
    if fcntl.fcntl(sock, fcntl.F_GETFL) & os.O_NONBLOCK:
        return False
    return rawsock.sock_int(sock, socket.SO_TYPE) != socket.SOCK_DGRAM


def _check_port(c: Call, raw: bytes) -> None:
    """Binding a port below 1024 needs guest root, whatever the host user is."""
    fam = unixnames.family_of(raw)
    if fam not in (socket.AF_INET, socket.AF_INET6) or len(raw) < 4:
        return
    port = struct.unpack_from(">H", raw, 2)[0]
    if 0 < port < PRIVILEGED_PORTS and c.task.creds.euid != 0:
        raise OSError(errno.EACCES, "permission denied")


# ---- unix names ----
def _socket_inode_target(c: Call, path: bytes) -> str:
    """The host path to reach the guest's socket inode at `path`."""
    lk = walk(c, AT_FDCWD, os.fsdecode(path), True)
    p = lk.must_exist()
    a = ops.getattr_of(p)
    perm.permission(a, c.task.creds, perm.MAY_WRITE)
    if not st.S_ISSOCK(a.mode):
        raise OSError(errno.ECONNREFUSED, "connection refused")
    return net_of(c.kernel).unix.host_path((a.dev, a.ino), a.mtime_ns)


def unix_target(c: Call, raw: bytes) -> bytes:
    """The host sockaddr a guest's connect or sendto address stands for."""
    names = net_of(c.kernel).unix
    addr = unixnames.parse(raw, allow_autobind=False)
    if addr.kind == "path":
        return names.to_host(addr, _socket_inode_target(c, addr.name))
    return names.to_host(addr)


def _unix_bind(c: Call, sock: int, raw: bytes) -> int:
    names = net_of(c.kernel).unix
    addr = unixnames.parse(raw, allow_autobind=True)
    if len(rawsock.getsockname(sock)) > unixnames.SUN_PATH_OFFSET:
        return -errno.EINVAL                    # bound already
    if addr.kind == "autobind":
        if names.private_abstract:
            rawsock.bind(sock, raw)
            return 0
        for _ in range(8):
            name = names.autobind_name()
            try:
                rawsock.bind(sock, names.to_host(UnixAddr("abstract", name)))
            except OSError as e:
                if e.errno == errno.EADDRINUSE:
                    continue
                raise
            names.bound_abstract(name)
            return 0
        return -errno.ENOSPC
    if addr.kind == "abstract":
        rawsock.bind(sock, names.to_host(addr))
        names.bound_abstract(addr.name)
        return 0
    return _bind_path(c, sock, addr)


def _bind_path(c: Call, sock: int, addr: UnixAddr) -> int:
    """Make the socket inode at the guest path, then bind the host socket to
    a private host path that stands for it (Linux's order: a failed bind
    takes the new name away again)."""
    names = net_of(c.kernel).unix
    path = os.fsdecode(addr.name)
    creds = c.task.creds
    lk = walk(c, AT_FDCWD, path, False)
    if lk.path is not None:
        return -errno.EADDRINUSE
    mode = st.S_IFSOCK | (0o777 & ~c.task.fs.umask)
    try:
        ops.mknod(lk, creds, mode, 0)
    except OSError as e:
        return -(errno.EADDRINUSE if e.errno == errno.EEXIST else e.errno or errno.EINVAL)
    made = walk(c, AT_FDCWD, path, False)
    p = made.must_exist()
    a = ops.getattr_of(p)
    host = names.new_host_path()
    try:
        rawsock.bind(sock, names.to_host(addr, host))
    except OSError:
        try:
            made.parent.inode.unlink(made.name)
        except OSError:
            pass
        raise
    names.bound_path((a.dev, a.ino), a.mtime_ns, host, addr)
    return 0


# ---- bind, connect, sendto ----
def _guest_socket(c: Call) -> tuple:
    """(address, the kernel's duplicate of the socket, is it AF_UNIX) of a
    bind or connect: the address copied once, the descriptor held once."""
    raw = read_sockaddr(c, 1, 2)
    sock = c.kernel.fds.dup(c.task, c.fd(0))
    try:
        return raw, sock, rawsock.sock_int(sock, socket.SO_DOMAIN) == socket.AF_UNIX
    except BaseException:
        os.close(sock)
        raise


@syscall("bind", support="partial",
         note="unix paths bound in the guest's file system, abstract names per instance")
def sys_bind(c: Call):
    raw, sock, unix = _guest_socket(c)
    try:
        if unix:
            return _unix_bind(c, sock, raw)
        _check_port(c, raw)
        rawsock.bind(sock, raw)
        return 0
    finally:
        os.close(sock)


@syscall("connect", support="partial",
         note="unix paths resolved in the guest's file system; IP through the host's stack")
def sys_connect(c: Call):
    raw, sock, unix = _guest_socket(c)
    try:
        if unix:
            raw = unix_target(c, raw)
            # the host stamps the kernel as the peer: remember whom it connected for
            _ledger(c).record(("ino", os.fstat(sock).st_ino), ucred.of_task(c.task, True))
        wait = _blocking_stream(sock)
        try:
            blocking.try_nonblocking(sock, lambda: (rawsock.connect(sock, raw), 0)[1])
            os.close(sock)
            return 0
        except OSError as e:
            if not wait or e.errno not in (errno.EINPROGRESS, errno.EAGAIN):
                raise
            first = e.errno
    except BaseException:
        os.close(sock)
        raise
    alive = _call_alive(c)

    def work() -> int:          # on a kernel worker thread: the guest waits, the kernel not
        try:
            return blocking.finish_connect(sock, raw, first, alive)
        finally:
            os.close(sock)
    return Deferred(work, value=True)


def _call_alive(c: Call):
    tracer, notif_id = c.kernel.tracer, c.notif_id
    return lambda: tracer.notif_valid(notif_id)


def _ledger(c: Call) -> ucred.Ledger:
    return net_of(c.kernel).ledger


def unix_dest(c: Call, sock: int, raw: bytes) -> bytes:
    """The host address for a send on a unix socket to the guest's `raw`:
    only a datagram socket goes where the address says (Linux: a stream
    socket refuses one, a seqpacket socket ignores it)."""
    kind = rawsock.sock_int(sock, socket.SO_TYPE)
    if kind == socket.SOCK_STREAM:
        connected = len(_peer_or_empty(sock)) > 0
        raise OSError(errno.EISCONN if connected else errno.EOPNOTSUPP, "address on a stream")
    if kind != socket.SOCK_DGRAM:
        return b""
    return unix_target(c, raw)


def _peer_or_empty(sock: int) -> bytes:
    try:
        return rawsock.getpeername(sock)
    except OSError:
        return b""


def record_sender(c: Call, sock: int, cred: ucred.Ucred) -> None:
    """The guest credentials a message the kernel sends on `sock` stands for
    (found again by the receiver through the sending socket)."""
    ledger = _ledger(c)
    ledger.record(("ino", os.fstat(sock).st_ino), cred)
    name = rawsock.getsockname(sock)
    if len(name) > unixnames.SUN_PATH_OFFSET:
        ledger.record(("name", name), cred)


def kernel_send(c: Call, sock: int, flags: int, op: Callable[[int], int],
                cleanup: Callable[[], None] = lambda: None,
                after: Callable[[int], int] = lambda n: n):
    """Run op(flags) -- a send on the kernel's duplicate `sock` -- without
    blocking; when the guest's socket would block, finish on a worker thread.
    sock is closed and cleanup() called once the send is over; after(n)
    turns the byte count into the call's result."""
    task = c.task

    def send() -> int:
        try:
            return op(flags | socket.MSG_NOSIGNAL | socket.MSG_DONTWAIT)
        except OSError as e:
            if e.errno == errno.EPIPE and not flags & socket.MSG_NOSIGNAL:
                _sigpipe(task)
            raise

    def done() -> None:
        os.close(sock)
        cleanup()
    try:
        wait = not flags & socket.MSG_DONTWAIT \
            and not fcntl.fcntl(sock, fcntl.F_GETFL) & os.O_NONBLOCK
        try:
            n = send()
            done()
            return after(n)
        except OSError as e:
            if not wait or e.errno != errno.EAGAIN:
                raise
    except BaseException:
        done()
        raise
    alive = _call_alive(c)

    def work() -> int:
        try:
            return after(blocking.finish_send(sock, send, alive))
        finally:
            done()
    return Deferred(work, value=True)


@syscall("sendto", support="partial", native_if=(4, (0,)),
         note="native without an address; an addressed send is made by the kernel")
def sys_sendto(c: Call):
    length = c.long(2)
    if length < 0:
        return -errno.EINVAL
    flags = c.int(3)
    raw = read_sockaddr(c, 4, 5)
    sock = c.kernel.fds.dup(c.task, c.fd(0))
    try:
        if raw and rawsock.sock_int(sock, socket.SO_DOMAIN) == socket.AF_UNIX:
            raw = unix_dest(c, sock, raw)
            record_sender(c, sock, ucred.of_task(c.task, False))
        data = c.mem.read(c.ptr(1), min(length, SEND_MAX))
    except BaseException:
        os.close(sock)
        raise
    return kernel_send(c, sock, flags, lambda f: rawsock.sendto(sock, data, f, raw))


def _sigpipe(task) -> None:
    """A send on a closed stream raises SIGPIPE in the sender, not in the kernel."""
    try:
        os.kill(task.group.host_tgid, signal.SIGPIPE)
    except OSError:
        pass


# ---- names and credentials ----
def read_len(c: Call, i: int) -> int:
    """The int a value-result length argument points to (EFAULT, EINVAL if negative)."""
    lenp = c.ptr(i)
    if lenp == 0:
        raise OSError(errno.EFAULT, "bad address")
    ulen = _INT.unpack(c.mem.read(lenp, 4))[0]
    if ulen < 0:
        raise OSError(errno.EINVAL, "negative length")
    return ulen


def _name_call(c: Call, fetch) -> int:
    addr, lenp = c.ptr(1), c.ptr(2)
    ulen = read_len(c, 2)
    sock = c.kernel.fds.dup(c.task, c.fd(0))
    try:
        raw = fetch(sock)
    finally:
        os.close(sock)
    raw = net_of(c.kernel).unix.to_guest(raw)
    if ulen and raw:
        c.write(addr, raw[:ulen])
    c.write(lenp, _INT.pack(len(raw)))
    return 0


@syscall("getsockname", note="unix names as the guest bound them")
def sys_getsockname(c: Call):
    return _name_call(c, rawsock.getsockname)


@syscall("getpeername", note="unix names as the guest bound them")
def sys_getpeername(c: Call):
    return _name_call(c, rawsock.getpeername)


def peer_keys(sock: int) -> list:
    """Ledger keys of the socket at the other end of a connected `sock`."""
    ino = unixdiag.peer_inode(sock)
    return [("ino", ino)] if ino is not None else []


def guest_ucred(c: Call, host: ucred.Ucred, effective: bool, keys: Callable[[], list]):
    return ucred.to_guest(c.kernel, _ledger(c), host, effective, keys)


@syscall("getsockopt", support="partial", trap_if=(2, (socket.SO_PEERCRED,)),
         note="native but for SO_PEERCRED, which shows the peer's guest pid, uid and gid")
def sys_getsockopt(c: Call):
    if c.int(1) != socket.SOL_SOCKET:
        return PASS                     # option 17 of another level: the host's answer
    lenp, ulen = c.ptr(4), read_len(c, 4)
    sock = c.kernel.fds.dup(c.task, c.fd(0))
    try:
        host = ucred.Ucred(*_PEERCRED.unpack(rawsock.getsockopt(
            sock, socket.SOL_SOCKET, socket.SO_PEERCRED, _PEERCRED.size)))
        cred = guest_ucred(c, host, True, lambda: peer_keys(sock))
    finally:
        os.close(sock)
    data = _PEERCRED.pack(cred.pid, cred.uid, cred.gid)[:ulen]
    if data:
        c.write(c.ptr(3), data)
    c.write(lenp, _INT.pack(len(data)))
    return 0
