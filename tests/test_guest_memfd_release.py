"""Every tmpfs file holds one kernel descriptor (its memfd), and gives it
back when its last name goes: files the accelerator created (fastcreate.c,
adopted by the kernel afterwards) and removed (its unlink) included. The
kernel's open descriptors are counted from the host while the guest waits."""
from __future__ import annotations

import os
import subprocess

from guestroot import describe, guest_env, kill_group, umlpy_run

FILES = 1500
SCRIPT = r"""
import os, sys
os.mkdir("/dev/shm/many")
for i in range(%d):
    with open("/dev/shm/many/f%%05d" %% i, "w") as f:
        f.write("x")
print("made", flush=True)
sys.stdin.readline()
for i in range(%d):
    os.unlink("/dev/shm/many/f%%05d" %% i)
os.stat("/dev/shm/many")                # (a call the kernel handles: it adopts the unlinks)
print("gone", flush=True)
sys.stdin.readline()
""" % (FILES, FILES)


def _fds(pid: int) -> int:
    return len(os.listdir(f"/proc/{pid}/fd"))


def test_created_files_hold_one_memfd_each_until_unlinked():
    proc = subprocess.Popen(umlpy_run(["python3", "-c", SCRIPT], ["--counters"]),
                            stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, env=guest_env(), cwd="/",
                            start_new_session=True)
    try:
        assert proc.stdout.readline() == "made\n", describe(proc)
        made = _fds(proc.pid)
        proc.stdin.write("\n")
        proc.stdin.flush()
        assert proc.stdout.readline() == "gone\n", describe(proc)
        gone = _fds(proc.pid)
        proc.stdin.write("\n")
        proc.stdin.close()
        assert proc.wait(timeout=60) == 0
        counters = dict(kv.split("=") for kv in proc.stderr.read().split("umlpy: ")[-1].split())
        # most were made and removed in C: the test covers the adopted files
        assert int(counters["fast_creates"]) >= FILES * 9 // 10, counters
        assert int(counters["fast_unlinks"]) >= FILES * 9 // 10, counters
        assert made - gone >= FILES, (made, gone)
    finally:
        kill_group(proc)
