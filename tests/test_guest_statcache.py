"""stat answered by the accelerator (csrc/fastnotif.c, csrc/statpath.c).

One static program stats a file every way (stat, lstat, newfstatat, fstat,
fstatat with an empty path), twice each, after each change: a write, a
growth by pwrite, chmod, fchmod, link, unlink, truncate, futimens, rename,
a new directory entry, a symlink, a file appearing where ENOENT was given,
and a uid-1000 process asking what root asked (one forked after, and one
already waiting, that asks with only native calls since root's answer: the
answers are the asking task's own). Each answer must agree with the
others (the first goes to the kernel in Python, the repeats to C), and the
whole output must equal the host's on the host's tmpfs.
"""
from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

import pytest

from guestroot import REPO, compile_static, run_umlpy, umlpy_run

pytestmark = pytest.mark.skipif(shutil.which("gcc") is None,
                                reason="gcc missing (install gcc and libc6-dev)")


@pytest.fixture(scope="module")
def statseq(tmp_path_factory) -> Path:
    d = tmp_path_factory.mktemp("statseq")
    return compile_static((REPO / "tests" / "statseq.c").read_text(), d / "statseq",
                          [REPO / "tests"])


@pytest.fixture(scope="module")
def native(statseq, tmp_path_factory) -> str:
    work = Path("/dev/shm") / f"umlpy-statseq-{tmp_path_factory.mktemp('n').name}"
    work.mkdir()
    try:
        res = subprocess.run([str(statseq), str(work)], capture_output=True, text=True,
                             timeout=60)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    assert res.returncode == 0, res.stdout + res.stderr
    return res.stdout


def _fast_answers(stderr: str) -> int:
    m = re.search(r"fast_stats=(\d+)", stderr)
    assert m, stderr
    return int(m.group(1))


def _check(res, native: str, at_least: int) -> None:
    assert res.returncode == 0, res.stdout + res.stderr
    assert "MISMATCH" not in res.stdout
    assert res.stdout == native
    assert _fast_answers(res.stderr) >= at_least, res.stderr


@pytest.mark.parametrize("in_c", [True, False], ids=["c", "python-only"])
def test_tmpfs(statseq, native, in_c):
    """The guest kernel's tmpfs: sizes and times come live from the memfd.
    With UMLPY_NO_FAST_STATS=1 every stat reaches Python: the same output."""
    res = run_umlpy(umlpy_run(["/bin/sh", "-c", f"mkdir /dev/shm/w && exec {statseq} /dev/shm/w"],
                              ["--counters"]), env=None if in_c else {"UMLPY_NO_FAST_STATS": "1"})
    if in_c:
        _check(res, native, 150)
    else:
        assert res.returncode == 0 and res.stdout == native, res.stdout + res.stderr
        assert _fast_answers(res.stderr) == 0


def test_overlay_upper(statseq, native, tmp_path):
    """A directory of the default root: the overlay's upper layer."""
    res = run_umlpy(umlpy_run([str(statseq), str(tmp_path)], ["--counters"]))
    _check(res, native, 150)


def test_hostfs_read_write(statseq, native, tmp_path):
    """--root: a host directory read-write, whose files change behind the
    kernel's back: only fstat is answered in C, while the host ctime stands."""
    root = tmp_path / "root"
    (root / "w").mkdir(parents=True)
    shutil.copy(statseq, root / "statseq")
    res = run_umlpy(umlpy_run(["/statseq", "/w"], ["--root", str(root), "--counters"]))
    _check(res, native, 20)


def test_trace_sees_every_stat(statseq, tmp_path):
    """--trace must show each call: nothing is answered in C under it."""
    res = run_umlpy(umlpy_run([str(statseq), str(tmp_path)], ["--counters", "--trace"]))
    assert res.returncode == 0, res.stdout + res.stderr
    assert _fast_answers(res.stderr) == 0
    assert res.stderr.count("newfstatat(") > 50


# ---- fstatat(dirfd, name): what ls -l, tar c and find do ----

DIRSTAT_SETUP = "mkdir -p {d}/a/mnt && mount -t tmpfs none {d}/a/mnt && exec {prog} {d}"


@pytest.fixture(scope="module")
def dirstat(tmp_path_factory) -> Path:
    d = tmp_path_factory.mktemp("dirstat")
    return compile_static((REPO / "tests" / "dirstat.c").read_text(), d / "dirstat",
                          [REPO / "tests"])


@pytest.mark.skipif(shutil.which("unshare") is None, reason="unshare missing (util-linux)")
def test_stat_from_directory_descriptor(dirstat, tmp_path_factory):
    """Every entry stat'ed through its directory's descriptor, in two
    directories with the same names opened in turn, across changes, a
    symlink (followed or not), a mount point and a uid-1000 process without
    search permission: the host's output, with most answers given in C
    (published ahead from the listing)."""
    work = Path("/dev/shm") / f"umlpy-dirstat-{tmp_path_factory.mktemp('n').name}"
    work.mkdir()
    try:
        native = subprocess.run(["unshare", "-m", "/bin/sh", "-c",
                                 DIRSTAT_SETUP.format(d=work, prog=dirstat)],
                                capture_output=True, text=True, timeout=60)
    finally:
        subprocess.run(["umount", "-l", str(work / "a" / "mnt")], capture_output=True)
        shutil.rmtree(work, ignore_errors=True)
    assert native.returncode == 0, native.stdout + native.stderr
    assert "a mnt    mode=41777" in native.stdout        # the mount's root, not the directory
    res = run_umlpy(umlpy_run(["/bin/sh", "-c",
                               DIRSTAT_SETUP.format(d="/dev/shm/w", prog=dirstat)],
                              ["--counters"]))
    assert res.returncode == 0, res.stdout + res.stderr
    assert res.stdout == native.stdout
    assert _fast_answers(res.stderr) >= 1000, res.stderr
