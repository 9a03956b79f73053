"""umlpy run by an ordinary host user: --net=none, forwarding and exec work
without root (the guest and the keeper of its exec images live in a user
namespace of one uid). Under root, the test drops to uid 65534 first."""
from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import time

import pytest

from guestroot import guest_env, kill_group, umlpy_run

NOBODY = 65534

SERVER_AND_CLIENT = r"""
import os, socket
print("uid", os.getuid())
s = socket.socket(); s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
s.bind(("127.0.0.1", 80)); s.listen()
c = socket.create_connection(("127.0.0.1", 80)); a, _ = s.accept()
c.sendall(b"ping"); print("got", a.recv(4).decode())
try:
    socket.create_connection(("192.0.2.1", 80), timeout=5)
except OSError as e:
    print("outside", e.errno)
"""


def _hidden_prefix() -> str | None:
    """The top directory above this Python that other users cannot enter
    (pyenv under /root), or None."""
    path = os.path.realpath(sys.prefix)
    parts = path.strip("/").split("/")
    for i in range(1, len(parts)):
        parent = "/" + "/".join(parts[:i])
        if not os.stat(parent).st_mode & 0o001:
            return parent + "/" + parts[i]
    return None


def as_ordinary_user(argv: list[str], tmp_path) -> list[str]:
    """argv as uid 65534 when we are root, with this Python reachable: a
    private mount namespace shows its hidden directory on a tmpfs."""
    if os.geteuid() != 0:
        return argv
    for tool in ("unshare", "setpriv"):
        if shutil.which(tool) is None:
            pytest.skip(f"{tool} missing (util-linux)")
    drop = ["setpriv", f"--reuid={NOBODY}", f"--regid={NOBODY}", "--clear-groups",
            "--inh-caps=-all", "--bounding-set=-all", "env", "HOME=/tmp", "TMPDIR=/tmp"]
    hidden = _hidden_prefix()
    if hidden is None:
        return drop + argv
    stage = tmp_path / "stage"
    stage.mkdir()
    parent = os.path.dirname(hidden)
    script = (f'mount --bind "{hidden}" "{stage}" && '
              f'mount -t tmpfs -o mode=0755 none "{parent}" && mkdir -p "{hidden}" && '
              f'mount --move "{stage}" "{hidden}" && exec "$@"')
    return ["unshare", "--mount", "--propagation", "private", "--", "sh", "-c", script,
            "sh"] + drop + argv


def test_net_none_without_root(tmp_path):
    cmd = as_ordinary_user(umlpy_run(["python3", "-c", SERVER_AND_CLIENT], ["--net=none"]),
                           tmp_path)
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=300, cwd="/",
                          env=guest_env())
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.split("\n")[:3] == ["uid 0", "got ping", "outside 101"], proc.stdout


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_forward_without_root(tmp_path):
    port = _free_port()
    server = ("import socket; s = socket.socket(); s.bind(('127.0.0.1', 80)); s.listen();"
              "a, _ = s.accept(); a.sendall(b'from the guest'); a.close()")
    cmd = as_ordinary_user(umlpy_run(["python3", "-c", server],
                                     ["--net=none", "--forward", f"tcp:{port}:80"]), tmp_path)
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, cwd="/",
                            env=guest_env(), start_new_session=True)
    try:
        got, deadline = b"", time.monotonic() + 120
        while not got and time.monotonic() < deadline:
            try:
                with socket.create_connection(("127.0.0.1", port), timeout=10) as c:
                    got = c.recv(64)
            except OSError:
                time.sleep(0.2)     # the guest is not listening yet
        assert got == b"from the guest"
        assert proc.wait(timeout=60) == 0, proc.stderr.read()
    finally:
        kill_group(proc)
