"""--net=none: a network namespace of the instance's own.

An agent process (forked by the accelerator, a child of the kernel and not a
guest) unshares a network namespace - inside a user namespace of one uid when
umlpy is not root - brings its loopback up and lets every uid bind low ports
(the kernel checks guest credentials itself). The first guest process joins
its namespaces before exec; the agent stays to make sockets in there for the
kernel (port forwarding), since a non-root kernel cannot setns back in.
"""
from __future__ import annotations

import errno
import os
import socket
import struct

from umlpy.host._accel import ffi, lib

_REQ = struct.Struct("<iii")


class NetnsError(OSError):
    pass


def _userns_disabled_hint() -> str:
    for knob, bad in (("/proc/sys/kernel/unprivileged_userns_clone", "0"),
                      ("/proc/sys/user/max_user_namespaces", "0")):
        try:
            with open(knob) as f:
                if f.read().strip() == bad:
                    return f" ({knob} is {bad})"
        except OSError:
            pass
    return ""


class NetAgent:
    def __init__(self) -> None:
        out = ffi.new("int *")
        pid = lib.uml_net_agent(out)
        if pid < 0:
            e = -pid
            raise NetnsError(e, "cannot make a network namespace: " + os.strerror(e)
                             + ("; unprivileged user namespaces are disabled on this host"
                                + _userns_disabled_hint() if e in (errno.EPERM, errno.ENOSPC,
                                                                   errno.EACCES) else ""))
        self.pid = pid
        self._sock = socket.socket(fileno=out[0])

    def needs_userns(self) -> bool:
        """The agent had to make a user namespace (umlpy is not root)."""
        return os.stat(f"/proc/{self.pid}/ns/user").st_ino != os.stat("/proc/self/ns/user").st_ino

    def ns_fds(self) -> tuple:
        """(user namespace fd or -1, network namespace fd), for spawn to join."""
        net = os.open(f"/proc/{self.pid}/ns/net", os.O_RDONLY | os.O_CLOEXEC)
        if not self.needs_userns():
            return -1, net
        return os.open(f"/proc/{self.pid}/ns/user", os.O_RDONLY | os.O_CLOEXEC), net

    def socket(self, family: int, type_: int, proto: int = 0) -> socket.socket:
        """A socket made inside the namespace."""
        self._sock.sendall(_REQ.pack(family, type_, proto))
        msg, fds, _flags, _addr = socket.recv_fds(self._sock, 4, 1)
        if fds:
            return socket.socket(fileno=fds[0])
        code = struct.unpack("<i", msg)[0] if len(msg) == 4 else errno.EPROTO
        raise OSError(code, os.strerror(code))

    def close(self) -> None:
        self._sock.close()
        try:
            os.kill(self.pid, 9)
            os.waitpid(self.pid, 0)
        except (ChildProcessError, ProcessLookupError):
            pass
