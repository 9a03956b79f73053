"""A guest holds no host capabilities, whatever umlpy runs as: guest root is
the kernel's idea, and what a guest runs natively runs unprivileged. Checked
from the host (/proc/PID/status of the guest and of the keeper of its exec
images) and from inside (privileged native calls fail)."""
from __future__ import annotations

import subprocess

import psutil

from guestroot import guest_env, kill_group, named, umlpy_run, wait_for_descendants
from hostcheck import ATTACKS

CAP_LINES = ("CapInh", "CapPrm", "CapEff", "CapBnd", "CapAmb")


def _status(pid: int) -> dict:
    with open(f"/proc/{pid}/status") as f:
        return dict(line.rstrip("\n").split(":\t", 1) for line in f if ":\t" in line)


def _descendant(proc: subprocess.Popen, name: str) -> psutil.Process:
    found = wait_for_descendants(proc.pid, lambda ps: named(ps, name), name)
    return named(found, name)[0]


def test_guest_and_keeper_hold_no_capabilities(host):
    proc = subprocess.Popen(umlpy_run(["/bin/sh", "-c", "exec sleep 30"]), cwd="/",
                            env=guest_env(), start_new_session=True,
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        for name in ("umlpy-keeper", "sleep"):
            sleeper = _descendant(proc, name)
            st = _status(sleeper.pid)
            for line in CAP_LINES:
                assert int(st[line], 16) == 0, (name, line, st[line])
        assert st["NoNewPrivs"].strip() == "1"
        sleeper.kill()          # the guest ends; its kernel with it
        assert proc.wait(timeout=60) == 128 + 9
    finally:
        kill_group(proc)


PRIVILEGED = r"""
import ctypes, errno, os, socket
libc = ctypes.CDLL(None, use_errno=True)
def try_(what, fn):
    try:
        fn(); print(what, "allowed")
    except OSError as e:
        print(what, errno.errorcode[e.errno])
def raw(family, kind, proto):
    return lambda: socket.socket(family, kind, proto).close()
try_("packet", raw(socket.AF_PACKET, socket.SOCK_RAW, 0))
try_("raw-icmp", raw(socket.AF_INET, socket.SOCK_RAW, socket.IPPROTO_ICMP))
def setrlimit_up():
    import resource
    _soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    lim = (ctypes.c_ulong * 2)(hard + 1, hard + 1)
    if libc.setrlimit(resource.RLIMIT_NOFILE, lim) != 0:
        raise OSError(ctypes.get_errno(), "setrlimit")
try_("rlimit-above-hard", setrlimit_up)
def sched_fifo():
    os.sched_setscheduler(0, os.SCHED_FIFO, os.sched_param(1))
try_("sched-fifo", sched_fifo)
"""


def test_privileged_native_calls_fail(host):
    proc = subprocess.run(umlpy_run(["python3", "-c", PRIVILEGED]), cwd="/", env=guest_env(),
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    got = dict(line.split() for line in proc.stdout.splitlines())
    ATTACKS["capabilities"] += len(got)
    assert got == {"packet": "EPERM", "raw-icmp": "EPERM", "rlimit-above-hard": "EPERM",
                   "sched-fifo": "EPERM"}, proc.stdout
