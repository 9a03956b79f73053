"""Unit tests of the network policy parsers, the unix-name table and
/proc/net/unix rewriting (no guest)."""
from __future__ import annotations

import errno
import socket
import struct

import pytest

from umlpy.fs.procfs_net import unix_text
from umlpy.net.policy import Forward, NetConfig, NetError, boot_net, parse_forward, parse_hostfwd
from umlpy.net.unixnames import UnixAddr, UnixNames, parse

FAM = struct.pack("<H", socket.AF_UNIX)


@pytest.mark.parametrize("spec, want", [
    ("tcp:8080:80", Forward("tcp", "127.0.0.1", 8080, 80)),
    ("8080:80", Forward("tcp", "127.0.0.1", 8080, 80)),
    ("udp:5353:53", Forward("udp", "127.0.0.1", 5353, 53)),
    ("tcp:0.0.0.0:8080:80", Forward("tcp", "0.0.0.0", 8080, 80)),
])
def test_parse_forward(spec, want):
    assert parse_forward(spec) == want


@pytest.mark.parametrize("spec", ["tcp:80", "tcp:x:80", "tcp:8080:0", "tcp:8080:70000", "sctp:1:2:3:4"])
def test_bad_forward(spec):
    with pytest.raises(NetError, match="forward"):
        parse_forward(spec)


def test_hostfwd_and_boot_policy():
    assert parse_hostfwd("tcp::8080-:80,udp:127.0.0.1:53-10.0.2.15:53") == [
        Forward("tcp", "127.0.0.1", 8080, 80), Forward("udp", "127.0.0.1", 53, 53)]
    with pytest.raises(NetError):
        parse_hostfwd("tcp::8080-192.168.1.1:80")
    assert boot_net([], []).mode == "none"
    assert boot_net([(0, "slirp")], []).mode == "host"
    with pytest.raises(NetError, match="hostfwd"):
        boot_net([(0, "slirp")], [Forward("tcp", "127.0.0.1", 1, 2)])
    with pytest.raises(NetError, match="needs --net=none"):
        NetConfig("host", [Forward("tcp", "127.0.0.1", 1, 2)]).check()


def test_sockaddr_un_as_linux_reads_it():
    assert parse(FAM + b"/tmp/x\0garbage", False) == UnixAddr("path", b"/tmp/x")
    assert parse(FAM + b"\0ab\0c", False) == UnixAddr("abstract", b"ab\0c")
    assert parse(FAM, True) == UnixAddr("autobind", b"")
    for bad, auto in ((FAM, False), (b"\x02\x00/x", False), (FAM + b"x" * 109, False), (b"", True)):
        with pytest.raises(OSError) as e:
            parse(bad, auto)
        assert e.value.errno == errno.EINVAL


def test_names_map_both_ways(tmp_path):
    names = UnixNames(str(tmp_path), "inst", private_abstract=False)
    host = names.new_host_path()
    names.bound_path((1, 2), 99, host, UnixAddr("path", b"/run/x.sock"))
    assert names.host_path((1, 2), 99) == host
    for key, stamp in (((1, 2), 98), ((1, 3), 99)):     # a reused inode number, another inode
        with pytest.raises(OSError) as e:
            names.host_path(key, stamp)
        assert e.value.errno == errno.ECONNREFUSED
    assert names.to_guest(FAM + host.encode() + b"\0") == FAM + b"/run/x.sock\0"
    hidden = names.bound_abstract(b"bus")
    assert hidden != b"bus" and b"inst" in hidden
    assert names.to_guest(FAM + b"\0" + hidden) == FAM + b"\0bus"
    assert names.to_guest(FAM + b"/elsewhere\0") == FAM + b"/elsewhere\0"
    assert UnixNames(str(tmp_path), "i", private_abstract=True).host_abstract(b"bus") == b"bus"


def test_proc_net_unix_shows_guest_names(tmp_path):
    names = UnixNames(str(tmp_path), "inst", private_abstract=False)
    host = names.new_host_path()
    names.bound_path((1, 2), 1, host, UnixAddr("path", b"/tmp/s"))
    head = "Num       RefCount Protocol Flags    Type St Inode Path\n"
    row = "0000000000000000: 00000002 00000000 00010000 0001 01 {} {}\n"
    raw = head + row.format(1, host) + row.format(2, "/run/host.sock") + \
        row.format(3, "@hostbus") + row.format(4, "").rstrip() + "\n"
    out = unix_text(raw, names, private=False)
    assert out.splitlines() == [head.strip(), row.format(1, "/tmp/s").strip(),
                                row.format(4, "").strip()]
    assert "@hostbus" in unix_text(raw, names, private=True)
