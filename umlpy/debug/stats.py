"""`strace -c` for the guest: per-syscall counts, errors, time and a latency histogram.

Times are as the kernel sees them: from the stop or notification that brought
the call in to its completion, ptrace round trips included.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Dict, List, TextIO

# histogram buckets (upper bounds, microseconds)
BUCKETS_US = (10, 100, 1_000, 10_000, 100_000)


@dataclass
class SyscallStat:
    calls: int = 0
    errors: int = 0
    total_ns: int = 0
    hist: List[int] = field(default_factory=lambda: [0] * (len(BUCKETS_US) + 1))

    def add(self, ns: int, failed: bool) -> None:
        self.calls += 1
        self.total_ns += ns
        if failed:
            self.errors += 1
        us = ns / 1000
        for i, bound in enumerate(BUCKETS_US):
            if us < bound:
                self.hist[i] += 1
                return
        self.hist[-1] += 1


class SyscallStats:
    def __init__(self) -> None:
        self.by_name: Dict[str, SyscallStat] = {}

    def add(self, name: str, ns: int, failed: bool) -> None:
        s = self.by_name.get(name)
        if s is None:
            s = self.by_name[name] = SyscallStat()
        s.add(ns, failed)

    def counts(self) -> Dict[str, int]:
        return {n: s.calls for n, s in self.by_name.items()}

    def report(self, out: TextIO) -> None:
        """The table `strace -c` prints, then the latency histogram."""
        rows = sorted(self.by_name.items(), key=lambda kv: (-kv[1].total_ns, kv[0]))
        total_ns = sum(s.total_ns for _, s in rows) or 1
        dash = "------ ----------- ----------- --------- --------- ----------------"
        out.write("% time     seconds  usecs/call     calls    errors syscall\n" + dash + "\n")
        for name, s in rows:
            errs = str(s.errors) if s.errors else ""
            out.write(f"{100 * s.total_ns / total_ns:6.2f} {s.total_ns / 1e9:11.6f} "
                      f"{s.total_ns // 1000 // max(s.calls, 1):11d} {s.calls:9d} {errs:>9} {name}\n")
        calls = sum(s.calls for _, s in rows)
        errors = sum(s.errors for _, s in rows)
        out.write(dash + "\n")
        out.write(f"100.00 {sum(s.total_ns for _, s in rows) / 1e9:11.6f} "
                  f"{sum(s.total_ns for _, s in rows) // 1000 // max(calls, 1):11d} "
                  f"{calls:9d} {errors or '':>9} total\n")
        heads = [f"<{b}us" if b < 1000 else f"<{b // 1000}ms" for b in BUCKETS_US]
        heads.append(f">={BUCKETS_US[-1] // 1000}ms")
        out.write("\nlatency   " + " ".join(f"{h:>8}" for h in heads) + " syscall\n")
        for name, s in sorted(self.by_name.items(), key=lambda kv: -kv[1].calls):
            out.write("          " + " ".join(f"{c:8d}" for c in s.hist) + f" {name}\n")
