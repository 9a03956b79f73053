"""Present a SuiteResult: a text table, a JSON file, and an optional bar chart.

The JSON is the durable record (every sample, the exact argv, the machine),
so later runs and peers can be compared without re-running; the table and
the chart are views of it.
"""
from __future__ import annotations

import datetime
import json
import os
import platform
import subprocess
from pathlib import Path
from typing import TextIO

from umlpy.bench.guests import compiler
from umlpy.bench.runners import BASELINE
from umlpy.bench.suite import Cell, SuiteResult

JSON_SCHEMA = 1


def _cpu_model() -> str:
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def _tool_version(argv: list[str]) -> str | None:
    try:
        out = subprocess.run(argv, capture_output=True, text=True, timeout=10, check=False)
    except (OSError, subprocess.TimeoutExpired):
        return None
    lines = (out.stdout or out.stderr).splitlines()
    return lines[0].strip() if lines else None


def machine_info() -> dict:
    """Facts that make numbers comparable (or explain why they are not)."""
    cc = compiler()
    repo = Path(__file__).resolve().parents[2]
    # Read-only git query; the tree may have no commit yet.
    rev = _tool_version(["git", "-C", str(repo), "rev-parse", "--short", "HEAD"])
    return {
        "date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        "hostname": platform.node(),
        "kernel": platform.release(),
        "cpu_model": _cpu_model(),
        "cpus_online": os.cpu_count(),
        "cpus_allowed": len(os.sched_getaffinity(0)),
        "python": platform.python_version(),
        "compiler": _tool_version([cc, "--version"]) if cc else None,
        "umlpy_rev": rev if rev and " " not in rev else None,
    }


def to_json(result: SuiteResult, meta: dict) -> dict:
    cells = []
    summary: dict[str, dict[str, dict[str, float | None]]] = {}
    for c in result.cells:
        ratio = result.ratio(c)
        cells.append({
            "workload": c.workload, "placement": c.placement, "runner": c.runner,
            "unit": c.unit, "higher_is_better": c.higher_is_better,
            "median": c.median, "ratio_to_native": ratio,
            "samples": c.values, "wall_s": [s.wall_s for s in c.samples],
            "errors": c.errors, "unavailable": c.unavailable, "argv": c.argv,
        })
        summary.setdefault(c.workload, {}).setdefault(c.placement, {})[c.runner] = c.median
    return {"schema": JSON_SCHEMA, "meta": meta, "config": result.config,
            # summary[workload][placement][runner] = median, for quick lookups.
            "summary": summary, "results": cells}


def write_json(result: SuiteResult, meta: dict, path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(json.dumps(to_json(result, meta), indent=2) + "\n")
    os.replace(tmp, path)


def _num(value: float | None, unit: str) -> str:
    if value is None:
        return "-"
    if unit == "s":
        return f"{value:.3f}"
    return f"{value:,.0f}" if value >= 100 else f"{value:.3g}"


def _value(c: Cell | None) -> str:
    if c is None:
        return ""
    if c.unavailable:
        return "n/a"
    if c.median is None:
        return "FAILED"
    return _num(c.median, c.unit) + ("*" if c.errors else "")


def _ratio(r: float | None) -> str:
    return "-" if r is None else (f"{r:,.1f}x" if r >= 10 else f"{r:.2f}x")


def _table_rows(result: SuiteResult) -> tuple[list[str], list[list[str]]]:
    runners = list(dict.fromkeys(c.runner for c in result.cells))
    others = [r for r in runners if r != BASELINE]
    header = ["workload", "cpu", "unit", BASELINE]
    for r in others:
        header += [r, f"{r}/native"]
    rows = []
    keys = list(dict.fromkeys((c.workload, c.placement) for c in result.cells))
    for workload, placement in keys:
        base = result.cell(workload, placement, BASELINE)
        unit = base.unit if base else "?"
        row = [workload, placement, unit, _value(base)]
        for r in others:
            c = result.cell(workload, placement, r)
            row += [_value(c), _ratio(result.ratio(c)) if c else ""]
        rows.append(row)
    return header, rows


def print_table(result: SuiteResult, out: TextIO) -> None:
    header, rows = _table_rows(result)
    widths = [max(len(x) for x in col) for col in zip(header, *rows)]
    # Text columns left-aligned, numbers right-aligned.
    def line(cells: list[str]) -> str:
        return "  ".join(c.ljust(w) if i < 3 else c.rjust(w)
                         for i, (c, w) in enumerate(zip(cells, widths))).rstrip()
    cfg = result.config
    out.write(f"median of {cfg['reps']} rep(s){' (quick)' if cfg['quick'] else ''}; "
              f"cpu: pinned = CPU {cfg['cpu']}, free = unpinned; "
              f"ratio = slowdown vs native\n")
    out.write(line(header) + "\n")
    out.write(line(["-" * w for w in widths]) + "\n")
    for row in rows:
        out.write(line(row) + "\n")
    for c in result.cells:
        for err in dict.fromkeys(c.errors):
            out.write(f"* {c.workload}/{c.placement}/{c.runner}: {err}\n")


def plot(result: SuiteResult, path: Path) -> str | None:
    """Bar chart of ratios to native; returns a note if it was skipped."""
    try:
        import matplotlib
        matplotlib.use("Agg")  # no display needed
        import matplotlib.pyplot as plt
    except ImportError:
        return "matplotlib not installed: no plot (pip install matplotlib)"
    others = [r for r in dict.fromkeys(c.runner for c in result.cells) if r != BASELINE]
    keys = list(dict.fromkeys((c.workload, c.placement) for c in result.cells))
    if not others or not keys:
        return "nothing to plot (no runner besides native)"
    # Wide enough for every bar, but a page, not a banner (peers make 4-5 bars a group).
    width_in = min(26.0, max(8.0, 0.22 * len(keys) * len(others) + 2.0))
    fig, ax = plt.subplots(figsize=(width_in, 6.0))
    width = 0.8 / len(others)
    for i, r in enumerate(others):
        ratios = []
        for k in keys:
            c = result.cell(k[0], k[1], r)
            ratios.append((result.ratio(c) if c else None) or 0.0)
        xs = [j + (i - (len(others) - 1) / 2) * width for j in range(len(keys))]
        bars = ax.bar(xs, ratios, width, label=r)
        for bar, v in zip(bars, ratios):
            if v:
                ax.annotate(_ratio(v), (bar.get_x() + bar.get_width() / 2, v),
                            ha="center", va="bottom", fontsize=6, rotation=90)
    ax.axhline(1.0, color="black", linewidth=0.8)
    ax.set_yscale("log")  # ratios span 1x to 1000x
    ax.set_xticks(range(len(keys)))
    ax.set_xticklabels([f"{w}\n{p}" for w, p in keys], fontsize=8)
    ax.set_ylabel("time relative to native (log)")
    ax.set_title("umlpy benchmark: slowdown vs native (median)")
    ax.legend()
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return None
