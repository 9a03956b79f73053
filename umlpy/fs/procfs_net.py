"""/proc/net: the network as the guest's own tasks see it.

The host's /proc/<host pid>/net/* of a guest task is already the view of its
network namespace (with --net=none: the guest's own loopback and sockets).
Unix socket paths are shown as the guest named them; with the host's network,
sockets bound by others on the host are left out.
"""
from __future__ import annotations

from umlpy.fs.synthetic import StaticDir, read_text
from umlpy.host import procinfo

NET_FILES = ("dev", "tcp", "tcp6", "udp", "udp6", "raw", "raw6", "route", "if_inet6",
             "igmp", "igmp6", "arp", "netstat", "snmp", "snmp6", "sockstat", "sockstat6",
             "packet", "netlink", "protocols")


def _reader_tid(kernel) -> int:
    cur = kernel.current
    if cur is not None:
        return cur.host_tid
    if kernel.init is not None:
        return kernel.init.host_tgid
    raise OSError(2, "no guest task")


def _host_net(kernel, name: str) -> str:
    return read_text(lambda: procinfo.read_proc_file(_reader_tid(kernel), "net/" + name))


def unix_text(raw: str, names, private: bool) -> str:
    """/proc/net/unix with the instance's names; foreign named sockets dropped
    unless the namespace is the guest's own. `names`: a UnixNames or None."""
    lines = raw.splitlines(keepends=True)
    out = lines[:1]
    for line in lines[1:]:
        fields = line.rstrip("\n").split(" ", 7)
        if len(fields) < 8 or not fields[7]:
            out.append(line)
            continue
        shown = fields[7]
        raw_name = ("\0" + shown[1:]).encode() if shown.startswith("@") else shown.encode()
        guest = names.guest_sun_path(raw_name) if names is not None else None
        if guest is not None:
            text = guest.decode(errors="replace")
            out.append(" ".join(fields[:7]) + " " + ("@" + text[1:] if text[:1] == "\0"
                                                     else text) + "\n")
        elif private and shown.startswith("@"):
            out.append(line)
    return "".join(out)


def add_net(fs, root: StaticDir) -> None:
    """Register /proc/net in the procfs tree `root`."""
    k = fs.kernel
    d = root.add_dir("net")
    for name in NET_FILES:
        d.add_file(name, lambda n=name: _host_net(k, n))

    def gen_unix() -> str:
        net = getattr(k, "net", None)
        return unix_text(_host_net(k, "unix"), net.unix if net is not None else None,
                         bool(net is not None and net.isolated))
    d.add_file("unix", gen_unix)
