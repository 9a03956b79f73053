"""The network policy of an instance, from `umlpy run --net/--forward` or
the boot options `ethN=slirp` and `hostfwd=`."""
from __future__ import annotations

import re
from typing import List, Optional, Tuple

from umlpy.record import FrozenRecord, Record

MODES = ("none", "host")
PROTOS = ("tcp", "udp")


class NetError(ValueError):
    """A malformed network option: one line naming it."""


class Forward(FrozenRecord):
    __slots__ = _fields = ("proto", "host_addr", "host_port", "guest_port")
    proto: str              # "tcp" or "udp"
    host_addr: str          # where the kernel listens on the host
    host_port: int
    guest_port: int

    def __init__(self, proto: str, host_addr: str, host_port: int, guest_port: int) -> None:
        object.__setattr__(self, "proto", proto)
        object.__setattr__(self, "host_addr", host_addr)
        object.__setattr__(self, "host_port", host_port)
        object.__setattr__(self, "guest_port", guest_port)


class NetConfig(Record):
    __slots__ = _fields = ("mode", "forwards", "note")
    mode: str               # "none": a loopback of its own; "host": the host's stack
    forwards: List[Forward]
    note: str               # a boot log line about the choice made

    def __init__(self, mode: str = "host", forwards: Optional[List[Forward]] = None,
                 note: str = "") -> None:
        self.mode = mode
        self.forwards = [] if forwards is None else forwards    # a fresh list per config
        self.note = note

    def check(self) -> None:
        if self.mode not in MODES:
            raise NetError(f"--net={self.mode}: unknown mode (none or host)")
        if self.forwards and self.mode == "host":
            raise NetError("port forwarding needs --net=none: with --net=host the guest's "
                           "servers already listen on the host")
        seen = set()
        for f in self.forwards:
            if (f.proto, f.host_port) in seen:
                raise NetError(f"{f.proto} host port {f.host_port} is forwarded twice")
            seen.add((f.proto, f.host_port))


def _port(text: str, what: str) -> int:
    if not text.isdigit() or not 0 < int(text) < 65536:
        raise NetError(f"{what}: {text!r} is not a port number (1-65535)")
    return int(text)


def parse_forward(spec: str) -> Forward:
    """`tcp:8080:80`, `udp:5353:53`, `tcp:127.0.0.1:8080:80` (proto may be left out: tcp)."""
    parts = spec.split(":")
    proto = "tcp"
    if parts and parts[0] in PROTOS:
        proto = parts.pop(0)
    if len(parts) == 2:
        host_addr, host_port, guest_port = "127.0.0.1", parts[0], parts[1]
    elif len(parts) == 3:
        host_addr, host_port, guest_port = parts
    else:
        raise NetError(f"--forward {spec}: expected [tcp|udp:][HOSTADDR:]HOSTPORT:GUESTPORT")
    what = f"--forward {spec}"
    return Forward(proto, host_addr or "127.0.0.1", _port(host_port, what), _port(guest_port, what))


_HOSTFWD = re.compile(r"(tcp|udp):([^:]*):(\d+)-([^:]*):(\d+)\Z")


def parse_hostfwd(spec: str) -> List[Forward]:
    """qemu's `hostfwd=tcp:[HOSTADDR]:HOSTPORT-[GUESTADDR]:GUESTPORT`, several
    separated by commas."""
    out = []
    for one in spec.split(","):
        m = _HOSTFWD.match(one)
        if m is None:
            raise NetError(f"hostfwd={spec}: expected tcp|udp:[HOSTADDR]:HOSTPORT-[GUESTADDR]:"
                           "GUESTPORT")
        proto, haddr, hport, gaddr, gport = m.groups()
        if gaddr not in ("", "127.0.0.1", "10.0.2.15"):
            raise NetError(f"hostfwd={spec}: the guest address can only be its own")
        what = f"hostfwd={spec}"
        out.append(Forward(proto, haddr or "127.0.0.1", _port(hport, what), _port(gport, what)))
    return out


def boot_net(transports: List[Tuple[int, str]], hostfwd: List[Forward]) -> NetConfig:
    """A booted machine: no ethN= is a machine without a network (its own
    loopback); ethN=slirp reaches out through the host's stack as slirp does."""
    mode = "host" if any(t == "slirp" for _i, t in transports) else "none"
    cfg = NetConfig(mode, list(hostfwd))
    if hostfwd and mode == "host":
        # slirp with hostfwd: guest servers are on the host's stack already
        raise NetError("hostfwd= needs a machine without eth0=slirp (its own loopback): "
                       "with slirp the guest's servers already listen on the host")
    return cfg
