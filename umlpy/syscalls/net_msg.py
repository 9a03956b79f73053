"""sendmsg and sendmmsg, and the receiving calls that report a unix peer.

sendmsg/sendmmsg always stop (a seccomp filter cannot see msg_name inside
the msghdr): the kernel reads the msghdr once and makes the send itself on
a duplicate of the socket with its own copy -- the address resolved in the
guest's file system, SCM_RIGHTS fds taken from the guest's table,
SCM_CREDENTIALS checked against the guest's credentials -- so the host
never re-reads guest memory another guest thread may rewrite.

accept/accept4 and recvfrom with an address buffer, and recvmsg, stop at a
ptrace stop and the host runs them (a blocking accept or receive blocks the
guest, not the kernel); on a unix socket the kernel points the host at a
scratch buffer below the stack pointer for the peer's name and, at the
call's exit, writes the guest's name for it (and guest ids in any
SCM_CREDENTIALS) where the guest asked.
"""
from __future__ import annotations

import errno
import os
import socket
import struct
from typing import List, Optional

from umlpy.net import rawsock, ucred
from umlpy.net.msghdr import (CONTROLLEN_OFFSET, FLAGS_OFFSET, MMSGHDR_SIZE, MSGHDR, NAMELEN_OFFSET,
                              SCM_CREDENTIALS, SCM_MAX_FD, SCM_RIGHTS, SOCKADDR_STORAGE, UCRED,
                              UIO_MAXIOV, IOVEC, MsgHdr, creds_offsets, iov_spans, pack_cmsgs,
                              parse_cmsgs, parse_msghdr)
from umlpy.net.stack import net_of
from umlpy.syscalls.call import PASS, Call
from umlpy.syscalls.net import (SEND_MAX, guest_ucred, kernel_send, peer_keys, read_len,
                                record_sender, unix_dest)
from umlpy.syscalls.registry import TRACE, syscall

CONTROL_MAX = 128 << 10         # net.core.optmem_max: a longer control buffer is ENOBUFS
SCRATCH_GAP = 1024              # below the red zone and the caller's frame
_INT = struct.Struct("<i")
_U32 = struct.Struct("<I")


# ---- sending ----
class Outgoing:
    """One message as the kernel will send it."""

    def __init__(self) -> None:
        self.data = b""
        self.control = b""
        self.dest = b""
        self.fds: List[int] = []            # the kernel's duplicates of passed fds
        self.cred: Optional[ucred.Ucred] = None   # the guest's explicit SCM_CREDENTIALS

    def close(self) -> None:
        for fd in self.fds:
            os.close(fd)
        self.fds.clear()


def _read_data(c: Call, h: MsgHdr, stream: bool) -> bytes:
    spans = iov_spans(c.mem.read(h.iov, IOVEC.size * h.iovlen) if h.iovlen else b"")
    total = sum(length for _b, length in spans)
    if total > SEND_MAX and not stream:
        raise OSError(errno.EMSGSIZE, "message too long")
    out, left = [], min(total, SEND_MAX)    # a stream takes what fits: a short send
    for base, length in spans:
        if left == 0:
            break
        take = min(length, left)
        out.append(c.mem.read(base, take))
        left -= take
    return b"".join(out)


def _control(c: Call, raw: bytes, msg: Outgoing) -> bytes:
    """The guest's control messages with fds and credentials made the host's."""
    out = []
    for level, kind, data in parse_cmsgs(raw):
        if level == socket.SOL_SOCKET and kind == SCM_RIGHTS:
            nums = struct.unpack(f"<{len(data) // 4}i", data[:len(data) // 4 * 4])
            if len(msg.fds) + len(nums) > SCM_MAX_FD:
                raise OSError(errno.EINVAL, "too many fds")
            for n in nums:
                msg.fds.append(c.kernel.fds.dup(c.task, n))
            data = struct.pack(f"<{len(nums)}i", *msg.fds[-len(nums):]) if nums else b""
        elif level == socket.SOL_SOCKET and kind == SCM_CREDENTIALS:
            if len(data) != UCRED.size:
                raise OSError(errno.EINVAL, "bad SCM_CREDENTIALS")
            claim = ucred.Ucred(*UCRED.unpack(data))
            pids = c.kernel.pids
            ucred.check_claim(c.task.creds, c.task.group.tgid, claim,
                              lambda p: pids.to_host(p) is not None)
            msg.cred = claim
            data = UCRED.pack(os.getpid(), os.getuid(), os.getgid())
        out.append((level, kind, data))
    return pack_cmsgs(out)


def prepare(c: Call, sock: int, h: MsgHdr) -> Outgoing:
    """Copy and check one message, as Linux does before sending it."""
    msg = Outgoing()
    try:
        name = c.mem.read(h.name, h.namelen) if h.namelen else b""
        if h.controllen > CONTROL_MAX:
            raise OSError(errno.ENOBUFS, "control too long")
        control = c.mem.read(h.control, h.controllen) if h.controllen else b""
        unix = rawsock.sock_int(sock, socket.SO_DOMAIN) == socket.AF_UNIX
        stream = rawsock.sock_int(sock, socket.SO_TYPE) == socket.SOCK_STREAM
        msg.data = _read_data(c, h, stream)
        msg.control = _control(c, control, msg)
        msg.dest = unix_dest(c, sock, name) if name and unix else name
        if unix:
            record_sender(c, sock, msg.cred or ucred.of_task(c.task, False))
    except BaseException:
        msg.close()
        raise
    return msg


def _op(sock: int, msg: Outgoing):
    return lambda flags: rawsock.sendmsg(sock, msg.data, msg.control, flags, msg.dest)


def _prepared(c: Call, at: int) -> tuple:
    """(the kernel's duplicate of the socket, the message) of the msghdr at `at`."""
    h = parse_msghdr(c.mem.read(at, MSGHDR.size))
    sock = c.kernel.fds.dup(c.task, c.fd(0))
    try:
        return sock, prepare(c, sock, h)
    except BaseException:
        os.close(sock)
        raise


def sys_sendmsg(c: Call):
    sock, msg = _prepared(c, c.ptr(1))
    return kernel_send(c, sock, c.int(2), _op(sock, msg), msg.close)


def sys_sendmmsg(c: Call):
    vec, flags = c.ptr(1), c.int(3)
    vlen = min(c.args[2] & 0xFFFFFFFF, UIO_MAXIOV)
    sent = 0
    for i in range(vlen):
        at = vec + i * MMSGHDR_SIZE
        try:
            result = _send_one(c, at, flags, first=(sent == 0))
        except OSError:
            if sent:
                return sent         # Linux reports what went; the error comes next call
            raise
        if not isinstance(result, int):
            return result           # the first message waits for room (a worker sends it)
        sent += 1
    return sent


syscall("sendmsg", support="partial",
        note="made by the kernel on its copy: unix addresses in the guest's file system, "
             "guest fds and credentials")(sys_sendmsg)
syscall("sendmmsg", support="partial", note="each message made by the kernel as sendmsg")(
    sys_sendmmsg)


def _send_one(c: Call, at: int, flags: int, first: bool):
    sock, msg = _prepared(c, at)
    mem = c.mem

    def after(n: int) -> int:
        mem.write(at + MSGHDR.size, _U32.pack(n))
        return 1
    # only the first message may wait: after it, a full socket ends the batch
    return kernel_send(c, sock, flags if first else flags | socket.MSG_DONTWAIT,
                       _op(sock, msg), msg.close, after)


# ---- receiving: the peer's name and credentials ----
def _unix_kind(c: Call) -> Optional[int]:
    """SO_TYPE of the guest's fd when it is a unix socket, else None."""
    try:
        sock = c.kernel.fds.dup(c.task, c.fd(0))
    except OSError:
        return None                 # the host gives the errno
    try:
        if rawsock.sock_int(sock, socket.SO_DOMAIN) != socket.AF_UNIX:
            return None
        return rawsock.sock_int(sock, socket.SO_TYPE)
    except OSError:
        return None
    finally:
        os.close(sock)


def _scratch(c: Call, size: int) -> int:
    return (c.sp - SCRATCH_GAP - size) & ~0xF


def _guest_name(c: Call, host: bytes) -> bytes:
    return net_of(c.kernel).unix.to_guest(host)


def _give_name(c: Call, addr: int, lenp: int, ulen: int, host: bytes) -> None:
    """Write the guest's name for `host` as Linux returns an address: at most
    ulen bytes of it, and its whole length."""
    name = _guest_name(c, host)
    if ulen and name:
        c.write(addr, name[:ulen])
    c.write(lenp, _INT.pack(len(name)))


def _name_call(c: Call, addr_i: int, len_i: int):
    """accept/recvfrom with an address buffer on a unix socket: the host
    writes the peer's name into scratch; the exit writes the guest's."""
    if _unix_kind(c) is None:
        return PASS
    addr, lenp = c.ptr(addr_i), c.ptr(len_i)
    try:
        ulen = read_len(c, len_i)
    except OSError as e:
        if e.errno == errno.EFAULT:
            return PASS             # the host's errno, in the host's order of checks
        raise
    base = _scratch(c, SOCKADDR_STORAGE + 8)
    try:
        c.write(base + SOCKADDR_STORAGE, _INT.pack(SOCKADDR_STORAGE))
    except OSError:
        return PASS
    c.set_arg(addr_i, base)
    c.set_arg(len_i, base + SOCKADDR_STORAGE)

    def done(c: Call, ret: int):
        if ret < 0:
            return None
        got = min(_INT.unpack(c.mem.read(base + SOCKADDR_STORAGE, 4))[0], SOCKADDR_STORAGE)
        _give_name(c, addr, lenp, ulen, c.mem.read(base, max(got, 0)))
        return None
    c.on_exit(done)
    return PASS


@syscall("accept", "accept4", mode=TRACE, support="partial", native_if=(1, (0,)),
         note="native without an address buffer; a unix peer's guest name")
def sys_accept(c: Call):
    return _name_call(c, 1, 2)


@syscall("recvfrom", mode=TRACE, support="partial", native_if=(4, (0,)),
         note="native without an address buffer; a unix sender's guest name")
def sys_recvfrom(c: Call):
    return _name_call(c, 4, 5)


@syscall("recvmsg", mode=TRACE, support="partial",
         note="the host receives; a unix sender's guest name and guest SCM_CREDENTIALS")
def sys_recvmsg(c: Call):
    at = c.ptr(1)
    try:
        h = MsgHdr(*MSGHDR.unpack(c.mem.read(at, MSGHDR.size)))
    except OSError:
        return PASS                 # the host gives EFAULT
    if not h.name and not h.controllen:
        return PASS                 # data only: nothing to translate
    if h.name and h.namelen & 0x80000000:
        return -errno.EINVAL        # msg_namelen is an int
    ulen = min(h.namelen, SOCKADDR_STORAGE)
    kind = _unix_kind(c)
    if kind is None:
        return PASS
    # the host fills a copy of the msghdr with a scratch name buffer (so a
    # sender's long host name is never cut short, and a datagram's sender is
    # known even when the guest asked for no name)
    base = _scratch(c, MSGHDR.size + SOCKADDR_STORAGE)
    copy = MSGHDR.pack(base + MSGHDR.size, SOCKADDR_STORAGE, h.iov, h.iovlen, h.control,
                       h.controllen, h.flags)
    try:
        c.write(base, copy)
    except OSError:
        return PASS
    c.set_arg(1, base)

    def done(c: Call, ret: int):
        if ret < 0:
            return None
        out = MsgHdr(*MSGHDR.unpack(c.mem.read(base, MSGHDR.size)))
        host_name = c.mem.read(base + MSGHDR.size, min(out.namelen, SOCKADDR_STORAGE))
        if h.name:
            _give_name(c, h.name, at + NAMELEN_OFFSET, ulen, host_name)
        c.write(at + CONTROLLEN_OFFSET, out.controllen.to_bytes(8, "little"))
        c.write(at + FLAGS_OFFSET, _INT.pack(out.flags))
        if out.controllen:
            _fix_creds(c, h.control, min(out.controllen, h.controllen), kind, host_name)
        return None
    c.on_exit(done)
    return PASS


def _fix_creds(c: Call, control: int, length: int, kind: int, sender: bytes) -> None:
    """Guest ids in each SCM_CREDENTIALS the host wrote."""
    raw = c.mem.read(control, length)
    offsets = creds_offsets(raw)
    if not offsets:
        return

    def keys() -> list:
        if kind == socket.SOCK_DGRAM:
            return [("name", sender)] if len(sender) > 2 else []
        sock = c.kernel.fds.dup(c.task, c.fd(0))
        try:
            return peer_keys(sock)
        finally:
            os.close(sock)
    for off in offsets:
        host = ucred.Ucred(*UCRED.unpack_from(raw, off))
        cred = guest_ucred(c, host, False, keys)
        c.write(control + off, UCRED.pack(cred.pid, cred.uid, cred.gid))
