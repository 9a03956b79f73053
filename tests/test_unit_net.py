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


# ---- msghdr, control messages, credentials (umlpy.net.msghdr, ucred, unixdiag) ----
def test_msghdr_checked_as_linux_does():
    from umlpy.net.msghdr import MSGHDR, parse_msghdr
    h = parse_msghdr(MSGHDR.pack(0, 50, 0x1000, 2, 0, 0, 0))
    assert h.namelen == 0                       # no name pointer: no name
    assert parse_msghdr(MSGHDR.pack(8, 500, 0, 0, 0, 0, 0)).namelen == 128   # clamped
    for raw, err in ((MSGHDR.pack(8, 0x80000000, 0, 0, 0, 0, 0), errno.EINVAL),
                     (MSGHDR.pack(0, 0, 8, 1025, 0, 0, 0), errno.EMSGSIZE),
                     (MSGHDR.pack(0, 0, 0, 0, 8, 1 << 31, 0), errno.ENOBUFS)):
        with pytest.raises(OSError) as e:
            parse_msghdr(raw)
        assert e.value.errno == err


def test_iovec_total_may_not_overflow():
    from umlpy.net.msghdr import IOVEC, iov_spans
    assert iov_spans(IOVEC.pack(1, 2) + IOVEC.pack(3, 4)) == [(1, 2), (3, 4)]
    with pytest.raises(OSError) as e:
        iov_spans(IOVEC.pack(1, 1 << 62) + IOVEC.pack(3, 1 << 62))
    assert e.value.errno == errno.EINVAL


def test_control_messages_round_trip_and_malformed():
    from umlpy.net.msghdr import CMSGHDR, creds_offsets, pack_cmsgs, parse_cmsgs
    msgs = [(socket.SOL_SOCKET, 1, struct.pack("<3i", 4, 5, 6)),
            (socket.SOL_SOCKET, 2, struct.pack("<iII", 7, 8, 9))]
    raw = pack_cmsgs(msgs)
    assert len(raw) == 32 + 32 and parse_cmsgs(raw) == msgs
    assert creds_offsets(raw) == [32 + 16]
    assert creds_offsets(raw[:40]) == []        # a truncated message is no message
    for bad in (CMSGHDR.pack(8, 1, 1), CMSGHDR.pack(64, 1, 1) + bytes(8)):
        with pytest.raises(OSError) as e:
            parse_cmsgs(bad)
        assert e.value.errno == errno.EINVAL


def test_scm_credentials_claims():
    from umlpy.kernel.task import Creds
    from umlpy.net.ucred import Ucred, check_claim
    user = Creds(ruid=1000, euid=1001, suid=1002, rgid=100, egid=101, sgid=102)
    alive = {7, 8}.__contains__
    for uid, gid in ((1000, 100), (1001, 101), (1002, 102)):
        check_claim(user, 7, Ucred(7, uid, gid), alive)
    for claim in (Ucred(8, 1000, 100), Ucred(7, 0, 100), Ucred(7, 1000, 0)):
        with pytest.raises(OSError) as e:
            check_claim(user, 7, claim, alive)
        assert e.value.errno == errno.EPERM
    root = Creds()
    check_claim(root, 7, Ucred(8, 5, 6), alive)             # guest root claims anything
    for claim, err in ((Ucred(9, 5, 6), errno.ESRCH), (Ucred(8, 0xFFFFFFFF, 6), errno.EINVAL)):
        with pytest.raises(OSError) as e:
            check_claim(root, 7, claim, alive)
        assert e.value.errno == err


def test_host_ucred_as_the_guest_sees_it():
    import os
    from types import SimpleNamespace
    from umlpy.kernel.task import Creds, PidNamespace
    from umlpy.net.ucred import OVERFLOW_ID, Ledger, Ucred, to_guest
    pids = PidNamespace()
    guest_pid = pids.alloc(4242)
    group = SimpleNamespace(tgid=guest_pid, threads={})
    task = SimpleNamespace(group=group, creds=Creds(ruid=5, euid=6, rgid=7, egid=8))
    pids.tasks[4242] = task
    kernel = SimpleNamespace(pids=pids)
    ledger = Ledger()
    ledger.record(("ino", 99), Ucred(3, 4, 5))
    assert to_guest(kernel, ledger, Ucred(4242, 1000, 1000), True, list) == Ucred(guest_pid, 6, 8)
    assert to_guest(kernel, ledger, Ucred(4242, 1000, 1000), False, list) == Ucred(guest_pid, 5, 7)
    me = os.getpid()                            # the kernel sent: the ledger knows for whom
    assert to_guest(kernel, ledger, Ucred(me, 0, 0), True, lambda: [("ino", 99)]) == Ucred(3, 4, 5)
    assert to_guest(kernel, ledger, Ucred(me, 0, 0), True, list).pid == 0
    assert to_guest(kernel, ledger, Ucred(1, 0, 0), True, list) == Ucred(0, OVERFLOW_ID,
                                                                         OVERFLOW_ID)
    assert to_guest(kernel, ledger, Ucred(0, 0xFFFFFFFF, 0xFFFFFFFF), True, list) == \
        Ucred(0, 0xFFFFFFFF, 0xFFFFFFFF)        # not connected


def test_ledger_forgets_the_oldest():
    from umlpy.net import ucred
    ledger = ucred.Ledger()
    for i in range(ucred.LEDGER_MAX + 1):
        ledger.record(i, ucred.Ucred(i, 0, 0))
    assert ledger.get(0) is None and ledger.get(1).pid == 1


def test_sock_diag_peer():
    import os
    from umlpy.net import unixdiag
    assert unixdiag.parse_peer(b"") is None
    a, b = socket.socketpair()
    with a, b:
        assert unixdiag.peer_inode(a.fileno()) == os.fstat(b.fileno()).st_ino
    lone = socket.socket(socket.AF_UNIX)
    with lone:
        assert unixdiag.peer_inode(lone.fileno()) is None
