"""The registry of runners: how to run a command natively or in a sandbox.

A Runner turns a workload's command (an argv as it would run on the host)
into the argv that runs it under that runner, pinned to one CPU or free.
Native is the baseline every ratio is taken against. Peers (issue 6: proot,
runsc with its ptrace/systrap platforms, user-mode-linux) are further
subclasses: each says whether it is usable here (`unavailable()`), and how it
pins (taskset for the peers that have no option of their own).
"""
from __future__ import annotations

from umlpy.bench.registry import add_unique

import importlib.util
import os
import shutil
import sys
from dataclasses import dataclass

BASELINE = "native"


@dataclass(frozen=True)
class Runner:
    name: str
    description: str

    def unavailable(self) -> str | None:
        """Why this runner cannot run here, or None if it can."""
        return None

    def argv(self, command: list[str], cpu: int | None) -> list[str]:
        """The argv running `command`, on CPU `cpu`, or anywhere if None."""
        raise NotImplementedError

    def prepare(self) -> None:
        """Bring the runner to its installed state before anything is timed."""


def taskset(cpu: int | None) -> list[str]:
    """Prefix pinning a command (and everything it forks) to one CPU."""
    return [] if cpu is None else ["taskset", "-c", str(cpu)]


@dataclass(frozen=True)
class NativeRunner(Runner):
    """The command as a plain host process."""

    def unavailable(self) -> str | None:
        return None if shutil.which("taskset") else "taskset not found (util-linux)"

    def argv(self, command: list[str], cpu: int | None) -> list[str]:
        return [*taskset(cpu), *command]


@dataclass(frozen=True)
class UmlpyRunner(Runner):
    """`umlpy run`, through this interpreter so no console script is needed.

    umlpy pins itself (`--cpu N`, or `--cpu all` to leave it free) rather
    than through taskset, because where the supervisor runs relative to its
    guests is its own decision, and its default must be what is measured.
    """

    def unavailable(self) -> str | None:
        try:
            found = importlib.util.find_spec("umlpy.cli") is not None
        except (ImportError, ValueError):
            found = False
        return None if found else "umlpy.cli is not importable (CLI not built yet?)"

    def prepare(self) -> None:
        # `pip install .` compiles umlpy's bytecode; a checkout run with
        # PYTHONDONTWRITEBYTECODE set would compile every module at every start
        # (about 200 ms here), which no installed umlpy pays.
        import compileall
        import umlpy
        compileall.compile_dir(os.path.dirname(umlpy.__file__), quiet=2)

    def argv(self, command: list[str], cpu: int | None) -> list[str]:
        where = "all" if cpu is None else str(cpu)
        return [sys.executable, "-m", "umlpy.cli", "run", "--cpu", where, "--", *command]


RUNNERS: dict[str, Runner] = {}


def register(runner: Runner) -> Runner:
    """Add a runner to the registry (names are unique)."""
    return add_unique(RUNNERS, runner.name, runner, "runner")


register(NativeRunner("native", "host process (taskset -c N when pinned)"))
register(UmlpyRunner("umlpy", "python -m umlpy.cli run --cpu N|all"))

DEFAULT_RUNNERS: tuple[str, ...] = ("native", "umlpy")


def select(names: str | None) -> list[Runner]:
    """Runners named in a comma-separated list; by default native, umlpy and
    every peer installed here (`--runners all` asks for every peer, so one
    that is missing shows as unavailable in the results).

    The baseline always comes first, added if missing, so every row has
    something to take a ratio against and runs alternate starting with it.
    """
    from umlpy.bench.peers import PEERS
    if not names:
        names = ",".join([*DEFAULT_RUNNERS, *(p for p in PEERS if RUNNERS[p].unavailable() is None)])
    elif names == "all":
        names = ",".join([*DEFAULT_RUNNERS, *PEERS])
    wanted = [n.strip() for n in names.split(",") if n.strip()]
    for name in wanted:
        if name not in RUNNERS:
            raise KeyError(f"unknown runner {name!r}; known: {', '.join(RUNNERS)}")
    ordered = [BASELINE] + [n for n in dict.fromkeys(wanted) if n != BASELINE]
    return [RUNNERS[n] for n in ordered]
