"""Datagrams aimed at a host unix socket by sendmsg and sendmmsg (run in the
guest, where each must fail as connect does, and natively, where each must
arrive). argv: the host socket's path, then how many race rounds to run.

The race: one thread flips msg_name of a shared msghdr between nothing and
the host path while another sends with it on a socket connected to a
socket of its own; the kernel must send with the msghdr it read, once."""
import ctypes
import errno
import os
import socket
import sys
import tempfile
import threading

target, rounds = sys.argv[1], int(sys.argv[2])
libc = ctypes.CDLL(None, use_errno=True)


class Iovec(ctypes.Structure):
    _fields_ = [("base", ctypes.c_char_p), ("len", ctypes.c_size_t)]


class Msghdr(ctypes.Structure):
    _fields_ = [("name", ctypes.c_void_p), ("namelen", ctypes.c_uint32),
                ("iov", ctypes.POINTER(Iovec)), ("iovlen", ctypes.c_size_t),
                ("control", ctypes.c_void_p), ("controllen", ctypes.c_size_t),
                ("flags", ctypes.c_int)]


class Mmsghdr(ctypes.Structure):
    _fields_ = [("hdr", Msghdr), ("len", ctypes.c_uint)]


def sockaddr(path):
    raw = socket.AF_UNIX.to_bytes(2, "little") + path.encode() + b"\0"
    return ctypes.create_string_buffer(raw, len(raw)), len(raw)


def attempt(fn):
    try:
        fn()
        return "sent"
    except OSError as e:
        return errno.errorcode[e.errno]


s = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
print("sendmsg", attempt(lambda: s.sendmsg([b"escaped by sendmsg"], [], 0, target)))
name, namelen = sockaddr(target)
data = ctypes.create_string_buffer(b"escaped by sendmmsg")
iov = Iovec(data.value, len(data.value))
vec = (Mmsghdr * 2)()
for m in vec:
    m.hdr = Msghdr(ctypes.cast(name, ctypes.c_void_p), namelen, ctypes.pointer(iov), 1)


def sendmmsg():
    n = libc.sendmmsg(s.fileno(), vec, 2, 0)
    if n < 0:
        raise OSError(ctypes.get_errno(), "sendmmsg")
print("sendmmsg", attempt(sendmmsg))

# the race, on a socket connected to one of the guest's own
own = tempfile.mktemp(prefix="umlpy-race-", dir="/tmp")
mine = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
mine.bind(own)
mine.setblocking(False)
c = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
c.connect(own)
racy = Msghdr(None, 0, ctypes.pointer(Iovec(b"raced", 5)), 1)
stop = False


def flip():
    while not stop:
        racy.name, racy.namelen = ctypes.cast(name, ctypes.c_void_p).value, namelen
        racy.name, racy.namelen = None, 0


t = threading.Thread(target=flip)
t.start()
outcomes = set()
for _ in range(rounds):
    r = libc.sendmsg(c.fileno(), ctypes.byref(racy), socket.MSG_DONTWAIT)
    outcomes.add("sent" if r >= 0 else errno.errorcode[ctypes.get_errno()])
    try:
        while True:
            mine.recv(10)
    except BlockingIOError:
        pass
stop = True
t.join()
os.unlink(own)
print("race", " ".join(sorted(outcomes)))
