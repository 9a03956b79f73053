"""Networking in the guest: unix sockets in the guest's file systems, the
sandbox around host sockets, --net=none's own loopback and port forwarding.

Guests are the host's python3 under `umlpy run` (the host's / read-only
under a tmpfs), compared with the same script run natively."""
from __future__ import annotations

import glob
import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

from guestroot import REPO, describe, guest_env, kill_group, run_umlpy, umlpy_run

DEMO = str(REPO / "tests" / "net" / "unix_demo.py")
PY = sys.executable if sys.executable.startswith("/usr/bin/") else "/usr/bin/python3"


def guest(code: str, *args: str, options=(), timeout: float = 60) -> subprocess.CompletedProcess:
    return run_umlpy(umlpy_run([PY, "-c", code, *args], options), timeout=timeout)


def test_unix_server_and_client_as_native(tmp_path):
    """Stream and datagram sockets on paths, SCM_RIGHTS, abstract names,
    autobind, credentials, peer names, sendmsg with an address and the
    errnos: the guest prints what Linux prints."""
    env = guest_env()
    native = subprocess.run([PY, DEMO, str(tmp_path)], capture_output=True, text=True,
                            timeout=60, env=env)
    assert native.returncode == 0, native.stderr
    res = run_umlpy(umlpy_run([PY, DEMO]), timeout=90, env=env)
    assert res.returncode == 0, describe(res)
    assert res.stdout == native.stdout, describe(res)
    assert "server got b'fd follows' 1 b'through the passed fd'" in res.stdout


def test_bound_path_is_a_socket():
    """CPython's test_pathlib/test_stat case: bind, then is_socket()."""
    res = guest("import socket, pathlib; s = socket.socket(socket.AF_UNIX); s.bind('/tmp/umlpy-x');"
                "print(pathlib.Path('/tmp/umlpy-x').is_socket(), s.getsockname())")
    assert res.stdout == "True /tmp/umlpy-x\n", describe(res)


def test_relative_path_and_getsockname_as_given():
    res = guest("import os, socket; os.chdir('/tmp'); s = socket.socket(socket.AF_UNIX);"
                "s.bind('rel.sock'); s.listen(); c = socket.socket(socket.AF_UNIX);"
                "c.connect('/tmp/rel.sock'); print(s.getsockname(), c.getpeername())")
    assert res.stdout == "rel.sock rel.sock\n", describe(res)


ESCAPE = r"""
import errno, socket, sys
path, dgram, abstract = sys.argv[1:4]
abstract = "\0" + abstract
def attempt(fn):
    try:
        fn()
        return "connected"
    except OSError as e:
        return errno.errorcode[e.errno]
print("stream", attempt(lambda: socket.socket(socket.AF_UNIX).connect(path)))
print("dgram", attempt(lambda: socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
                       .sendto(b"escaped", dgram)))
print("abstract", attempt(lambda: socket.socket(socket.AF_UNIX).connect(abstract)))
"""


def test_host_sockets_are_out_of_reach(tmp_path):
    """The guest sees the host's socket files (its / is the host's, read-only)
    but none of them connects: only sockets the instance bound do."""
    stream = socket.socket(socket.AF_UNIX)
    stream.bind(str(tmp_path / "host.sock"))
    stream.listen()
    stream.setblocking(False)
    dgram = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    dgram.bind(str(tmp_path / "host.dgram"))
    dgram.setblocking(False)
    abstract = f"umlpy-test-host-{os.getpid()}"
    ab = socket.socket(socket.AF_UNIX)
    ab.bind("\0" + abstract)
    ab.listen()
    ab.setblocking(False)
    try:
        res = guest(ESCAPE, str(tmp_path / "host.sock"), str(tmp_path / "host.dgram"), abstract)
        assert res.stdout.split("\n") == ["stream ECONNREFUSED", "dgram ECONNREFUSED",
                                          "abstract ECONNREFUSED", ""], describe(res)
        for s in (stream, ab):
            with pytest.raises(BlockingIOError):
                s.accept()
        with pytest.raises(BlockingIOError):
            dgram.recv(100)
        # natively, the same script reaches all three (the test is not vacuous)
        native = subprocess.run([PY, "-c", ESCAPE, str(tmp_path / "host.sock"),
                                 str(tmp_path / "host.dgram"), abstract],
                                capture_output=True, text=True, timeout=30)
        assert native.stdout.split("\n")[:3] == ["stream connected", "dgram connected",
                                                 "abstract connected"], native.stderr
    finally:
        for s in (stream, dgram, ab):
            s.close()


PRIVATE = r"""
import errno, socket, sys
s = socket.socket(socket.AF_UNIX)
s.bind("/tmp/mine.sock")
s.listen()
print("bound", flush=True)
host_path = sys.stdin.readline().strip()
try:
    socket.socket(socket.AF_UNIX).connect(host_path)
    print("connected")
except OSError as e:
    print(errno.errorcode[e.errno])
"""


def test_private_directory_is_out_of_reach():
    """The host path standing for a guest socket is not a guest path."""
    proc = subprocess.Popen(umlpy_run([PY, "-c", PRIVATE]), stdin=subprocess.PIPE,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            env=guest_env(), start_new_session=True)
    try:
        assert proc.stdout.readline() == "bound\n"
        mine = glob.glob(f"/dev/shm/umlpy-vfs-{proc.pid}-*/net/s*") \
            + glob.glob(f"/tmp/umlpy-vfs-{proc.pid}-*/net/s*")
        assert len(mine) == 1, mine
        probe = socket.socket(socket.AF_UNIX)
        probe.connect(mine[0])          # the host can: it is a live socket
        probe.close()
        out, err = proc.communicate(mine[0] + "\n", timeout=60)
        assert out == "ENOENT\n", err
    finally:
        kill_group(proc)


# ---- --net=none: a loopback of the instance's own ----
# (run as a normal user too: tests/test_guest_unprivileged.py)

NONE_PROBE = r"""
import errno, os, socket
def attempt(addr):
    try:
        socket.socket().connect(addr)
        return "connected"
    except OSError as e:
        return errno.errorcode[e.errno]
print("outside", attempt(("192.0.2.1", 80)))
s = socket.socket()
s.bind(("127.0.0.1", 80))
s.listen()
print("self", attempt(("127.0.0.1", 80)))
if os.getuid() == 0 and os.fork() == 0:
    os.setuid(1000)
    try:
        socket.socket().bind(("127.0.0.1", 81))
        print("user binds 81")
    except OSError as e:
        print("user", errno.errorcode[e.errno])
    os._exit(0)
os.wait()
"""


def test_net_none_has_its_own_loopback():
    """Port 80 for guest root, not for a guest user; a host address has no
    route: the errnos of a Linux machine with only lo (unshare -n)."""
    native = subprocess.run(["unshare", "-n", "sh", "-c", f"ip link set lo up && {PY} -c '{NONE_PROBE}'"],
                            capture_output=True, text=True, timeout=30)
    assert native.returncode == 0, native.stderr
    res = guest(NONE_PROBE, options=["--net=none"])
    assert res.stdout == native.stdout, describe(res)
    assert res.stdout.startswith("outside ENETUNREACH\nself connected\nuser EACCES"), describe(res)


SERVE = r"""
import socket, sys
s = socket.socket()
s.bind(("127.0.0.1", int(sys.argv[1])))
s.listen()
a = socket.socket(socket.AF_UNIX)
a.bind("\0umlpy-isolation-test")
a.listen()
print("listening", flush=True)
sys.stdin.readline()
"""


def _background(argv, options):
    proc = subprocess.Popen(umlpy_run(argv, options), stdin=subprocess.PIPE,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            env=guest_env(), start_new_session=True)
    return proc


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_two_instances_never_see_each_other():
    port = _free_port()
    a = _background([PY, "-c", SERVE, str(port)], ["--net=none"])
    try:
        line = a.stdout.readline()
        assert line == "listening\n", line
        probe = ("import errno, socket\n"
                 "for addr, fam in (((\"127.0.0.1\", %d), socket.AF_INET),"
                 " (\"\\0umlpy-isolation-test\", socket.AF_UNIX)):\n"
                 "    try:\n        socket.socket(fam).connect(addr); print('connected')\n"
                 "    except OSError as e:\n        print(errno.errorcode[e.errno])\n" % port)
        b = guest(probe, options=["--net=none"])
        assert b.stdout == "ECONNREFUSED\nECONNREFUSED\n", describe(b)
        with pytest.raises(ConnectionRefusedError):   # nor from the host
            socket.create_connection(("127.0.0.1", port), timeout=5)
    finally:
        kill_group(a)
        a.communicate()


HTTP = r"""
import os, subprocess, sys, time, urllib.request
os.makedirs("/tmp/www", exist_ok=True)
with open("/tmp/www/hello.txt", "w") as f:
    f.write("hello from the guest\n")
srv = subprocess.Popen([sys.executable, "-m", "http.server", "80", "--bind", "127.0.0.1",
                        "--directory", "/tmp/www"], stdout=subprocess.DEVNULL,
                       stderr=subprocess.DEVNULL)
for _ in range(100):
    try:
        body = urllib.request.urlopen("http://127.0.0.1:80/hello.txt", timeout=5).read()
        break
    except OSError:
        time.sleep(0.1)
print("inside", body.decode().strip(), flush=True)
sys.stdin.readline()
srv.kill()
"""


def test_http_server_reachable_through_a_forwarded_port_only():
    port = _free_port()
    proc = _background([PY, "-c", HTTP], ["--net=none", "--forward", f"tcp:{port}:80"])
    try:
        line = proc.stdout.readline()
        assert line == "inside hello from the guest\n", line
        import urllib.request
        body = urllib.request.urlopen(f"http://127.0.0.1:{port}/hello.txt", timeout=10).read()
        assert body == b"hello from the guest\n"
        # the guest's port 80 is its own, not the host's
        with socket.socket() as s:
            assert s.connect_ex(("127.0.0.1", 80)) != 0 or _host_serves_80()
    finally:
        kill_group(proc)
        proc.communicate()


def _host_serves_80() -> bool:
    """Something of the host's own on port 80 (then the check above proves nothing)."""
    return os.path.exists("/proc/net/tcp") and ":0050 " in open("/proc/net/tcp").read()


def test_forward_needs_net_none():
    res = run_umlpy(umlpy_run(["true"], ["--forward", "tcp:8080:80"]), timeout=30)
    assert res.returncode == 2
    assert res.stderr.strip().count("\n") == 0 and "needs --net=none" in res.stderr, res.stderr


def test_bad_forward_is_one_line():
    res = run_umlpy(umlpy_run(["true"], ["--net=none", "--forward", "tcp:80"]), timeout=30)
    assert res.returncode == 2 and "--forward tcp:80" in res.stderr, res.stderr


# ---- a booted machine: no eth0 is its own loopback; eth0=slirp the host's ----
def _boot(root, script: str, *extra: str):
    from guestroot import umlpy_boot
    opts = ["root=/dev/root", "rootfstype=hostfs", f"rootflags={root}", "init=/bin/sh",
            "quiet", *extra]
    return run_umlpy(umlpy_boot(opts), input=script, timeout=60, cwd=str(root))


def test_boot_network_follows_eth0(busybox_root):
    """A host server on 127.0.0.1: out of reach of a machine without eth0,
    reachable with eth0=slirp (busybox nc in the guest)."""
    srv = socket.socket()
    srv.bind(("127.0.0.1", 0))
    srv.listen()
    srv.settimeout(20)
    port = srv.getsockname()[1]
    script = f"echo hi | nc 127.0.0.1 {port} && echo sent || echo refused\npoweroff -f\n"
    got = []

    def serve_one():
        conn, _ = srv.accept()
        got.append(conn.recv(10))
        conn.close()
    import threading
    try:
        alone = _boot(busybox_root, script)
        assert "refused" in alone.stdout, describe(alone)
        t = threading.Thread(target=serve_one)
        t.start()
        slirp = _boot(busybox_root, script, "eth0=slirp")
        t.join(20)
        assert "sent" in slirp.stdout, describe(slirp)
        assert got == [b"hi\n"]
    finally:
        srv.close()


def test_boot_refuses_unsupported_transport(busybox_root):
    res = _boot(busybox_root, "poweroff -f\n", "eth0=tuntap,,,10.0.0.1")
    assert res.returncode != 0 and "only the slirp transport" in res.stderr, describe(res)


def test_boot_refuses_hostfwd_with_slirp(busybox_root):
    res = _boot(busybox_root, "poweroff -f\n", "eth0=slirp", "hostfwd=tcp::8080-:80")
    assert res.returncode != 0 and "hostfwd= needs" in res.stderr, describe(res)
