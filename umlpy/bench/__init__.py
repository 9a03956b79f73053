"""umlpy's benchmark suite: `python -m umlpy.bench --help`.

Workloads (workloads.py) are run under runners (runners.py: native, umlpy,
later peers) pinned to one CPU and free, several times, alternating; the
medians and their ratios to native are printed and saved (report.py).
"""
from umlpy.bench.runners import RUNNERS, Runner
from umlpy.bench.suite import SuiteResult, run_suite
from umlpy.bench.workloads import WORKLOADS, Workload
from umlpy.bench import peers, trees  # noqa: F401  (register peers and the tar workloads)

__all__ = ["RUNNERS", "Runner", "SuiteResult", "WORKLOADS", "Workload", "run_suite"]
