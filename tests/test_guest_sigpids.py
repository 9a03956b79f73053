"""The pids a guest learns of its children and of signal senders: wait4's
result and si_pid of a delivered signal, which the accelerator translates
(csrc/faststops.c) and Python does when it cannot (UMLPY_NO_FAST_STOPS=1).
The program prints relations, so its output must be the host's."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import time

import psutil
import pytest

from guestroot import REPO, compile_static, run_umlpy, umlpy_run


@pytest.fixture(scope="module")
def sigpids(static_tools):
    return compile_static((REPO / "tests" / "sigpids.c").read_text(), static_tools / "sigpids")


@pytest.fixture(scope="module")
def native(sigpids) -> str:
    res = subprocess.run([str(sigpids)], capture_output=True, text=True, timeout=60)
    assert res.returncode == 0, res.stdout + res.stderr
    return res.stdout


@pytest.mark.parametrize("in_c", [True, False], ids=["c", "python-only"])
def test_children_and_senders(sigpids, native, in_c):
    env = None if in_c else {**os.environ, "UMLPY_NO_FAST_STOPS": "1"}
    res = run_umlpy(umlpy_run([str(sigpids)], ["--counters"]), env=env)
    assert res.returncode == 0, res.stdout + res.stderr
    assert res.stdout == native, res.stderr
    c_stops = int(re.search(r"c_stops=(\d+)", res.stderr).group(1))
    # 301 forks: in C, each one's wait4 entry and exit and its SIGCHLD at least
    assert (c_stops >= 900) if in_c else (c_stops == 0), res.stderr


def _guest_process(umlpy: subprocess.Popen, name: str) -> psutil.Process:
    for _ in range(200):
        for p in psutil.Process(umlpy.pid).children(recursive=True):
            try:
                if p.name() == name:
                    return p
            except psutil.NoSuchProcess:
                pass
        time.sleep(0.05)
    raise AssertionError(f"no guest process {name}")


@pytest.mark.parametrize("in_c", [True, False], ids=["c", "python-only"])
def test_sender_outside_the_guest_is_pid_0(sigpids, in_c):
    """A host process's kill must not show its host pid to the guest."""
    env = None if in_c else {**os.environ, "UMLPY_NO_FAST_STOPS": "1"}
    proc = subprocess.Popen(umlpy_run([str(sigpids), "outside"]), stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, env=env)
    try:
        assert proc.stdout.readline() == "ready\n"
        _guest_process(proc, "sigpids").send_signal(signal.SIGUSR1)
        out, err = proc.communicate(timeout=60)
    finally:
        proc.kill()
        proc.wait()
    assert proc.returncode == 0, out + err
    assert out == "ok a sender outside shows as pid 0\n", err


@pytest.mark.parametrize("in_c", [True, False], ids=["c", "python-only"])
def test_reaped_children_leave_proc(in_c):
    """A child reaped by a wait4 the accelerator answered is gone from the
    kernel too (its guest pid freed): /proc lists only the shell and ls."""
    env = None if in_c else {**os.environ, "UMLPY_NO_FAST_STOPS": "1"}
    script = "for i in 1 2 3 4 5 6; do /bin/true; done; ls /proc > /tmp/p; grep -c '^[0-9]*$' /tmp/p"
    res = run_umlpy(umlpy_run(["/bin/sh", "-c", script]), env=env)
    assert res.returncode == 0, res.stdout + res.stderr
    assert res.stdout == "2\n", res.stderr


FIRST_STOPS = r'''
import os, signal, subprocess, threading
for i in range(3):      # spawned by vfork: their first stop only resumes them
    p = subprocess.Popen(["sleep", "5"])
    os.kill(p.pid, signal.SIGSTOP)
    _, st = os.waitpid(p.pid, os.WUNTRACED)
    print("stopped", os.WIFSTOPPED(st), os.WSTOPSIG(st))
    os.kill(p.pid, signal.SIGCONT)      # (a later trap stop, Python's)
    _, st = os.waitpid(p.pid, os.WCONTINUED)
    print("continued", os.WIFCONTINUED(st))
    os.kill(p.pid, signal.SIGTERM)
    _, st = os.waitpid(p.pid, 0)
    print("killed", os.WIFSIGNALED(st), os.WTERMSIG(st))
out = []                # threads: clone without CLONE_CHILD_SETTID
ts = [threading.Thread(target=lambda: out.append(threading.get_native_id())) for _ in range(8)]
[t.start() for t in ts]
[t.join() for t in ts]
print("threads", len(set(out)))
r, w = os.pipe()        # glibc's fork: CLONE_CHILD_SETTID, written at the first stop
pid = os.fork()
if pid == 0:
    got = []
    signal.signal(signal.SIGUSR1, lambda *a: got.append(1))
    main = threading.get_ident()
    # pthread_kill of another thread: tgkill(getpid(), the tid glibc keeps for it)
    t = threading.Thread(target=signal.pthread_kill, args=(main, signal.SIGUSR1))
    t.start()
    t.join()
    os.write(w, f"{os.getpid()} {len(got)}".encode())
    os._exit(0)
os.waitpid(pid, 0)
child, raised = os.read(r, 32).split()
print("fork pid agrees", int(child) == pid, "raise", raised)
'''


@pytest.mark.parametrize("in_c", [True, False], ids=["c", "python-only"])
def test_first_stops(tmp_path, in_c):
    """A new task's first stop is resumed in C when its fork event found nothing
    to do there; stops after it, and CLONE_CHILD_SETTID, stay Python's."""
    script = tmp_path / "first_stops.py"
    script.write_text(FIRST_STOPS)
    native = subprocess.run(["python3", str(script)], capture_output=True, text=True,
                            timeout=60)
    assert native.returncode == 0, native.stderr
    env = None if in_c else {**os.environ, "UMLPY_NO_FAST_STOPS": "1"}
    res = run_umlpy(umlpy_run(["python3", str(script)], ["--counters"]), env=env)
    assert res.returncode == 0, res.stdout + res.stderr
    assert res.stdout == native.stdout, res.stderr
    starts = int(re.search(r"fast_starts=(\d+)", res.stderr).group(1))
    # 3 spawns and 8 threads (and whatever Popen's helpers are)
    assert (starts >= 11) if in_c else (starts == 0), res.stderr


@pytest.fixture(scope="module")
def waitchildren(static_tools):
    return compile_static((REPO / "tests" / "waitchildren.c").read_text(),
                          static_tools / "waitchildren")


@pytest.mark.parametrize("in_c", [True, False], ids=["c", "python-only"])
def test_wait_with_no_children(waitchildren, in_c):
    """wait4 with no children fails ECHILD, answered at its entry in C (a
    shell's wait4(WNOHANG) after each command), and each way a process has
    a child after all still finds it: running, a thread's, an orphan handed
    to the first process (by the host at its parent's exit, which C checks
    for: busybox sh's here-documents hit it under load), reaped then forked
    again. Linux's EINVAL for bad options and ESRCH for INT_MIN come first."""
    native = subprocess.run([str(waitchildren)], capture_output=True, text=True, timeout=60)
    assert native.returncode == 0, native.stdout + native.stderr
    env = None if in_c else {**os.environ, "UMLPY_NO_FAST_STOPS": "1"}
    res = run_umlpy(umlpy_run([str(waitchildren)], ["--counters"]), env=env)
    assert res.returncode == 0, res.stdout + res.stderr
    assert res.stdout == native.stdout, res.stderr
    answered = int(re.search(r"childless_waits=(\d+)", res.stderr).group(1))
    # 5 with none at the start, 50 after each fork's reap, and 2 more; not
    # the one after the thread's child (C leaves threaded processes alone)
    assert answered == (57 if in_c else 0), res.stderr
