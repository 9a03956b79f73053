"""Profiling umlpy itself: cProfile (the gprof of umlpy) and coverage.py (its gcov).

Both watch the kernel's event-loop thread, where every syscall is served;
coverage also follows the worker threads (deferred calls, the gdb server).
"""
from __future__ import annotations

import os
import sys
from typing import Optional, TextIO


class KernelProfile:
    """cProfile around the kernel; the stats file reads with `python -m pstats FILE`."""

    def __init__(self, path: str) -> None:
        import cProfile
        self.path = path
        self.prof = cProfile.Profile()

    def start(self) -> None:
        self.prof.enable()

    def stop(self, note: Optional[TextIO] = sys.stderr) -> None:
        self.prof.disable()
        self.prof.dump_stats(self.path)
        if note is not None:
            note.write(f"umlpy: profile written to {self.path} "
                       f"(python3 -m pstats {self.path}, then: sort cumtime, stats 20)\n")


class KernelCoverage:
    """coverage.py over the umlpy package; report with `python3 -m coverage report`."""

    def __init__(self, data_file: Optional[str] = None) -> None:
        try:
            import coverage
        except ImportError:
            raise ValueError("--coverage needs coverage.py (pip install coverage)") from None
        pkg = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
        self.data_file = os.path.abspath(data_file or os.environ.get("COVERAGE_FILE", ".coverage"))
        self.cov = coverage.Coverage(data_file=self.data_file, source=[pkg],
                                     concurrency=["thread"])

    def start(self) -> None:
        self.cov.start()

    def stop(self, note: Optional[TextIO] = sys.stderr) -> None:
        self.cov.stop()
        self.cov.save()
        if note is not None:
            note.write(f"umlpy: coverage data in {self.data_file} "
                       f"(COVERAGE_FILE={self.data_file} python3 -m coverage report)\n")
