"""Workloads over a tree of small files: tar c and tar x of ~3000 files.

The source tree and its tarball are made once per suite run, untimed, in the
suite's scratch directory (a host directory every runner can read: umlpy's
overlay root, PRoot, gVisor's `runsc do` and UML's hostfs root all see the
host's /tmp). Output goes to /dev/shm: the host's tmpfs natively, the guest
kernel's own tmpfs under umlpy. A native tar x leaves its tree behind, so
`prepare` removes earlier outputs before each sample, untimed.
"""
from __future__ import annotations

import glob
import itertools
import os
import shutil
import tarfile
from pathlib import Path

from umlpy.bench.workloads import WALL_SECONDS, Workload, WorkloadContext, register

TREE_FILES = 3000
QUICK_TREE_FILES = 300
FILES_PER_DIR = 100
_OUT_PREFIX = f"/dev/shm/umlpy-bench-tar-{os.getpid()}-"
_runs = itertools.count()


def _tree(ctx: WorkloadContext) -> Path:
    assert ctx.scratch is not None, "tree workloads need the suite's scratch directory"
    return ctx.scratch / f"tree-{ctx.iters}"


def _tarball(ctx: WorkloadContext) -> Path:
    return _tree(ctx).with_suffix(".tar")


def make_tree(root: Path, files: int) -> None:
    """`files` files of 0.1-8 KiB in directories of FILES_PER_DIR, like a source tree."""
    for i in range(files):
        d = root / f"d{i // FILES_PER_DIR:03d}"
        if i % FILES_PER_DIR == 0:
            d.mkdir(parents=True, exist_ok=True)
        size = 100 + (i * 7919) % 8000
        (d / f"f{i:05d}.c").write_bytes(bytes((i + j) & 0xFF for j in range(size)))


def _prepare(ctx: WorkloadContext) -> None:
    tree = _tree(ctx)
    if not tree.exists():
        make_tree(tree, ctx.iters)
        with tarfile.open(_tarball(ctx), "w") as tar:
            tar.add(tree, arcname=".")
    for old in glob.glob(_OUT_PREFIX + "*"):
        if os.path.isdir(old):
            shutil.rmtree(old, ignore_errors=True)
        else:
            os.unlink(old)


def _out() -> str:
    return f"{_OUT_PREFIX}{next(_runs)}"


def _tar_c(ctx: WorkloadContext) -> list[str]:
    return ["tar", "cf", _out() + ".tar", "-C", str(_tree(ctx)), "."]


def _tar_x(ctx: WorkloadContext) -> list[str]:
    out = _out()
    return ["/bin/sh", "-c", f"mkdir {out} && exec tar xf {_tarball(ctx)} -C {out}"]


register(Workload(
    name="tarc",
    description=f"tar c of {TREE_FILES} small files (GNU tar, archive on /dev/shm), wall time",
    metric=WALL_SECONDS, command=_tar_c, iters=TREE_FILES, quick_iters=QUICK_TREE_FILES,
    prepare=_prepare))

register(Workload(
    name="tarx",
    description=f"tar x of {TREE_FILES} small files into /dev/shm (GNU tar), wall time",
    metric=WALL_SECONDS, command=_tar_x, iters=TREE_FILES, quick_iters=QUICK_TREE_FILES,
    prepare=_prepare))
