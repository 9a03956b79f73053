"""Escapes through sendmsg/sendmmsg with a destination address: a unix
datagram aimed at a host socket bound outside the guest's reach must fail
as connect fails (ECONNREFUSED) and deliver nothing -- also when another
thread rewrites msg_name while the call is under way. The same script run
natively delivers (the attack is real)."""
from __future__ import annotations

import socket
import subprocess
import sys

from guestroot import REPO, describe, guest_env, run_umlpy, umlpy_run
from hostcheck import ATTACKS

PROBE = str(REPO / "tests" / "net" / "sendmsg_escape.py")
PY = sys.executable if sys.executable.startswith("/usr/bin/") else "/usr/bin/python3"
ROUNDS = 300


def _drain(sock: socket.socket) -> list:
    got = []
    while True:
        try:
            got.append(sock.recv(100))
        except BlockingIOError:
            return got


def test_sendmsg_to_a_host_socket(host, tmp_path):
    path = str(tmp_path / "host.dgram")
    target = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    target.bind(path)
    target.setblocking(False)
    try:
        res = run_umlpy(umlpy_run([PY, PROBE, path, str(ROUNDS)]), timeout=120)
        ATTACKS["net"] += 2 + ROUNDS
        assert res.returncode == 0, describe(res)
        lines = res.stdout.splitlines()
        assert lines[:2] == ["sendmsg ECONNREFUSED", "sendmmsg ECONNREFUSED"], describe(res)
        assert lines[2].startswith("race ") and set(lines[2].split()[1:]) <= \
            {"sent", "ECONNREFUSED"}, describe(res)
        assert _drain(target) == [], "a guest datagram reached the host socket"
        native = subprocess.run([PY, PROBE, path, "50"], capture_output=True, text=True,
                                timeout=60, env=guest_env())
        assert native.stdout.splitlines()[:2] == ["sendmsg sent", "sendmmsg sent"], native.stderr
        got = _drain(target)
        assert b"escaped by sendmsg" in got and b"escaped by sendmmsg" in got
    finally:
        target.close()
