"""Run workloads under runners, repeatedly, and collect the samples.

Repetitions are the outer loop and runners the inner one, so native and
sandboxed samples of one workload alternate in time: a drift in the host
(another tenant on the VM, thermal, page cache) hits both alike instead of
biasing whichever ran last. Odd repetitions reverse the runner order (ABBA)
so neither is systematically first after a different workload.
"""
from __future__ import annotations

import os
import signal
import statistics
import subprocess
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from umlpy.bench.guests import build_guest
from umlpy.bench.runners import BASELINE, Runner
from umlpy.bench.workloads import MetricError, Workload

Log = Callable[[str], None]


@dataclass
class Sample:
    value: float | None          # the metric's number, None if the run failed
    wall_s: float
    error: str | None = None


@dataclass
class Cell:
    """All samples of one workload, under one runner, in one placement."""

    workload: str
    placement: str
    runner: str
    unit: str
    higher_is_better: bool
    argv: list[str] = field(default_factory=list)
    samples: list[Sample] = field(default_factory=list)
    unavailable: str | None = None

    @property
    def values(self) -> list[float]:
        return [s.value for s in self.samples if s.value is not None]

    @property
    def errors(self) -> list[str]:
        return [s.error for s in self.samples if s.error]

    @property
    def median(self) -> float | None:
        return statistics.median(self.values) if self.values else None


@dataclass
class SuiteResult:
    config: dict
    cells: list[Cell]

    def cell(self, workload: str, placement: str, runner: str) -> Cell | None:
        for c in self.cells:
            if (c.workload, c.placement, c.runner) == (workload, placement, runner):
                return c
        return None

    def ratio(self, c: Cell) -> float | None:
        """Slowdown against native in the same placement (>1 means slower).

        For higher-is-better metrics (throughput) it is native/value, so a
        ratio reads the same way for every workload.
        """
        base = self.cell(c.workload, c.placement, BASELINE)
        if base is None or not base.median or not c.median:
            return None
        return base.median / c.median if c.higher_is_better else c.median / base.median

    @property
    def failed(self) -> bool:
        # A runner that was asked for but cannot run is a failure too: a
        # table without the numbers it was meant to have must not look green.
        return any(c.errors or c.unavailable for c in self.cells)


def run_once(argv: list[str], timeout: float) -> tuple[int | None, str, str, float]:
    """Run argv; return (status or None on timeout, stdout, stderr, wall seconds).

    The child gets its own session so a timeout can kill everything it
    started (a sandbox's guests included) by its process group.
    """
    t0 = time.perf_counter()
    proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, errors="replace",
                            start_new_session=True)
    try:
        out, err = proc.communicate(timeout=timeout)
        status: int | None = proc.returncode
    except subprocess.TimeoutExpired:
        try:
            os.killpg(proc.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        out, err = proc.communicate()
        status = None
    return status, out, err, time.perf_counter() - t0


def measure(workload: Workload, argv: list[str], timeout: float) -> Sample:
    status, out, err, wall = run_once(argv, timeout)
    if status is None:
        return Sample(None, wall, f"timed out after {timeout:g} s")
    if status != 0:
        tail = (err.strip() or out.strip())[-300:]
        return Sample(None, wall, f"exit status {status}: {tail}")
    try:
        return Sample(workload.metric.extract(out, wall), wall)
    except MetricError as exc:
        return Sample(None, wall, str(exc))


def _fmt(value: float | None, unit: str) -> str:
    if value is None:
        return "FAILED"
    return f"{value:,.0f} {unit}" if value >= 100 else f"{value:.4g} {unit}"


def run_suite(workloads: list[Workload], runners: list[Runner], *,
              placements: tuple[str, ...], reps: int, quick: bool, cpu: int,
              timeout: float, cache_dir: Path | None = None,
              log: Log = lambda msg: None) -> SuiteResult:
    """Build what the workloads need, then measure every (workload, placement,
    runner) cell `reps` times."""
    guests: dict[str, Path] = {}
    for w in workloads:
        if w.guest and w.guest not in guests:
            guests[w.guest] = build_guest(w.guest, cache_dir)
            log(f"guest {w.guest}: {guests[w.guest]}")

    usable = []
    for r in runners:
        reason = r.unavailable()
        if reason:
            log(f"runner {r.name}: unavailable: {reason}")
        usable.append((r, reason))

    cells: dict[tuple[str, str, str], Cell] = {}
    with tempfile.TemporaryDirectory(prefix="umlpy-bench-") as tmp:
        scratch = Path(tmp)
        plan = []
        for w in workloads:
            ctx = w.context(quick, guests, scratch)
            for p in placements:
                if p not in w.placements:
                    continue
                where = cpu if p == "pinned" else None
                for r, reason in usable:
                    argv = r.argv(w.command(ctx), where)
                    cells[(w.name, p, r.name)] = Cell(
                        w.name, p, r.name, w.metric.unit, w.metric.higher_is_better,
                        argv=argv, unavailable=reason)
                plan.append((w, ctx, p))

        # One untimed run per runner first: warms the page cache, Python's
        # bytecode cache and any lazily built sandbox state, so the first
        # repetition is not an outlier.
        for r, reason in usable:
            if not reason:
                r.prepare()
                run_once(r.argv(["/bin/true"], cpu), timeout)

        for rep in range(reps):
            order = usable if rep % 2 == 0 else usable[::-1]
            for w, ctx, p in plan:
                for r, reason in order:
                    if reason:
                        continue
                    if w.prepare:
                        w.prepare(ctx)
                    c = cells[(w.name, p, r.name)]
                    s = measure(w, c.argv, timeout)
                    c.samples.append(s)
                    log(f"[{rep + 1}/{reps}] {w.name:<10} {p:<6} {r.name:<8} "
                        + (_fmt(s.value, w.metric.unit) if s.error is None
                           else f"FAILED: {s.error}"))

    config = {"reps": reps, "quick": quick, "cpu": cpu, "timeout_s": timeout,
              "placements": list(placements),
              "workloads": {w.name: {"description": w.description,
                                     "iters": w.quick_iters if quick else w.iters,
                                     "unit": w.metric.unit,
                                     "higher_is_better": w.metric.higher_is_better}
                            for w in workloads},
              "runners": {r.name: {"description": r.description, "unavailable": reason}
                          for r, reason in usable}}
    return SuiteResult(config=config, cells=list(cells.values()))
