"""Resource attacks: a fork bomb against the kernel's task limit, descriptor
exhaustion, symlink loops, huge paths and argument vectors, and host memory
pinned by deleted files.  Each must fail in the guest with Linux's errno (the
same program run natively is the reference) and leave the host unchanged
(hostcheck.HostState).

Attacks by class: resources 1 fork bomb + 1 fd exhaustion + 9 path cases
+ 2 argv sizes + 1 memory pinning = 14.
"""
from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest

from guestroot import describe, run_umlpy, umlpy_command
from hostcheck import ATTACKS, build_probe

HERE = Path(__file__).resolve().parent


@pytest.fixture(scope="module")
def res_probe(tmp_path_factory) -> "tuple[Path, Path]":
    return build_probe("res", tmp_path_factory)


@pytest.fixture(scope="module")
def res_bin(res_probe) -> Path:
    return res_probe[0]


@pytest.fixture(scope="module")
def res_root(res_probe) -> Path:
    return res_probe[1]


def guest(root: Path, argv: list, env: dict | None = None, timeout: float = 120):
    return run_umlpy(umlpy_command(root, argv), env=env, timeout=timeout, cwd=str(root))


def test_fork_bomb_meets_the_task_limit(res_root, host):
    """Past UMLPY_MAX_TASKS tasks, fork fails with EAGAIN (Linux's answer at
    RLIMIT_NPROC); the kernel and the host carry on."""
    res = guest(res_root, ["/bin/res", "forks"], env={"UMLPY_MAX_TASKS": "40"})
    ATTACKS["resources"] += 1
    # fork is glibc's clone, which the host runs before the kernel hears of
    # it (kernel/births.py): the child it made is killed and reaped unseen,
    # as are those of a vfork and a raw fork tried there
    assert res.stdout.startswith("forks 39 EAGAIN vfork EAGAIN fork EAGAIN wait 0\n"), \
        describe(res)
    assert "oops" not in res.stderr, describe(res)


def test_descriptor_exhaustion_is_emfile(res_root, res_bin, host):
    nat = subprocess.run([str(res_bin), "fds", "32"], capture_output=True, text=True, timeout=30)
    res = guest(res_root, ["/bin/res", "fds", "32"])
    ATTACKS["resources"] += 1
    assert res.returncode == 0 and "oops" not in res.stderr, describe(res)
    assert res.stdout == nat.stdout, describe(res) + f"\nnative: {nat.stdout}"


def test_symlink_loops_and_long_paths_match_linux(res_root, res_bin, host, tmp_path):
    d = tmp_path / "native-paths"
    d.mkdir()
    nat = subprocess.run([str(res_bin), "paths", str(d)], capture_output=True, text=True,
                         timeout=30)
    res = guest(res_root, ["/bin/sh", "-c", "mkdir -p /tmp/paths && exec /bin/res paths /tmp/paths"])
    ATTACKS["resources"] += 9
    assert res.returncode == 0 and "oops" not in res.stderr, describe(res)
    assert res.stdout == nat.stdout, describe(res) + f"\nnative: {nat.stdout}"


@pytest.mark.parametrize("size", [100_000, 3_000_000])
def test_huge_argument_vectors_match_linux(res_root, res_bin, host, size):
    nat = subprocess.run([str(res_bin), "argv", str(size)], capture_output=True, text=True,
                         timeout=30)
    res = guest(res_root, ["/bin/res", "argv", str(size)])
    ATTACKS["resources"] += 1
    assert "oops" not in res.stderr, describe(res)
    assert res.stdout == nat.stdout, describe(res) + f"\nnative: {nat.stdout}"


def _tmpfs_memfds(pid: int) -> int:
    n = 0
    for fd in os.listdir(f"/proc/{pid}/fd"):
        try:
            n += "/memfd:tmpfs:" in os.readlink(f"/proc/{pid}/fd/{fd}")
        except OSError:
            pass
    return n


def test_deleted_files_release_host_memory(res_root, host):
    """Writing and deleting files must not pin host memory: the kernel's page caches
    of deleted files go once no guest holds them (found by the fuzzer)."""
    script = ("i=0; while [ $i -lt 200 ]; do echo data > /tmp/churn.$i; rm /tmp/churn.$i; "
              "i=$((i+1)); done; dd if=/dev/zero of=/tmp/big bs=1M count=80 2>/dev/null; "
              "rm /tmp/big; echo churned; read x")
    proc = subprocess.Popen(umlpy_command(res_root, ["/bin/sh", "-c", script]),
                            stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True, cwd=str(res_root), start_new_session=True)
    try:
        line = proc.stdout.readline()
        held = _tmpfs_memfds(proc.pid)
        out, err = proc.communicate("x\n", timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
    ATTACKS["resources"] += 1
    assert line == "churned\n", (line, err)
    # at most the files deleted since the last collection (64), not 201
    assert held <= 64, f"the kernel holds {held} page caches of deleted files"
