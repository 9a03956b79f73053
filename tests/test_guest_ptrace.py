"""ptrace inside the guest: strace and a tracer of our own run in the guest
give what they give on the host; a guest tracer cannot reach outside."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from pathlib import Path

import pytest

from guestroot import describe, guest_env, run_umlpy, umlpy_run

HERE = Path(__file__).resolve().parent
STRACE = shutil.which("strace")

# what differs between two runs of one program anywhere: addresses, pids,
# random bytes, the size of the environment
NORMALIZE = (
    (re.compile(r"0x[0-9a-f]+"), "ADDR"),
    (re.compile(r"(= |si_pid=|pid |wait4\()\d+"), r"\1N"),
    (re.compile(r"/\* \d+ vars \*/"), "/* N vars */"),
    (re.compile(r'getrandom\("[^"]*"'), 'getrandom("R"'),
    (re.compile(r"\) +="), ") ="),             # strace pads results to a column
)


@pytest.fixture(scope="module")
def programs(tmp_path_factory) -> Path:
    if shutil.which("gcc") is None:
        pytest.skip("gcc missing (install gcc and libc6-dev)")
    d = tmp_path_factory.mktemp("ptrace")
    for name in ("ptrace_calls", "ptrace_escape", "fork_wait", "gdb_hello"):
        subprocess.run(["gcc", "-static", "-g", "-O0", "-o", str(d / name),
                        str(HERE / "debug" / f"{name}.c")],
                       check=True, capture_output=True, timeout=120)
    subprocess.run(["gcc", "-g", "-O0", "-o", str(d / "gdb_hello_dynamic"),
                    str(HERE / "debug" / "gdb_hello.c")], check=True, capture_output=True,
                   timeout=120)
    return d


def native(argv: list, **kw) -> subprocess.CompletedProcess:
    return subprocess.run(argv, capture_output=True, text=True, timeout=60, env=guest_env(),
                          **kw)


def guest(argv: list, upper: Path | None = None) -> subprocess.CompletedProcess:
    res = run_umlpy(umlpy_run(argv, ["--upper", str(upper)] if upper else []), timeout=60,
                    cwd="/")
    assert res.returncode == 0, describe(res)
    return res


def test_tracer_calls_match_native(programs):
    """TRACEME, GETREGS, PEEK/POKE, syscall stops (orig_rax and rax of a call the
    kernel serves), fork events with an auto-attached child, exit events."""
    want = native([str(programs / "ptrace_calls")])
    assert want.returncode == 0, want
    got = guest([str(programs / "ptrace_calls")])
    assert got.stdout == want.stdout


def _strace_ff(run, argv: list, out: Path, found: Path) -> list:
    """strace -ff: one file per process, so scheduling cannot interleave them.
    Each process's normalized lines, sorted (pids differ between runs)."""
    out.mkdir(exist_ok=True)
    res = run(["strace", "-ff", "-qq", "-o", str(out / "t"), *argv])
    assert res.returncode == 0, res
    texts = []
    for f in sorted(found.iterdir()):
        text = f.read_text()
        for pat, rep in NORMALIZE:
            text = pat.sub(rep, text)
        texts.append(text)
    return sorted(texts)


@pytest.mark.skipif(STRACE is None, reason="strace missing (apt-get install strace)")
@pytest.mark.parametrize("argv", [["fork_wait"], ["/bin/sh", "-c", "true"]],
                         ids=["static-fork", "sh-c-true"])
def test_strace_matches_native(programs, tmp_path, argv):
    argv = [str(programs / a) if (programs / a).exists() else a for a in argv]
    want = _strace_ff(lambda a: native(a, cwd="/"), argv, tmp_path / "native",
                      tmp_path / "native")
    upper = tmp_path / "upper"
    upper.mkdir()
    out = tmp_path / "guest"        # written in the guest: kept in the upper layer
    got = _strace_ff(lambda a: guest(a, upper), argv, out, upper / out.relative_to("/"))
    assert got == want


def test_tracer_cannot_escape(programs):
    """Host pids, pid 0 and -1, the kernel, another's tracee, a task it does not
    trace, a root task from another user: ESRCH or EPERM, as Linux gives."""
    res = guest([str(programs / "ptrace_escape"), str(os.getpid())])
    lines = dict(line.split(": ", 1) for line in res.stdout.splitlines())
    srch, perm = "No such process", "Operation not permitted"
    assert lines == {
        "attach host pid": srch, "seize host pid": srch, "attach pid 0": srch,
        "attach pid -1": srch, "attach self": perm, "attach parent": srch,
        "poke host pid": srch, "poke untraced child": srch, "cont untraced child": srch,
        "attach root as uid 1000": perm, "attach child": "ok", "child stopped": "19",
        "attach traced task": perm, "child end": "killed",
    }, res.stdout


# the guest's /proc has no PID/mem (gdb falls back to PTRACE_PEEK/POKE) and


@pytest.mark.skipif(shutil.which("gdb") is None, reason="gdb missing (apt-get install gdb)")
@pytest.mark.parametrize("program", ["gdb_hello", "gdb_hello_dynamic"])
def test_gdb_batch_matches_native(programs, program):
    """break main, run, bt, info registers rip, continue: gdb's own ptrace
    (TRACEME, exec SIGTRAPs, breakpoints poked into text, SETREGS of the pc,
    single-steps, xstate) gives the host's session line for line; for the
    dynamic program, info sharedlibrary too (ld.so and libc by their names)."""
    argv = ["gdb", "-batch", "-nx", "-ex", "break main", "-ex", "run", "-ex", "bt",
            "-ex", "info registers rip", "-ex", "info sharedlibrary", "-ex", "continue",
            str(programs / program)]
    want = native(argv, cwd=str(HERE.parent))
    got = run_umlpy(umlpy_run(argv), timeout=60, cwd=str(HERE.parent))
    assert got.returncode == 0, describe(got)
    # pids differ: the only thing allowed to differ from the host's session
    norm = [re.sub(r"\(process \d+\)", "(process N)", r.stdout + r.stderr) for r in (want, got)]
    assert "Breakpoint 1, main ()" in norm[0]
    assert norm[1] == norm[0]


PROC_MEM = r"""
import ctypes, errno, os, signal
buf = ctypes.create_string_buffer(b"before", 16)
addr = ctypes.addressof(buf)
r, w = os.pipe()
child = os.fork()
if child == 0:                      # waits, then shows what its parent wrote into it
    os.read(r, 1)
    print("child sees", buf.value.decode(), flush=True)
    os._exit(0)
with open(f"/proc/{child}/mem", "r+b", buffering=0) as mem:
    mem.seek(addr)
    print("parent reads", mem.read(6).decode())
    mem.seek(addr)
    mem.write(b"after\0")
os.write(w, b"x")
os.waitpid(child, 0)
other = os.fork()
if other == 0:
    os.setuid(1000)
    try:
        open(f"/proc/{os.getppid()}/mem", "rb")
        print("uid 1000 opened root's mem")
    except OSError as e:
        print("uid 1000", errno.errorcode[e.errno])
    os._exit(0)
os.waitpid(other, 0)
"""


def test_proc_pid_mem_reads_and_writes_under_the_ptrace_rule():
    """A guest reads and writes another guest process's memory through
    /proc/PID/mem as on Linux; a user who may not trace it gets EACCES."""
    want = native(["python3", "-c", PROC_MEM])
    got = run_umlpy(umlpy_run(["python3", "-c", PROC_MEM]), timeout=60)
    assert got.returncode == 0, describe(got)
    assert got.stdout == "parent reads before\nchild sees after\nuid 1000 EACCES\n", describe(got)
    if os.geteuid() != 0:       # natively only root may setuid(1000); the guest is root
        return
    assert want.stdout == got.stdout
