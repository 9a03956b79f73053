"""Command line of the benchmark suite: `python -m umlpy.bench [options]`."""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

from umlpy.bench import report, runners, workloads
from umlpy.bench.guests import BuildError
from umlpy.bench.suite import run_suite

DEFAULT_REPS = 5
QUICK_REPS = 2


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="python -m umlpy.bench",
        description="Measure workloads natively and under umlpy (and peers), "
                    "pinned to one CPU and free; print medians and ratios to native.")
    p.add_argument("--reps", type=int, default=None,
                   help=f"repetitions per cell (default {DEFAULT_REPS}, {QUICK_REPS} with --quick)")
    p.add_argument("--quick", action="store_true",
                   help="fewer repetitions and iterations (smoke test)")
    p.add_argument("--workloads", metavar="A,B",
                   help="workloads to run (default: the default set, see --list)")
    p.add_argument("--runners", metavar="A,B",
                   help=f"runners (default {','.join(runners.DEFAULT_RUNNERS)}; "
                        "native, the baseline, is always added)")
    p.add_argument("--placements", metavar="A,B", default=",".join(workloads.PLACEMENTS),
                   help="CPU placements: pinned (one CPU), free (default: both)")
    p.add_argument("--cpu", type=int, default=0, help="the CPU 'pinned' runs use (default 0)")
    p.add_argument("--timeout", type=float, default=600.0, help="seconds per run (default 600)")
    p.add_argument("--json", type=Path, default=Path("bench-results/bench.json"),
                   help="where to write results (default bench-results/bench.json)")
    p.add_argument("--plot", type=Path, default=Path("bench-results/bench.png"),
                   help="bar chart of ratios, if matplotlib is installed "
                        "(default bench-results/bench.png)")
    p.add_argument("--no-plot", action="store_true", help="do not draw the chart")
    p.add_argument("--cache-dir", type=Path, default=None,
                   help="where guest programs are compiled (default ~/.cache/umlpy-bench)")
    p.add_argument("--list", action="store_true", help="list workloads and runners, then exit")
    p.add_argument("-q", "--quiet", action="store_true", help="no per-run progress on stderr")
    return p


def _list() -> None:
    print("workloads:")
    for w in workloads.WORKLOADS.values():
        extra = "" if w.default else " (not in the default set)"
        print(f"  {w.name:<12} [{w.metric.unit}] {w.description}{extra}")
    print("runners:")
    for r in runners.RUNNERS.values():
        why = r.unavailable()
        print(f"  {r.name:<12} {r.description}" + (f" -- unavailable: {why}" if why else ""))


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    if args.list:
        _list()
        return 0
    try:
        chosen = workloads.select(args.workloads)
        chosen_runners = runners.select(args.runners)
    except KeyError as exc:
        print(f"error: {exc.args[0]}", file=sys.stderr)
        return 2
    placements = tuple(p.strip() for p in args.placements.split(",") if p.strip())
    bad = [p for p in placements if p not in workloads.PLACEMENTS]
    if bad or not placements:
        print(f"error: placements must be among {','.join(workloads.PLACEMENTS)}", file=sys.stderr)
        return 2
    reps = args.reps if args.reps is not None else (QUICK_REPS if args.quick else DEFAULT_REPS)
    if reps < 1:
        print("error: --reps must be at least 1", file=sys.stderr)
        return 2

    def log(msg: str) -> None:
        if not args.quiet:
            print(msg, file=sys.stderr, flush=True)

    try:
        result = run_suite(chosen, chosen_runners, placements=placements, reps=reps,
                           quick=args.quick, cpu=args.cpu, timeout=args.timeout,
                           cache_dir=args.cache_dir, log=log)
    except BuildError as exc:
        print(f"error: cannot build a guest program: {exc}", file=sys.stderr)
        return 2

    report.print_table(result, sys.stdout)
    report.write_json(result, report.machine_info(), args.json)
    print(f"results: {args.json}")
    if not args.no_plot:
        note = report.plot(result, args.plot)
        print(f"plot: {note}" if note else f"plot: {args.plot}")
    # Non-zero when any run failed or a chosen runner was unavailable, so CI
    # and scripts notice; the results are written either way.
    return 1 if result.failed else 0


if __name__ == "__main__":
    sys.exit(main())
