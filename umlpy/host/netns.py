"""--net=none: a network namespace of the instance's own.

The keeper (umlpy.host.keeper, a child of the kernel and not a guest) is made
in it: it unshares a network namespace - inside a user namespace of one uid
when umlpy is not root - brings its loopback up and lets every uid bind low
ports (the kernel checks guest credentials itself). The first guest process
joins its namespaces before exec; the keeper stays to make sockets in there
for the kernel (port forwarding), since a non-root kernel cannot setns back in.
"""
from __future__ import annotations

import errno
import os

from umlpy.host.keeper import Keeper, KeeperError


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


class NetAgent(Keeper):
    def __init__(self) -> None:
        try:
            super().__init__(netns=True)
        except KeeperError as e:
            raise NetnsError(e.errno, "cannot make a network namespace: " + os.strerror(e.errno)
                             + ("; unprivileged user namespaces are disabled on this host"
                                + _userns_disabled_hint() if e.errno in (
                                    errno.EPERM, errno.ENOSPC, errno.EACCES) else "")) from None

    def needs_userns(self) -> bool:
        """The agent had to make a user namespace (umlpy is not root)."""
        return os.stat(f"/proc/{self.pid}/ns/user").st_ino != os.stat("/proc/self/ns/user").st_ino

    def ns_fds(self) -> tuple:
        """(user namespace fd or -1, network namespace fd), for spawn to join."""
        net = os.open(f"/proc/{self.pid}/ns/net", os.O_RDONLY | os.O_CLOEXEC)
        if not self.needs_userns():
            return -1, net
        return os.open(f"/proc/{self.pid}/ns/user", os.O_RDONLY | os.O_CLOEXEC), net
