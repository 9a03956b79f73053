"""Exec attacks: a setuid host binary gives a guest nothing (no host
capabilities, no other host uid), and the kernel's scratch below a guest's
stack pointer, when that memory is not writable, costs the guest an errno,
never the kernel an oops."""
from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
from pathlib import Path

import psutil
import pytest

from guestroot import describe, guest_env, kill_group, run_umlpy, umlpy_run, wait_for_descendants
from hostcheck import ATTACKS, build_probe

CAPS = ("CapInh", "CapPrm", "CapEff", "CapAmb")


def _status(pid: int) -> dict:
    with open(f"/proc/{pid}/status") as f:
        return dict(line.rstrip("\n").split(":\t", 1) for line in f if ":\t" in line)


@pytest.fixture
def setuid_sleeps():
    """Copies of sleep, setuid root and setuid 1000 (needs root to make), in a
    directory every guest user may reach (pytest's own are root's only)."""
    if os.geteuid() != 0:
        pytest.skip("making setuid-root binaries needs root (CI is root)")
    d = Path(tempfile.mkdtemp(prefix="umlpy-suid-", dir="/tmp"))
    d.chmod(0o755)
    made = {}
    for owner in (0, 1000):
        path = d / f"sleep-suid-{owner}"
        shutil.copy2(shutil.which("sleep"), path)
        os.chown(path, owner, owner)
        path.chmod(0o6755)
        made[owner] = str(path)
    yield made
    shutil.rmtree(d)


@pytest.mark.parametrize("guest_uid", [0, 1000])
def test_setuid_host_binaries_give_nothing(setuid_sleeps, guest_uid, host):
    # a guest user runs each (exec from python3 after setgid/setuid to guest_uid)
    run = ('python3 -c "import os, sys; os.setgid({0}); os.setuid({0}); '
           'os.execv(sys.argv[1], [sys.argv[1], \'30\'])" ')
    script = " & ".join(run.format(guest_uid) + p for p in setuid_sleeps.values()) + " & wait"
    proc = subprocess.Popen(umlpy_run(["/bin/sh", "-c", script]), cwd="/", env=guest_env(),
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                            start_new_session=True)
    try:
        found = {}

        def both_running(procs: list) -> bool:
            for p in procs:
                try:
                    exe = p.cmdline()[0] if p.cmdline() else ""
                except psutil.Error:
                    continue
                if "sleep-suid-" in exe:
                    found[exe] = p.pid
            return len(found) == 2
        wait_for_descendants(proc.pid, both_running, "the two setuid sleeps")
        me = str(os.getuid())
        for exe, pid in found.items():
            st = _status(pid)
            ATTACKS["exec"] += 1
            assert st["Uid"].split() == [me] * 4, (exe, st["Uid"])
            for line in CAPS:
                assert int(st[line], 16) == 0, (exe, line, st[line])
        for pid in found.values():      # the guest ends, and its kernel with it
            os.kill(pid, 9)
        proc.wait(timeout=60)
    finally:
        kill_group(proc)
        proc.wait(timeout=30)


def test_kernel_scratch_in_unwritable_memory(tmp_path_factory, host):
    binary, root = build_probe("scratch", tmp_path_factory)
    res = run_umlpy(umlpy_run(["/bin/scratch"], ["--root", str(root)]), timeout=60,
                    cwd=str(root))
    ATTACKS["memory"] += 2
    assert res.returncode == 0, describe(res)
    lines = res.stdout.splitlines()
    # Linux writes nothing there, so it would run /bin/true; umlpy cannot place
    # the exec path and says EFAULT (README: known differences), the guest goes on
    assert lines[0] in ("execve -> EFAULT",), describe(res)
    assert lines[1] in ("recvfrom -> OK", "recvfrom -> EFAULT"), describe(res)
    assert lines[2] == "alive" and "oops" not in res.stderr, describe(res)
