"""Smoke test of the benchmark suite: a quick getpid run, natively and under umlpy."""
from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]

# The suite compiles its guest programs with `gcc -O2 -static` at run time.
pytestmark = pytest.mark.skipif(shutil.which(os.environ.get("CC", "gcc")) is None,
                                reason="gcc not installed: the benchmark compiles its "
                                       "guest programs with gcc -static")


def test_bench_quick_getpid(tmp_path: Path) -> None:
    out = tmp_path / "bench.json"
    # Measure this tree, whichever way umlpy happens to be installed.
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(REPO), env.get("PYTHONPATH")]))
    proc = subprocess.run(
        [sys.executable, "-m", "umlpy.bench", "--quick", "--workloads", "getpid",
         "--reps", "1", "--json", str(out), "--plot", str(tmp_path / "bench.png")],
        cwd=REPO, env=env, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, f"stdout:\n{proc.stdout}\nstderr:\n{proc.stderr}"
    assert "getpid" in proc.stdout  # the table

    data = json.loads(out.read_text())
    per_placement = data["summary"]["getpid"]
    assert set(per_placement) == {"pinned", "free"}
    for placement, medians in per_placement.items():
        for runner in ("native", "umlpy"):
            value = medians.get(runner)
            assert value is not None and value > 0, (placement, runner, data["results"])
    umlpy = [r for r in data["results"] if r["runner"] == "umlpy"]
    assert all(r["ratio_to_native"] and r["ratio_to_native"] > 0 for r in umlpy)


def test_bench_quick_new_workloads(tmp_path: Path) -> None:
    """compute, pipe, tar x and python start-up run natively and under umlpy,
    and the compute ratio is what native guest code should give: about 1."""
    out = tmp_path / "bench.json"
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(REPO), env.get("PYTHONPATH")]))
    proc = subprocess.run(
        [sys.executable, "-m", "umlpy.bench", "--quick", "--reps", "1",
         "--workloads", "compute,pipe,tarx,python", "--placements", "pinned",
         "--runners", "umlpy", "--json", str(out), "--no-plot", "-q"],
        cwd=REPO, env=env, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, f"stdout:\n{proc.stdout}\nstderr:\n{proc.stderr}"
    summary = json.loads(out.read_text())["summary"]
    for name in ("compute", "pipe", "tarx", "python"):
        medians = summary[name]["pinned"]
        assert medians["native"] and medians["umlpy"], (name, medians)
    compute = summary["compute"]["pinned"]
    # No syscalls in the timed loop: anything far from 1 means guest code is
    # not running natively (generous bounds: this VM's CPUs are shared).
    assert 0.5 < compute["umlpy"] / compute["native"] < 2.0, compute
