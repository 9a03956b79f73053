"""The registry of workloads: what to run, and how to turn a run into a number.

A Workload is data: the guest program it needs (a C file in guest/, built by
guests.py), a function from a WorkloadContext to the command to run, how many
iterations a full and a --quick run use, and a Metric saying where the number
comes from. Two kinds of metric exist:

* GuestMetric: the guest times its own loop and prints `key=value` pairs
  (guest/bench.h); the metric reads one key. This isolates the per-operation
  cost from process and sandbox start-up.
* WallMetric: the suite times the whole command from outside, start-up and
  all, subtracting nothing. This is what a user waits for.

Adding a workload (issue 6: pread, open+close, stat, pipe, ...) is one
`register(Workload(...))` call plus, if it needs one, a guest/<name>.c.
"""
from __future__ import annotations

from umlpy.bench.registry import add_unique

import itertools
import os
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

# CPU placements every workload is measured under: "pinned" puts the runner
# (supervisor and guests) on one CPU, "free" lets the host scheduler choose.
# On these VMs a cross-CPU ptrace stop costs ~10x a same-CPU one, so both
# are first-order numbers (DESIGN.md, "Measured on these machines").
PLACEMENTS: tuple[str, ...] = ("pinned", "free")


class MetricError(ValueError):
    """A run's output did not contain the number its metric expects."""


@dataclass(frozen=True)
class Metric:
    """How a sample's number is obtained, its unit and which way is better."""

    unit: str
    higher_is_better: bool = False

    def extract(self, stdout: str, wall_s: float) -> float:
        raise NotImplementedError


_KV = re.compile(r"(\w+)=(\S+)")


@dataclass(frozen=True)
class GuestMetric(Metric):
    """A value the guest printed on its `umlpy-bench ...` line."""

    key: str = "ns_per_op"

    def extract(self, stdout: str, wall_s: float) -> float:
        for line in stdout.splitlines():
            if line.startswith("umlpy-bench "):
                values = dict(_KV.findall(line))
                if self.key in values:
                    return float(values[self.key])
        raise MetricError(f"no `umlpy-bench ... {self.key}=` line in guest output: "
                          f"{stdout.strip()[-200:]!r}")


@dataclass(frozen=True)
class WallMetric(Metric):
    """Wall-clock seconds of the whole command, measured by the suite."""

    def extract(self, stdout: str, wall_s: float) -> float:
        return wall_s


NS_PER_OP = GuestMetric(unit="ns/op", key="ns_per_op")
WALL_SECONDS = WallMetric(unit="s")


@dataclass
class WorkloadContext:
    """What a workload's command may depend on."""

    iters: int
    # Built guest programs by name (guest/<name>.c -> cached binary path).
    guests: dict[str, Path] = field(default_factory=dict)
    # A scratch directory private to this run, for workloads that make files.
    scratch: Path | None = None


@dataclass(frozen=True)
class Workload:
    name: str
    description: str
    metric: Metric
    command: Callable[[WorkloadContext], list[str]]
    iters: int = 1
    quick_iters: int = 1
    guest: str | None = None
    placements: tuple[str, ...] = PLACEMENTS
    # Run in the default set; off for slow or optional workloads.
    default: bool = True
    # Untimed preparation before each sample (e.g. a tree to tar up).
    prepare: Callable[[WorkloadContext], None] | None = None

    def context(self, quick: bool, guests: dict[str, Path],
                scratch: Path | None = None) -> WorkloadContext:
        return WorkloadContext(iters=self.quick_iters if quick else self.iters,
                               guests=guests, scratch=scratch)


WORKLOADS: dict[str, Workload] = {}


def register(workload: Workload) -> Workload:
    """Add a workload to the registry (names are unique)."""
    return add_unique(WORKLOADS, workload.name, workload, "workload")


def select(names: str | None) -> list[Workload]:
    """Workloads named in a comma-separated list, or the default set."""
    if not names:
        return [w for w in WORKLOADS.values() if w.default]
    chosen = []
    for name in (n.strip() for n in names.split(",")):
        if not name:
            continue
        if name not in WORKLOADS:
            raise KeyError(f"unknown workload {name!r}; known: {', '.join(WORKLOADS)}")
        chosen.append(WORKLOADS[name])
    return chosen


# --------------------------------------------------------------------------
# The workloads.

def _guest_command(name: str) -> Callable[[WorkloadContext], list[str]]:
    """Command running guest `name` with the iteration count as argv[1]."""
    def command(ctx: WorkloadContext) -> list[str]:
        return [str(ctx.guests[name]), str(ctx.iters)]
    return command


register(Workload(
    name="getpid",
    description="guest loop of getpid syscalls (syscall(SYS_getpid)), timed in the guest",
    metric=NS_PER_OP,
    command=_guest_command("getpid"),
    guest="getpid",
    iters=20_000,
    quick_iters=2_000,
))


def _forkexec_command(ctx: WorkloadContext) -> list[str]:
    # The shell forks and execs /bin/true each time: process creation, exec
    # and exit/wait under the sandbox, as a build or a shell script sees them.
    script = (f"i=0; while [ $i -lt {ctx.iters} ]; do /bin/true; i=$((i+1)); done")
    return ["/bin/sh", "-c", script]


register(Workload(
    name="forkexec",
    description="/bin/sh loop of fork+exec of /bin/true, wall time",
    metric=WALL_SECONDS,
    command=_forkexec_command,
    iters=300,
    quick_iters=30,
))


register(Workload(
    name="startup",
    description="one /bin/true: sandbox start-up and tear-down, wall time",
    metric=WALL_SECONDS,
    command=lambda ctx: ["/bin/true"],
))


# ---- file-system workloads (guest/fileio.c), on a tmpfs on both sides ----
def _fileio_command(mode: str) -> Callable[[WorkloadContext], list[str]]:
    def command(ctx: WorkloadContext) -> list[str]:
        # a fresh directory per sample: /dev/shm is the host's tmpfs natively
        # and the guest kernel's own tmpfs under umlpy
        scratch = f"/dev/shm/umlpy-bench-{os.getpid()}-{next(_fileio_runs)}"
        return [str(ctx.guests["fileio"]), mode, str(ctx.iters), scratch]
    return command


_fileio_runs = itertools.count()

for _mode, _desc, _iters, _quick in (
        ("pread", "pread of 64 bytes from a 4 KiB tmpfs file", 20_000, 2_000),
        ("openclose", "open + close of a tmpfs file", 5_000, 500),
        ("stat", "stat of a tmpfs file", 5_000, 500),
        ("bigio", "write 64 MiB to tmpfs, fsync, read it back (per round)", 3, 1),
        ("files", "create, list with lstat (ls -l) and remove N tmpfs files (per file)",
         2_000, 300)):
    register(Workload(
        name=_mode,
        description=_desc + ", timed in the guest",
        metric=NS_PER_OP,
        command=_fileio_command(_mode),
        guest="fileio",
        iters=_iters,
        quick_iters=_quick,
    ))


register(Workload(
    name="compute",
    description="SHA-256 of 64 MiB in memory (per round), no syscalls, timed in the guest",
    metric=NS_PER_OP,
    command=_guest_command("compute"),
    guest="compute",
    iters=3,
    quick_iters=1,
))

register(Workload(
    name="pipe",
    description="64 MiB through a pipe from a child to its parent in 64 KiB writes "
                "(per 64 MiB), timed in the guest",
    metric=NS_PER_OP,
    command=_guest_command("pipe"),
    guest="pipe",
    iters=4,
    quick_iters=1,
))


def _python_command(ctx: WorkloadContext) -> list[str]:
    # The interpreter's start-up: dozens of opens, stats and mmaps of its
    # stdlib, what every Python tool run inside a sandbox pays.
    script = (f"i=0; while [ $i -lt {ctx.iters} ]; do python3 -c pass || exit 1; "
              f"i=$((i+1)); done")
    return ["/bin/sh", "-c", script]


register(Workload(
    name="python",
    description="`python3 -c pass` N times from a shell, wall time",
    metric=WALL_SECONDS,
    command=_python_command,
    iters=20,
    quick_iters=3,
))
