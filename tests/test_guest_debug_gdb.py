"""--gdb: Debian's gdb drives a guest process through umlpy's remote stub."""

from __future__ import annotations

import os
import select
import shutil
import socket
import subprocess
import time
from pathlib import Path

import pytest

from guestroot import guest_env, kill_group, umlpy_run

HERE = Path(__file__).resolve().parent


@pytest.fixture(scope="module")
def debuggees(tmp_path_factory) -> Path:
    for tool in ("gcc", "gdb"):
        if shutil.which(tool) is None:
            pytest.skip(f"{tool} missing (apt-get install {tool})")
    d = tmp_path_factory.mktemp("gdb")
    for name, extra in (("gdb_hello", []), ("gdb_threads", ["-pthread"])):
        subprocess.run(["gcc", "-static", "-g", "-O0", *extra, "-o", str(d / name),
                        str(HERE / "debug" / f"{name}.c")],
                       check=True, capture_output=True, timeout=120)
    return d


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def gdb_batch(prog: Path, target: str, commands: list) -> str:
    argv = ["gdb", "-batch", "-nx", "-ex", "set confirm off"]
    if target:
        argv += ["-ex", target]
    for c in commands:
        argv += ["-ex", c]
    res = subprocess.run(argv + [str(prog)], capture_output=True, text=True, timeout=90,
                         env=guest_env())
    return res.stdout + res.stderr


def under_stub(prog: Path, commands: list) -> tuple:
    """Run prog under `umlpy run --gdb PORT` and the gdb script against it."""
    port = free_port()
    proc = subprocess.Popen(umlpy_run([str(prog)], ["--gdb", str(port)]),
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            env=guest_env(), start_new_session=True)
    try:
        deadline = time.monotonic() + 30
        banner = ""
        while "listening" not in banner and time.monotonic() < deadline:
            ready, _, _ = select.select([proc.stderr], [], [], 1)
            if ready:
                banner += proc.stderr.readline()
        assert "listening" in banner, banner
        out = gdb_batch(prog, f"target remote 127.0.0.1:{port}", commands)
        stdout, stderr = proc.communicate(timeout=60)
    finally:
        kill_group(proc)
    return out, stdout, proc.returncode


def lines_after(out: str, marker: str) -> str:
    return out[out.index(marker):] if marker in out else out


def test_gdb_session_on_a_guest(debuggees):
    """The acceptance script: break main, continue, registers, x/s, bt, next, kill,
    with the same answers as gdb running the program natively."""
    prog = debuggees / "gdb_hello"
    script = ["break main", "continue", "info registers rip", "x/s greeting", "bt", "next",
              "next", "print n", "info threads", "kill"]
    out, stdout, code = under_stub(prog, script)
    assert "Breakpoint 1, main () at" in out, out
    assert "rip            0x" in out and "<main+" in out, out
    assert '"hello from the guest"' in out, out
    assert "#0  main () at" in out, out
    assert "7\t    size_t len = strlen(greeting);" in out, out
    assert "8\t    printf(" in out, out
    assert "$1 = 49" in out, out
    assert "* 1    Thread 1" in out, out
    assert "killed" in out, out
    assert stdout == "" and code != 0             # killed before its printf
    native = gdb_batch(prog, "", ["break main", "run", "info registers rip", "x/s greeting",
                                  "bt", "next", "next", "print n", "kill"])
    pick = lambda text: [ln for ln in text.splitlines()  # noqa: E731
                         if ln.startswith(("rip ", "#0", "7\t", "8\t", "$1")) or ':\t"' in ln]
    assert pick(out) == pick(native), (out, native)


def test_gdb_threads(debuggees):
    """info threads on a threaded guest: both threads, in guest tids, then it runs to the end."""
    prog = debuggees / "gdb_threads"
    out, stdout, code = under_stub(prog, ["break checkpoint", "continue", "info threads",
                                          "thread 2", "continue"])
    assert "hit Breakpoint 1, checkpoint () at" in out, out
    assert "* 1    Thread 1          checkpoint ()" in out, out
    assert "  2    Thread 2 " in out, out
    assert "[Switching to thread 2 (Thread 2)]" in out, out
    assert "exited normally" in out, out
    assert stdout == "joined\n" and code == 0, (stdout, out)


def test_gdb_bad_port_is_a_usage_error():
    res = subprocess.run(umlpy_run(["/bin/true"], ["--gdb", "notaport"]), capture_output=True,
                         text=True, timeout=60, env=guest_env())
    assert res.returncode == 2 and "--gdb" in res.stderr and res.stderr.count("\n") == 1, res


def test_packet_framing():
    from umlpy.debug.gdbstub.packets import frame, unescape
    from umlpy.debug.gdbstub import regs
    assert frame(b"OK") == b"$OK#9a"
    body = frame(b"a#b$c}")[1:-3]
    assert unescape(body) == b"a#b$c}"
    xml = regs.target_xml()
    assert "org.gnu.gdb.i386.core" in xml and 'name="orig_rax"' in xml
    assert sum(size for _, size, *_ in regs.LAYOUT) * 2 == len(regs.encode(_Zero()))


class _Zero:
    def __getattr__(self, name):
        return 0
