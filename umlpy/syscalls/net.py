"""Socket calls that name addresses: bind, connect, addressed sendto, and
the names and credentials a socket reports.

The kernel performs bind, connect and an addressed sendto itself, on a
duplicate of the guest's socket, with an address it copied once and checked:
a unix path is resolved by the VFS in the guest's root (umlpy.net.unixnames),
never by the host, and another guest thread rewriting the address or the
descriptor table meanwhile changes nothing. Data calls without an address
(send, recv, accept...) run natively.

Known gaps: sendmsg/sendmmsg with msg_name run natively (an address inside a
msghdr cannot be filtered); accept/recvfrom report a unix peer's host path
when the peer bound one; SCM_CREDENTIALS carry host ids.
"""
from __future__ import annotations

import errno
import fcntl
import os
import signal
import socket
import stat as st
import struct

from umlpy.net import blocking, rawsock, unixnames
from umlpy.net.stack import net_of
from umlpy.net.unixnames import UnixAddr
from umlpy.syscalls.call import AT_FDCWD, Call, Deferred
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
@syscall("bind", support="partial",
         note="unix paths bound in the guest's file system, abstract names per instance")
def sys_bind(c: Call):
    raw = read_sockaddr(c, 1, 2)
    sock = c.kernel.fds.dup(c.task, c.fd(0))
    try:
        if rawsock.sock_int(sock, socket.SO_DOMAIN) == socket.AF_UNIX:
            return _unix_bind(c, sock, raw)
        _check_port(c, raw)
        rawsock.bind(sock, raw)
        return 0
    finally:
        os.close(sock)


@syscall("connect", support="partial",
         note="unix paths resolved in the guest's file system; IP through the host's stack")
def sys_connect(c: Call):
    raw = read_sockaddr(c, 1, 2)
    sock = c.kernel.fds.dup(c.task, c.fd(0))
    try:
        if rawsock.sock_int(sock, socket.SO_DOMAIN) == socket.AF_UNIX:
            raw = unix_target(c, raw)
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


@syscall("sendto", support="partial", native_if=(4, (0,)),
         note="native without an address; an addressed send is made by the kernel")
def sys_sendto(c: Call):
    length = c.long(2)
    if length < 0:
        return -errno.EINVAL
    flags = c.int(3)
    raw = read_sockaddr(c, 4, 5)
    sock = c.kernel.fds.dup(c.task, c.fd(0))
    task = c.task

    def send() -> int:
        try:
            return rawsock.sendto(sock, data, flags | socket.MSG_NOSIGNAL | socket.MSG_DONTWAIT,
                                  raw)
        except OSError as e:
            if e.errno == errno.EPIPE and not flags & socket.MSG_NOSIGNAL:
                _sigpipe(task)
            raise
    try:
        if raw and rawsock.sock_int(sock, socket.SO_DOMAIN) == socket.AF_UNIX:
            raw = unix_target(c, raw)
        data = c.mem.read(c.ptr(1), min(length, SEND_MAX))
        wait = not flags & socket.MSG_DONTWAIT \
            and not fcntl.fcntl(sock, fcntl.F_GETFL) & os.O_NONBLOCK
        try:
            n = send()
            os.close(sock)
            return n
        except OSError as e:
            if not wait or e.errno != errno.EAGAIN:
                raise
    except BaseException:
        os.close(sock)
        raise
    alive = _call_alive(c)

    def work() -> int:
        try:
            return blocking.finish_send(sock, send, alive)
        finally:
            os.close(sock)
    return Deferred(work, value=True)


def _sigpipe(task) -> None:
    """A send on a closed stream raises SIGPIPE in the sender, not in the kernel."""
    try:
        os.kill(task.group.host_tgid, signal.SIGPIPE)
    except OSError:
        pass


# ---- names and credentials ----
def _name_call(c: Call, fetch) -> int:
    addr, lenp = c.ptr(1), c.ptr(2)
    if lenp == 0:
        return -errno.EFAULT
    ulen = _INT.unpack(c.mem.read(lenp, 4))[0]
    if ulen < 0:
        return -errno.EINVAL
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
