"""Giving a kernel its network before its first process starts."""
from __future__ import annotations

import os

from umlpy.net.policy import NetConfig, NetError
from umlpy.net.stack import NetStack


def attach(kernel, config: NetConfig) -> NetStack:
    """Check the policy, make the namespace and the forwards, and arrange for
    the first guest process to join. Raises NetError with one line."""
    config.check()
    net = kernel.net = NetStack(kernel.vfs, config)
    if config.note:
        kernel.kmsg.printk(config.note)
    if not net.isolated:
        return net
    from umlpy.host.netns import NetAgent, NetnsError
    from umlpy.net.forward import Forwarder
    try:
        net.agent = NetAgent()
    except NetnsError as e:
        raise NetError(f"--net=none: {e.strerror}") from None
    # The agent is as unprivileged as the guests, in their namespaces: it
    # holds their exec images too.
    kernel.keeper = net.agent
    for rule in config.forwards:
        try:
            net.forwarders.append(Forwarder(rule, net.agent))
        except OSError as e:
            net.close()
            raise NetError(f"forward {rule.proto}:{rule.host_port}:{rule.guest_port}: cannot "
                           f"listen on {rule.host_addr}:{rule.host_port}: {e.strerror}") from None
    kernel.tracer.spawn_namespaces = net.spawn_namespaces()
    return net


def started(kernel) -> None:
    """After the first process is running: the namespace fds were for it."""
    fds = kernel.tracer.spawn_namespaces
    kernel.tracer.spawn_namespaces = (-1, -1)
    for fd in fds:
        if fd >= 0:
            os.close(fd)


def config_from_run(mode: str, forwards) -> NetConfig:
    """`umlpy run --net=MODE --forward SPEC...` (NetError if malformed)."""
    from umlpy.net.policy import parse_forward
    cfg = NetConfig(mode, [parse_forward(f) for f in forwards or ()])
    cfg.check()
    return cfg


def detach(kernel) -> None:
    """At exit: stop forwarding and the namespace agent."""
    started(kernel)
    net = getattr(kernel, "net", None)
    if net is not None:
        net.close()


def config_from_boot(config) -> NetConfig:
    """The machine's network from its boot options (a BootConfig)."""
    from umlpy.net.policy import boot_net, parse_hostfwd
    transports = sorted((i, config.net_transport(i)) for i in config.net)
    for i, t in transports:
        if t != "slirp":
            raise NetError(f"eth{i}={config.net[i]}: only the slirp transport is supported "
                           "(the host's network, outbound)")
    forwards = [f for spec in config.hostfwd for f in parse_hostfwd(spec)]
    cfg = boot_net(transports, forwards)
    cfg.check()
    return cfg
