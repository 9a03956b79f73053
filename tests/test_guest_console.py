"""The console as a terminal: an interactive session through a pty (prompt,
^C, ^Z and fg, poweroff), and a shell on a telnet port line (con1=port:N)."""
from __future__ import annotations

import socket
import subprocess
import sys
import time

import pytest

from guestroot import UMLPY_MAIN, describe, guest_env, named, wait_for_descendants

pexpect = pytest.importorskip("pexpect", reason="pexpect missing (pip install -e '.[test]')")

PROMPT = r"[#$] "


def _wait_for_guest_sleep(umlpy_pid: int) -> None:
    """Until a guest `sleep` runs under umlpy: a ^C or ^Z sent while the shell
    is still forking it would reach the shell instead (a loaded machine)."""
    wait_for_descendants(umlpy_pid, lambda ps: named(ps, "sleep"), "the guest's sleep", 30)
    time.sleep(0.1)


def test_an_interactive_session_on_the_console(fresh_busybox_root):
    child = pexpect.spawn(sys.executable, ["-c", UMLPY_MAIN, "root=/dev/root", "rootfstype=hostfs",
                                           f"rootflags={fresh_busybox_root}", "init=/bin/sh",
                                           "quiet"],
                          env=guest_env(), timeout=20, encoding="utf-8")
    try:
        child.expect(PROMPT)
        child.sendline("echo $((6*7)); ls /")
        child.expect("42")
        child.expect("proc")
        child.expect(PROMPT)
        child.sendline("sleep 100")
        _wait_for_guest_sleep(child.pid)        # in the foreground now, not still forking
        child.sendcontrol("c")                  # the guest's line discipline: SIGINT
        child.expect(PROMPT, timeout=5)
        child.sendline("sh -c 'sleep 2; echo resumed-done'")
        _wait_for_guest_sleep(child.pid)
        child.sendcontrol("z")
        child.expect("Stopped")
        child.expect(PROMPT)
        child.sendline("fg")
        child.expect("resumed-done", timeout=10)
        child.expect(PROMPT)
        child.sendline("poweroff -f")
        child.expect(pexpect.EOF)
    finally:
        child.close(force=True)
    assert child.exitstatus == 0


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_a_telnet_client_gets_a_shell_on_a_port_line(fresh_busybox_root):
    port = _free_port()
    proc = subprocess.Popen([sys.executable, "-c", UMLPY_MAIN, "root=/dev/root", "rootfstype=hostfs",
                             f"rootflags={fresh_busybox_root}", "init=/bin/sh", "quiet",
                             f"con1=port:{port}"],
                            stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True, env=guest_env(), start_new_session=True)
    proc.stdin.write("setsid sh -c 'exec sh -i </dev/tty1 >/dev/tty1 2>&1' &\n"
                     "read line; poweroff -f\n")
    proc.stdin.flush()
    try:
        for _ in range(100):
            try:
                conn = socket.create_connection(("127.0.0.1", port), timeout=10)
                break
            except OSError:
                time.sleep(0.1)
        else:
            pytest.fail("no telnet server on the port line")
        conn.sendall(b"echo $((2+3))x\r\n")
        got = b""
        deadline = time.time() + 10
        while b"5x" not in got and time.time() < deadline:
            got += conn.recv(4096)
        conn.close()
        assert got.startswith(bytes((255, 251, 1))), got[:20]     # IAC WILL ECHO first
        assert b"\r\n5x\r\n" in got, got
    finally:
        proc.stdin.write("done\n")
        proc.stdin.close()
        proc.stdin = None
        out, err = proc.communicate(timeout=30)
    assert proc.returncode == 0, describe(subprocess.CompletedProcess(proc.args, proc.returncode,
                                                                      out, err))
