"""The network of one instance: its policy, its unix-socket names, its
namespace agent and port forwards."""
from __future__ import annotations

import os
from typing import List, Optional

from umlpy.net.policy import NetConfig
from umlpy.net.ucred import Ledger
from umlpy.net.unixnames import UnixNames


class NetStack:
    def __init__(self, vfs, config: Optional[NetConfig] = None) -> None:
        self.config = config or NetConfig()
        self.isolated = self.config.mode == "none"
        tag = os.path.basename(vfs.scratch)
        self.unix = UnixNames(vfs.scratch_dir("net"), tag, private_abstract=self.isolated)
        self.ledger = Ledger()      # guest credentials of the kernel's own connects and sends
        self.agent = None           # umlpy.net.agent.NetAgent under --net=none
        self.forwarders: List = []

    def spawn_namespaces(self) -> tuple:
        """(userns fd, netns fd) for the first guest process to join, or (-1, -1)."""
        if self.agent is None:
            return -1, -1
        return self.agent.ns_fds()

    def close(self) -> None:
        for f in self.forwarders:
            f.close()
        self.forwarders.clear()
        if self.agent is not None:
            self.agent.close()
            self.agent = None


def net_of(kernel) -> NetStack:
    """The kernel's network; a kernel built without one shares the host's stack."""
    net = getattr(kernel, "net", None)
    if net is None:
        net = kernel.net = NetStack(kernel.vfs)
    return net
