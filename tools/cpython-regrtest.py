#!/usr/bin/env python3
"""Run CPython's own regression tests natively and inside `umlpy run`, per test case.

Each module is run twice with the same interpreter and the same command line:
once natively and once as a guest of `umlpy run` (by default with its default
root, the overlay of the host's `/`).  regrtest writes a JUnit XML file of its
test cases; the script that runs it prints that file on stdout after the run,
so the results come back even when the guest's writes vanish at exit.  When a
run is killed (timeout, crash) before regrtest writes the XML, the `-v` log is
parsed instead, which keeps the cases that finished.

    tools/cpython-regrtest.py                       # the default module list
    tools/cpython-regrtest.py test_stat test_glob --timeout 300 --json out.json

Prints a progress line per module, then a table (module, cases passed natively,
passed in the guest, ratio), the overall ratio, and every test case that passes
natively but not in the guest with the first line of its failure.  The ratio is
|passed natively AND in the guest| / |passed natively|: a case that passes only
in the guest does not make up for one that fails there.
"""
from __future__ import annotations

import argparse
import dataclasses
import json
import os
import re
import shlex
import signal
import subprocess
import sys
import tempfile
import time
import xml.etree.ElementTree as ET
from pathlib import Path
from typing import Optional, Sequence

REPO = Path(__file__).resolve().parent.parent

DEFAULT_MODULES: tuple[str, ...] = (
    "test_os", "test_posix", "test_stat", "test_shutil", "test_tempfile", "test_glob",
    "test_fileio", "test_io", "test_mmap", "test_fcntl", "test_pathlib", "test_tarfile",
    "test_zipfile", "test_subprocess", "test_signal", "test_select", "test_pty", "test_sqlite3",
)

# umlpy from this checkout, whatever is installed (an editable install may point elsewhere).
BOOT = ("import sys; sys.path.insert(0, {repo!r}); from umlpy.cli import main; "
        "sys.exit(main())")

PASS, FAIL, ERROR, SKIP, MISSING = "pass", "fail", "error", "skip", "missing"

# `-v` lines: "test_x (test.test_mod.Class.test_x) ... ok"; a docstring may put the
# outcome on the next line, so the " ... outcome" part is matched separately.
_V_CASE = re.compile(r"^(\w+) \(([\w.]+)\)")
_V_OUTCOME = re.compile(r"\.\.\. (ok|FAIL|ERROR|skipped\b.*|expected failure|unexpected success)\s*$")


@dataclasses.dataclass
class Case:
    status: str          # pass, fail, error, skip
    detail: str = ""     # first line of the failure or the skip reason


@dataclasses.dataclass
class Run:
    module: str
    where: str                      # "native" or "guest"
    returncode: Optional[int]
    seconds: float
    timed_out: bool
    source: str                     # "junit", "verbose-log" or "none"
    cases: dict[str, Case]
    log: str                        # path of the full log
    tail: str                       # last lines of the log, for crashes

    @property
    def passed(self) -> set[str]:
        return {k for k, c in self.cases.items() if c.status == PASS}

    def count(self, status: str) -> int:
        return sum(1 for c in self.cases.values() if c.status == status)

    def summary(self) -> dict:
        return {"returncode": self.returncode, "seconds": round(self.seconds, 2),
                "timed_out": self.timed_out, "source": self.source,
                "passed": self.count(PASS), "failed": self.count(FAIL),
                "errors": self.count(ERROR), "skipped": self.count(SKIP), "log": self.log}


def first_line(text: str) -> str:
    for line in (text or "").splitlines():
        if line.strip():
            return line.strip()[:300]
    return ""


_CHAINED = re.compile(r"\n(?:During handling of the above exception, another exception occurred"
                      r"|The above exception was the direct cause of the following exception):\n")


def failure_line(message: str) -> str:
    """The first line of the exception a test died of: of the last one in a chain, and
    without the traceback text of the earlier ones."""
    last = _CHAINED.split(message or "")[-1]
    lines = [ln for ln in last.splitlines()
             if ln.strip() and not ln.startswith((" ", "Traceback (most recent call last)"))]
    return lines[0].strip()[:300] if lines else first_line(message)


def parse_junit(xml_text: str) -> dict[str, Case]:
    """Test cases of a regrtest JUnit file (libregrtest/testresult.py writes it)."""
    root = ET.fromstring(xml_text)
    cases: dict[str, Case] = {}
    for tc in root.iter("testcase"):
        name = tc.get("name", "")
        failure, error, skipped = tc.find("failure"), tc.find("error"), tc.find("skipped")
        if error is not None:
            cases[name] = Case(ERROR, failure_line(error.get("message") or error.text or ""))
        elif failure is not None:
            cases[name] = Case(FAIL, failure_line(failure.get("message") or failure.text or ""))
        elif tc.get("outcome") == "UNEXPECTED_SUCCESS":
            cases[name] = Case(FAIL, "unexpected success")
        elif skipped is not None:
            cases[name] = Case(SKIP, first_line(skipped.text or ""))
        else:
            cases[name] = Case(PASS)       # expected failures are passes, as unittest says
    return cases


def parse_verbose_log(text: str) -> dict[str, Case]:
    """Cases that reached an outcome in a `-v` log (used when no XML was written)."""
    cases: dict[str, Case] = {}
    pending: Optional[str] = None
    for line in text.splitlines():
        m = _V_CASE.match(line)
        if m:
            pending = m.group(2)
        o = _V_OUTCOME.search(line)
        if pending and o:
            word = o.group(1)
            if word in ("ok", "expected failure"):
                cases[pending] = Case(PASS)
            elif word == "FAIL" or word == "unexpected success":
                cases[pending] = Case(FAIL, "see log")
            elif word == "ERROR":
                cases[pending] = Case(ERROR, "see log")
            else:
                cases[pending] = Case(SKIP, word)
            pending = None
    return cases


def regrtest_script(python: str, module: str) -> str:
    """The shell script run natively and in the guest: regrtest's output goes to
    stderr, its JUnit file to stdout. TMPDIR is a fresh directory so that runs
    (native, guest, concurrent ones) never share scratch files."""
    return f"""
d=$(mktemp -d /tmp/cpython-regrtest.XXXXXX) || exit 125
cd "$d" || exit 125
TMPDIR="$d" {shlex.quote(python)} -m test -v --junit-xml "$d/junit.xml" {shlex.quote(module)} 1>&2
rc=$?
cat "$d/junit.xml" 2>/dev/null
cd / && rm -rf "$d"
exit $rc
"""


def run_env() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items()
           if not k.startswith("PYTHON") and k not in ("LD_PRELOAD", "LD_LIBRARY_PATH")}
    env.setdefault("PATH", "/usr/local/bin:/usr/bin:/bin")
    env["TERM"] = "dumb"
    return env


def run_one(module: str, where: str, argv: Sequence[str], timeout: float, log_dir: Path) -> Run:
    log = log_dir / f"{module}.{where}.log"
    t0 = time.monotonic()
    timed_out = False
    with open(log, "wb") as logf:
        # A session of its own, so a timeout kills umlpy and every guest (or native) child.
        proc = subprocess.Popen(list(argv), stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                                stderr=logf, env=run_env(), cwd="/", start_new_session=True)
        try:
            out, _ = proc.communicate(timeout=timeout)
        except subprocess.TimeoutExpired:
            timed_out = True
            _killpg(proc.pid)
            out, _ = proc.communicate()
        finally:
            _killpg(proc.pid)
    seconds = time.monotonic() - t0
    text = log.read_text(errors="replace")
    tail = "\n".join(text.splitlines()[-15:])
    xml_text = out.decode(errors="replace").strip()
    cases: dict[str, Case] = {}
    source = "none"
    if xml_text.startswith("<"):
        try:
            cases, source = parse_junit(xml_text), "junit"
        except ET.ParseError:
            cases = {}
    if not cases:
        cases = parse_verbose_log(text)
        source = "verbose-log" if cases else "none"
    return Run(module, where, None if timed_out else proc.returncode, seconds, timed_out,
               source, cases, str(log), tail)


def _killpg(pid: int) -> None:
    try:
        os.killpg(pid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        pass


def find_lib_test(python: str) -> str:
    """The Lib/test directory of `python`, which must hold regrtest."""
    out = subprocess.run(
        [python, "-c", "import os, sysconfig; "
                       "print(os.path.join(sysconfig.get_paths()['stdlib'], 'test'))"],
        capture_output=True, text=True, timeout=60, env=run_env())
    path = out.stdout.strip()
    if out.returncode != 0 or not os.path.isfile(os.path.join(path, "libregrtest", "main.py")):
        raise SystemExit(f"cpython-regrtest: {python} has no regression test suite "
                         f"(looked in {path!r}); pass --python with a full CPython install")
    return path


# Why a run stopped early, most telling first: the kernel's oops, a fatal error, a signal.
_CRASH = (re.compile(r"umlpy: oops: .*"), re.compile(r"Fatal Python error: .*"),
          re.compile(r"^(Killed|Segmentation fault.*|Aborted.*|Bus error.*)$", re.M))


def crash_reason(run: Run) -> str:
    if run.timed_out:
        return "module timed out"
    try:
        text = Path(run.log).read_text(errors="replace")
    except OSError:
        text = run.tail
    for pattern in _CRASH:
        hits = pattern.findall(text)
        if hits:
            return f"module died (exit status {run.returncode}): {hits[-1].strip()[:200]}"
    last = (text.strip().splitlines() or [""])[-1]
    return f"not run (module exit status {run.returncode}; log ends: {last.strip()[:200]})"


def regressions(native: Run, guest: Run) -> list[dict]:
    """Cases that pass natively but not in the guest, with why."""
    rows = []
    why_missing = crash_reason(guest) if native.passed - set(guest.cases) else ""
    for name in sorted(native.passed - guest.passed):
        c = guest.cases.get(name)
        if c is None:
            why = why_missing
            rows.append({"test": name, "guest": MISSING, "detail": why})
        else:
            rows.append({"test": name, "guest": c.status, "detail": c.detail})
    return rows


def print_lost(lost: Sequence[dict]) -> None:
    """One line per case; the cases a dead module never ran, one line per module."""
    missing: dict[str, list[dict]] = {}
    for r in lost:
        if r["guest"] == MISSING:
            missing.setdefault(r["module"], []).append(r)
        else:
            print(f"  {r['test']}: {r['guest']}: {r['detail']}")
    for module, rows in missing.items():
        print(f"  {module}: {len(rows)} cases not run in the guest: {rows[0]['detail']}")


def main(argv: Optional[Sequence[str]] = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("modules", nargs="*", default=list(DEFAULT_MODULES),
                   help="test modules (default: the 18 of the VFS acceptance list)")
    p.add_argument("--python", default=sys.executable,
                   help="the interpreter whose Lib/test is run, natively and in the guest "
                        "(default: this one)")
    p.add_argument("--timeout", type=float, default=900.0,
                   help="seconds per module and side before it is killed (default 900)")
    p.add_argument("--json", metavar="FILE", help="write the results as JSON to FILE")
    p.add_argument("--log-dir", metavar="DIR",
                   help="keep every run's regrtest log here (default: a temporary directory)")
    p.add_argument("--only", choices=("native", "guest"),
                   help="run one side only (for timing or debugging)")
    p.add_argument("--umlpy-arg", action="append", default=[], metavar="ARG",
                   help="an extra argument for `umlpy run` (repeat), e.g. --umlpy-arg=--cpu=all")
    p.add_argument("--min-ratio", type=float, default=None,
                   help="exit with status 1 if the overall ratio is below this")
    args = p.parse_args(argv)

    python = os.path.abspath(args.python)
    find_lib_test(python)
    log_dir = Path(args.log_dir or tempfile.mkdtemp(prefix="cpython-regrtest-logs-"))
    log_dir.mkdir(parents=True, exist_ok=True)
    umlpy = [sys.executable, "-c", BOOT.format(repo=str(REPO)), "run", *args.umlpy_arg, "--"]
    sides = [s for s in ("native", "guest") if args.only in (None, s)]
    print(f"cpython-regrtest: {python}, {len(args.modules)} modules, logs in {log_dir}", flush=True)

    results: list[dict] = []
    lost: list[dict] = []
    total_native = total_both = 0
    for i, module in enumerate(args.modules, 1):
        cmd = ["/bin/sh", "-c", regrtest_script(python, module)]
        runs: dict[str, Run] = {}
        for where in sides:
            runs[where] = run_one(module, where, cmd if where == "native" else umlpy + cmd,
                                  args.timeout, log_dir)
        row: dict = {"module": module}
        row.update({w: r.summary() for w, r in runs.items()})
        parts = [f"{w} {r.count(PASS)} passed {r.seconds:.1f}s"
                 + (" TIMEOUT" if r.timed_out else "") + ("" if r.cases else " (no results)")
                 for w, r in runs.items()]
        if len(runs) == 2:
            n, g = runs["native"], runs["guest"]
            both = len(n.passed & g.passed)
            row["ratio"] = both / len(n.passed) if n.passed else 1.0
            row["regressions"] = regressions(n, g)
            lost += [dict(r, module=module) for r in row["regressions"]]
            total_native += len(n.passed)
            total_both += both
            parts.append(f"ratio {row['ratio']:.3f}")
        print(f"[{i:2}/{len(args.modules)}] {module:16} " + " | ".join(parts), flush=True)
        results.append(row)

    overall = total_both / total_native if total_native else None
    if len(sides) == 2:
        print()
        print(f"{'module':16} {'native':>7} {'guest':>7} {'ratio':>7} {'t-nat':>7} {'t-guest':>8}")
        for row in results:
            print(f"{row['module']:16} {row['native']['passed']:7} {row['guest']['passed']:7} "
                  f"{row['ratio']:7.3f} {row['native']['seconds']:7.1f} {row['guest']['seconds']:8.1f}")
        print(f"{'overall':16} {total_native:7} {total_both:7} "
              f"{overall if overall is not None else float('nan'):7.3f}")
        if lost:
            print(f"\npassing natively but not in the guest ({len(lost)}):")
            print_lost(lost)
    else:
        for row in results:
            r = row[sides[0]]
            print(f"{row['module']:16} passed {r['passed']:5} failed {r['failed']:3} "
                  f"errors {r['errors']:3} skipped {r['skipped']:4} {r['seconds']:8.1f}s")

    if args.json:
        with open(args.json, "w") as f:
            json.dump({"python": python, "umlpy_args": args.umlpy_arg, "modules": results,
                       "overall": {"native_passed": total_native, "passed_in_both": total_both,
                                   "ratio": overall},
                       "regressions": lost}, f, indent=1)
    if args.min_ratio is not None and (overall is None or overall < args.min_ratio):
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
