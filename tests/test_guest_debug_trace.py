"""--trace and --stats: the strace of umlpy, checked against the host's strace."""

from __future__ import annotations

import collections
import re
import shutil
import subprocess
from pathlib import Path

import pytest

from guestroot import describe, run_umlpy, umlpy_run
from umlpy.debug import argfmt
from umlpy.debug.session import normalize_argv
from umlpy.debug.trace import parse_filter
from umlpy.syscalls.numbers import NR

HERE = Path(__file__).resolve().parent
LINE = re.compile(r"^(\d+)\s+(?:<\.\.\. )?([a-z_0-9]+)(?:\(| resumed>)(.*?)\s+= (.*)$")


@pytest.fixture(scope="module")
def programs(tmp_path_factory) -> Path:
    if shutil.which("gcc") is None:
        pytest.skip("gcc missing (install gcc and libc6-dev)")
    d = tmp_path_factory.mktemp("trace")
    for name in ("known_calls", "fork_wait"):
        subprocess.run(["gcc", "-static", "-O0", "-o", str(d / name), str(HERE / "debug" / f"{name}.c")],
                       check=True, capture_output=True, timeout=120)
    return d


def parse(text: str) -> list:
    """(pid, name, args, result) of each completed call; strace's split calls joined."""
    out, started = [], {}
    for line in text.splitlines():
        m = re.match(r"^(\d+)\s+([a-z_0-9]+)\((.*) <unfinished \.\.\.>$", line)
        if m:
            started[m.group(1)] = (m.group(2), m.group(3))
            continue
        m = LINE.match(line)
        if m:
            pid, name, args, res = m.groups()
            if line.split(None, 1)[1].startswith("<..."):
                args = started.pop(pid, (name, ""))[1] + args
            args = args[:-1] if args.endswith(")") else args
            out.append((pid, name, args, res.strip()))
    return out


def per_process(calls: list) -> list:
    """Each process's call names, processes in order of appearance (pids differ)."""
    seqs = collections.OrderedDict()
    for pid, name, _, _ in calls:
        seqs.setdefault(pid, []).append(name)
    return list(seqs.values())


def native_strace(prog: Path, tmp_path: Path) -> str:
    if shutil.which("strace") is None:
        pytest.skip("strace missing (apt-get install strace)")
    log = tmp_path / "native.txt"
    res = subprocess.run(["strace", "-f", "-qq", "-o", str(log), str(prog)], capture_output=True,
                         timeout=60)
    assert res.returncode == 0, res
    return log.read_text()


def umlpy_trace(prog: Path, tmp_path: Path, *options: str):
    log = tmp_path / "umlpy.txt"
    res = run_umlpy(umlpy_run([str(prog)], [f"--trace={log}", *options]), timeout=60)
    assert res.returncode == 0, describe(res)
    return log.read_text(), res


def test_trace_matches_native_strace(programs, tmp_path):
    """The calls of a known program, in order, with strace's own rendering of the
    interesting ones; pids are the guest's (1), not the host's."""
    native = parse(native_strace(programs / "known_calls", tmp_path))
    text, res = umlpy_trace(programs / "known_calls", tmp_path)
    ours = parse(text)
    assert res.stdout == "done\n"
    assert per_process(ours) == per_process(native), text
    assert {pid for pid, _, _, _ in ours} == {"1"}
    want = [(n, a, r) for _, n, a, r in native if n in ("openat", "write", "close", "unlink")]
    got = [(n, a, r) for _, n, a, r in ours if n in ("openat", "write", "close", "unlink")]
    assert got == want, text
    assert ('getpid', '', '1') in [(n, a, r) for _, n, a, r in ours]
    assert text.splitlines()[-1] == "1 +++ exited with 0 +++"
    assert ours[-1][1:] == ("exit_group", "0", "?")


def stats_table(stderr: str) -> dict:
    rows = {}
    for line in stderr.splitlines():
        m = re.match(r"^\s*[\d.]+\s+[\d.]+\s+\d+\s+(\d+)\s+(\d+)?\s*([a-z_0-9]+)$", line)
        if m:
            rows[m.group(3)] = (int(m.group(1)), int(m.group(2) or 0))
    return rows


def test_trace_follows_forks_and_stats_match(programs, tmp_path):
    """-f behaviour: the child's calls under guest pid 2, wait4 returning 2, and the
    --stats table counting exactly the calls the trace shows."""
    native = parse(native_strace(programs / "fork_wait", tmp_path))
    text, res = umlpy_trace(programs / "fork_wait", tmp_path, "--stats")
    ours = parse(text)
    assert res.stdout == "child\nparent saw 3\n", describe(res)
    # the parent's isatty probe depends on where stdout goes; the rest is the program's
    strip = lambda seqs: [[n for n in s if n != "ioctl"] for s in seqs]  # noqa: E731
    assert strip(per_process(ours)) == strip(per_process(native)), text
    assert ("1", "wait4") in [(p, n) for p, n, _, _ in ours]
    assert [r for p, n, _, r in ours if n == "wait4"] == ["2"]
    assert "2 +++ exited with 3 +++" in text
    table = stats_table(res.stderr)
    counts = collections.Counter(n for _, n, _, _ in ours)
    assert {n: c for n, (c, _) in table.items() if n != "total"} == dict(counts), res.stderr
    assert table["total"][0] == len(ours)
    assert "latency" in res.stderr


def test_trace_filter(programs, tmp_path):
    text, res = umlpy_trace(programs / "known_calls", tmp_path,
                            "--trace-filter=openat,unlink", "--stats")
    names = [n for _, n, _, _ in parse(text)]
    assert names == ["openat", "unlink", "openat"], text
    assert set(stats_table(res.stderr)) == {"openat", "unlink", "total"}, res.stderr
    assert stats_table(res.stderr)["openat"] == (2, 1)


def test_trace_bad_filter_is_a_usage_error():
    res = run_umlpy(umlpy_run(["/bin/true"], ["--trace-filter=nosuchcall"]), timeout=60)
    assert res.returncode == 2 and res.stderr.count("\n") == 1, describe(res)
    assert "nosuchcall" in res.stderr


# ---- no guest: the pieces ----

def test_quote_like_strace():
    assert argfmt.quote(b'a"b\\\n\t\x01\xff') == '"a\\"b\\\\\\n\\t\\1\\377"'
    assert argfmt.quote(b"x" * 40) == '"' + "x" * 32 + '"...'


def test_flags_and_results():
    import os
    assert argfmt.open_flags(os.O_WRONLY | os.O_CREAT | os.O_TRUNC) == "O_WRONLY|O_CREAT|O_TRUNC"
    assert argfmt.open_flags(os.O_RDONLY | os.O_CLOEXEC | os.O_DIRECTORY) == \
        "O_RDONLY|O_CLOEXEC|O_DIRECTORY"
    assert argfmt.result("openat", -2) == "-1 ENOENT (No such file or directory)"
    assert argfmt.result("brk", 0x1000) == "0x1000"
    assert argfmt.result("read", -512).startswith("? ERESTARTSYS")
    assert argfmt.result("exit_group", None) == "?"


def test_parse_filter():
    assert parse_filter("read,write") == {NR["read"], NR["write"]}
    assert NR["openat"] in parse_filter("%file") and NR["read"] not in parse_filter("%file")
    assert NR["read"] not in parse_filter("!read") and NR["write"] in parse_filter("!read")
    with pytest.raises(ValueError):
        parse_filter("%bogus")


def test_bare_trace_option_does_not_eat_the_command():
    vals = {"--root", "--trace-filter"}
    assert normalize_argv(["--trace", "ls", "-l"], vals) == ["--trace=-", "ls", "-l"]
    assert normalize_argv(["--root", "--trace", "--trace", "ls"], vals) == \
        ["--root", "--trace", "--trace=-", "ls"]
    assert normalize_argv(["ls", "--trace"], vals) == ["ls", "--trace"]


def test_calls_the_accelerator_answers_are_served_under_trace(tmp_path):
    """--trace turns the accelerator's fast path off: the kernel answers
    getuid and friends itself (they were ENOSYS there once)."""
    log = tmp_path / "ids.txt"
    script = "import os; print(os.getuid(), os.geteuid(), os.getgid(), os.getegid(), os.getpid())"
    res = run_umlpy(umlpy_run(["python3", "-c", script], [f"--trace={log}"]), timeout=120)
    assert res.returncode == 0, describe(res)
    assert res.stdout.split() == ["0", "0", "0", "0", "1"]
    calls = {name: result for _pid, name, _args, result in parse(log.read_text())}
    assert calls["getuid"] == calls["getegid"] == "0", calls
    assert "ENOSYS" not in log.read_text()
