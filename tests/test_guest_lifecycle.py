"""How guests end: death by signal, and the kernel's own death taking every guest with it."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import time

import psutil
import pytest

from guestroot import (describe, guest_env, kill_group, run_guest, run_umlpy, umlpy_command,
                       umlpy_run)


@pytest.mark.parametrize("sig, message", [(signal.SIGKILL, "Killed"),
                                          (signal.SIGSEGV, "Segmentation fault")])
def test_guest_killed_by_signal(busybox_root, sig, message):
    """The first guest process kills itself (umlpy's contract: exit 128+n and the shell's
    message; unlike a pid namespace's init, guest pid 1 is not protected from itself)."""
    script = f"echo before; kill -{int(sig)} $$; echo after"
    res = run_guest(busybox_root, ["/bin/sh", "-c", script])
    assert res.returncode == 128 + sig, describe(res)
    assert res.stdout == "before\n", describe(res)
    assert message in res.stderr, describe(res)


def test_guest_segfault(busybox_root, static_tools, tmp_path):
    """A real fault (a store to address 0), not a kill(2)."""
    shutil.copy2(static_tools / "segv", busybox_root / "tmp" / "segv")
    res = run_guest(busybox_root, ["/tmp/segv"])
    assert res.returncode == 128 + signal.SIGSEGV, describe(res)
    assert "Segmentation fault" in res.stderr, describe(res)


def test_guest_exit_codes(busybox_root):
    for code in (0, 1, 2, 126, 255):
        res = run_guest(busybox_root, ["/bin/sh", "-c", f"exit {code}"])
        assert res.returncode == code, describe(res)
        assert res.stderr == "", describe(res)


def _alive(proc: psutil.Process) -> bool:
    """Alive and the very same process (not a reused pid); zombies count as dead."""
    try:
        return proc.is_running() and proc.status() != psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return False


def _cmdline(proc: psutil.Process) -> list[str]:
    try:
        return proc.cmdline()
    except psutil.Error:
        return []


def test_kill_9_of_umlpy_kills_every_guest(busybox_root):
    cmd = umlpy_command(busybox_root, ["/bin/sh", "-c", "sleep 1000 & sleep 1000 & wait"])
    proc = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                            stderr=subprocess.PIPE, env=guest_env(), cwd=str(busybox_root),
                            start_new_session=True)
    try:
        umlpy = psutil.Process(proc.pid)
        guests: list[psutil.Process] = []
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            try:
                # the keeper of exec images is umlpy's, not a guest (its cmdline is umlpy's)
                guests = [p for p in umlpy.children(recursive=True)
                          if _alive(p) and p.name() != "umlpy-keeper"]
                sleeps = [p for p in guests if _cmdline(p)[:2] == ["sleep", "1000"]]
            except psutil.Error:
                sleeps = []
            if len(sleeps) >= 2 or proc.poll() is not None:
                break
            time.sleep(0.1)
        assert proc.poll() is None, \
            f"umlpy exited early ({proc.returncode}): {proc.stderr.read()!r}"
        assert len(sleeps) >= 2, f"no guest 'sleep 1000' processes under umlpy: {guests}"
        assert len(guests) >= 3, guests  # sh and its two sleeps, at least
        guest_pids = [p.pid for p in guests]

        os.kill(proc.pid, signal.SIGKILL)
        proc.wait(timeout=10)
        assert proc.returncode == -signal.SIGKILL

        deadline = time.monotonic() + 5
        while time.monotonic() < deadline and any(_alive(p) for p in guests):
            time.sleep(0.05)
        survivors = [(p.pid, _cmdline(p)) for p in guests if _alive(p)]
        assert not survivors, f"guest processes outlived umlpy: {survivors} (of {guest_pids})"
    finally:
        kill_group(proc)
        proc.wait(timeout=10)
        proc.stderr.close()


# A shell that starts a looping subshell and kills it at once, many times over:
# the subshell is often SIGKILLed in the middle of its own fork (the child
# exists, the fork event never comes) or while the kernel handles one of its
# stops (every ptrace request on it then fails with ESRCH).
KILL_STORM = """i=0
while [ $i -lt 200 ]; do
  ( while :; do cat /etc/passwd >/dev/null; done ) &
  kill -9 $!
  i=$((i+1))
done
wait
echo storm-over
"""


@pytest.mark.parametrize("cpu", ["pinned", "free"])
def test_kill_storm_leaves_no_task_behind(busybox_root, cpu):
    """Before: the kernel died of ESRCH (free placement) or waited forever on a
    child held for a fork event its killed parent never sent (pinned)."""
    env = {"UMLPY_CPU": "all"} if cpu == "free" else None
    res = run_umlpy(umlpy_run(["/bin/sh", "-c", KILL_STORM],
                              ["--root", str(busybox_root), "--counters"]),
                    env=env, timeout=60)
    assert res.returncode == 0, describe(res)
    assert res.stdout == "storm-over\n", describe(res)
    assert "oopses=0" in res.stderr and "Traceback" not in res.stderr, describe(res)
