"""Guests that die in the middle of a slow call leave nothing behind in the
kernel: a FIFO open waits on a kernel worker thread, which must go when its
guest is killed (else a guest could pile up host threads at will)."""
from __future__ import annotations

import os
import subprocess
import time

from guestroot import describe, guest_env, kill_group, umlpy_run
from hostcheck import ATTACKS

OPENERS = 20
SCRIPT = r"""
import os, sys, time
os.mkfifo("/tmp/leak.fifo")
kids = []
for i in range(%d):
    pid = os.fork()
    if pid == 0:
        open("/tmp/leak.fifo", "rb")    # waits for a writer, which never comes
        os._exit(0)
    kids.append(pid)
time.sleep(1)
print("waiting", flush=True)
sys.stdin.readline()                    # the host counts the kernel's threads now
for pid in kids:
    os.kill(pid, 9)
for pid in kids:
    os.waitpid(pid, 0)
print("killed", flush=True)
sys.stdin.readline()                    # ... and again
""" % OPENERS


def _threads(pid: int) -> int:
    return len(os.listdir(f"/proc/{pid}/task"))


def test_killed_fifo_openers_free_their_kernel_threads(host):
    proc = subprocess.Popen(umlpy_run(["python3", "-c", SCRIPT]), stdin=subprocess.PIPE,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            env=guest_env(), cwd="/", start_new_session=True)
    try:
        assert proc.stdout.readline() == "waiting\n", describe(proc)
        busy = _threads(proc.pid)
        assert busy >= OPENERS      # one worker per waiting open: the test is real
        proc.stdin.write("\n")
        proc.stdin.flush()
        assert proc.stdout.readline() == "killed\n"
        deadline = time.monotonic() + 10
        while _threads(proc.pid) > busy - OPENERS and time.monotonic() < deadline:
            time.sleep(0.1)
        ATTACKS["resources"] += 1
        assert _threads(proc.pid) <= busy - OPENERS, (busy, _threads(proc.pid))
        proc.stdin.write("\n")
        proc.stdin.close()
        assert proc.wait(timeout=60) == 0, proc.stderr.read()
    finally:
        kill_group(proc)
