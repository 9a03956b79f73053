"""The debug options of one umlpy run, from the command line to the reports at exit."""
from __future__ import annotations

import sys
from typing import List, Optional, TextIO

from umlpy.debug.profile import KernelCoverage, KernelProfile

STDERR = "-"


def normalize_argv(argv: List[str], value_options: set) -> List[str]:
    """`--trace` alone means "to stderr": argparse would take the command that
    follows as its FILE, so a bare --trace before the command becomes --trace=-."""
    out = list(argv)
    i = 0
    while i < len(out):
        a = out[i]
        if a == "--" or not a.startswith("-"):
            break
        if a == "--trace":
            out[i] = "--trace=" + STDERR
        elif a in value_options:
            i += 1                              # skip its value
        i += 1
    return out


class DebugSession:
    """What --trace, --trace-filter, --stats, --profile, --coverage and --gdb ask for."""

    def __init__(self, trace: Optional[str] = None, trace_filter: Optional[str] = None,
                 stats: bool = False, profile: Optional[str] = None, coverage: bool = False,
                 gdb: Optional[str] = None, gdb_attach: bool = False) -> None:
        self.trace_path = trace
        self.stats_wanted = stats
        self.only = None
        if trace_filter is not None:
            from umlpy.debug.trace import parse_filter
            self.only = parse_filter(trace_filter)      # ValueError: a usage error
        self.profile = KernelProfile(profile) if profile else None
        self.coverage = KernelCoverage() if coverage else None
        self.gdb_spec = gdb
        self.gdb_attach = gdb_attach
        if gdb_attach and gdb is None:
            raise ValueError("--gdb-attach needs --gdb PORT")
        self.out: Optional[TextIO] = None
        self.systrace = None
        self.stats = None
        self.gdb = None

    @classmethod
    def from_args(cls, args) -> "DebugSession":
        return cls(args.trace, args.trace_filter, args.stats, args.profile, args.coverage,
                   args.gdb, args.gdb_attach)

    def begin(self) -> None:
        """Before the kernel is imported, so coverage sees module-level code too."""
        if self.coverage is not None:
            self.coverage.start()

    def attach(self, kernel) -> None:
        """Before the first process starts: the hooks the kernel calls."""
        if self.trace_path is not None or self.stats_wanted:
            from umlpy.debug.stats import SyscallStats
            from umlpy.debug.trace import SyscallTrace
            if self.trace_path is not None:
                self.out = sys.stderr if self.trace_path == STDERR else \
                    open(self.trace_path, "w", buffering=1 << 16)
            self.stats = SyscallStats() if self.stats_wanted else None
            self.systrace = SyscallTrace(self.out, self.stats, self.only)
            kernel.systrace = self.systrace
            kernel.tracer.set_fast_path(False)      # getpid and friends must stop too
        if self.gdb_spec is not None:
            from umlpy.debug.gdbstub.server import FIRST, GdbServer
            self.gdb = GdbServer.from_spec(kernel, self.gdb_spec,
                                           FIRST if self.gdb_attach else None)
            kernel.debugger = self.gdb.hooks

    def running(self) -> None:
        """The kernel's loop is about to run."""
        if self.gdb is not None:
            self.gdb.start()
        if self.profile is not None:
            self.profile.start()

    def finish(self, kernel, err: TextIO = sys.stderr) -> None:
        if self.profile is not None:
            self.profile.stop(err)
        if self.gdb is not None:
            self.gdb.close()
        if self.systrace is not None:
            self.systrace.close()
            if self.out is not None and self.out is not sys.stderr:
                self.out.close()
        if self.stats is not None:
            self.stats.report(err)
            counts = dict(kernel.tracer.stats(), oopses=kernel.oopses)
            err.write("umlpy: " + " ".join(f"{k}={v}" for k, v in counts.items()) + "\n")
        if self.coverage is not None:
            self.coverage.stop(err)


def gdb_attach(kernel, pid: int, port: int) -> str:
    """mconsole `gdb PID PORT` (mconsole thread): a gdb stub on 127.0.0.1:PORT for
    guest process pid of a running kernel. The process runs on until gdb connects,
    then stops; when gdb detaches or goes away it runs on and the stub is gone."""
    import signal
    import threading
    from umlpy.debug.gdbstub.server import GdbServer
    if kernel.debugger is not None:
        raise ValueError("a gdb stub is already running")
    group = kernel.pids.groups.get(pid)
    if group is None or group.zombie:
        raise LookupError("Couldn't find that pid")
    server = GdbServer(kernel, port, attach=pid, once=True)     # OSError: port in use
    kernel.debugger = server.hooks
    server.start(announce=False)
    # the loop may be asleep in a poll that predates the stub's wake-up fd: a
    # SIGCHLD (read by the loop's signalfd) makes it poll again with it
    signal.pthread_kill(threading.main_thread().ident, signal.SIGCHLD)
    return f"gdb stub for pid {pid} on 127.0.0.1:{server.port}"
