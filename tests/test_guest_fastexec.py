"""execve answered by the accelerator (csrc/fastexec.c).

After the kernel prepares an execve of an ELF by a path, the same execve of
the same text by a task of the same resolution context is answered in C while
nothing changed. EXECSEQ runs programs again and again around every change
that must end such an answer (the x bit, a rename over the program, a symbolic
link retargeted, the program removed and made again, a cwd with the same
relative name) and prints what ran, with /proc/self/exe and comm; the guest
must print what the host does, in the guest's tmpfs and in the overlay. A
native write to the program through a descriptor opened earlier (no call the
kernel sees) must be seen too: the answer holds only for the file version it
was made from. Python's own path (UMLPY_NO_FAST_STOPS=1) gives the same.
"""
from __future__ import annotations

import re
import subprocess

import pytest

from guestroot import run_umlpy, umlpy_run

EXECSEQ = r'''
set -u
cd "$1" || exit 2
run() { "$@"; echo "$* -> $?"; }
mkdir a b
cp /bin/true a/prog; cp /bin/false b/prog
for i in 1 2 3; do run ./a/prog; run "$1/b/prog"; done
for i in 1 2; do cd a; run ./prog; cd ../b; run ./prog; cd ..; done
chmod 644 a/prog; run ./a/prog; run ./a/prog
chmod 755 a/prog; run ./a/prog; run ./a/prog
cp /bin/false c; run ./a/prog; mv c a/prog; run ./a/prog; run ./a/prog
ln -s b/prog l; run ./l; run ./l; rm l; ln -s a/prog l; run ./l; run ./l
rm a/prog; run ./a/prog; run ./a/prog; cp /bin/true a/prog; run ./a/prog; run ./a/prog
for i in 1 2; do readlink /proc/self/exe; cat /proc/self/comm; done
cp /bin/cat "$1/kitty"; for i in 1 2; do "$1/kitty" /proc/self/comm; done
printf '#!/bin/sh\necho script $0\n' > s; chmod 755 s; run ./s; run ./s
'''

REWRITE = r'''
import os, subprocess, sys
os.chdir(sys.argv[1])
true, false = (open(p, "rb").read() for p in ("/bin/true", "/bin/false"))
with open("w", "wb") as f:
    f.write(true)
os.chmod("w", 0o755)
fd = os.open("w", os.O_RDWR)
def run(what):
    print(what, subprocess.run(["./w"]).returncode, flush=True)
run("true"); run("true")
os.pwrite(fd, false + b"\0", 0)     # native: no call the kernel sees
run("false"); run("false")
os.pwrite(fd, true + b"\0\0", 0)
run("true"); run("true")
'''


def _fast_execs(stderr: str) -> int:
    m = re.search(r"fast_execs=(\d+)", stderr)
    assert m and "oopses=0" in stderr, stderr
    return int(m.group(1))


@pytest.fixture(scope="module")
def execseq(tmp_path_factory):
    d = tmp_path_factory.mktemp("execseq")
    script = d / "execseq.sh"
    script.write_text(EXECSEQ)
    (d / "n").mkdir()
    res = subprocess.run(["/bin/sh", str(script), str(d / "n")], capture_output=True,
                         text=True, timeout=60)
    return script, res.stdout.replace(str(d / "n"), "DIR"), res.stderr


@pytest.mark.parametrize("where", ["/dev/shm/umlpy-fastexec", "/umlpy-fastexec"],
                         ids=["tmpfs", "overlay"])
def test_execs_show_what_the_host_shows(execseq, where):
    script, native_out, native_err = execseq
    res = run_umlpy(umlpy_run(["/bin/sh", "-c", f"mkdir {where} && sh {script} {where}"],
                              ["--counters"]), timeout=120)
    assert res.returncode == 0, res.stdout + res.stderr
    assert res.stdout.replace(where, "DIR") == native_out, res.stderr
    errors = [ln for ln in res.stderr.splitlines() if not ln.startswith("umlpy:")]
    assert errors == native_err.splitlines(), res.stderr
    assert "kitty" in native_out and "/usr/bin/readlink" in native_out
    # the repeats with nothing changed between: a dozen of them
    assert _fast_execs(res.stderr) >= 10, res.stderr


@pytest.mark.parametrize("where", ["/dev/shm/umlpy-fastexec", "/umlpy-fastexec"],
                         ids=["tmpfs", "overlay"])
@pytest.mark.parametrize("in_c", [True, False], ids=["c", "python-only"])
def test_native_write_to_the_program_is_seen(tmp_path, in_c, where):
    """Linux would refuse these execs (ETXTBSY: the file is open for writing);
    umlpy runs an image of the file, which must be of its current version."""
    script = tmp_path / "rewrite.py"
    script.write_text(REWRITE)
    env = None if in_c else {"UMLPY_NO_FAST_STOPS": "1"}
    res = run_umlpy(umlpy_run(["/bin/sh", "-c", f"mkdir {where} && python3 {script} {where}"],
                              ["--counters"]), env=env, timeout=120)
    assert res.returncode == 0, res.stdout + res.stderr
    assert res.stdout == "true 0\ntrue 0\nfalse 1\nfalse 1\ntrue 0\ntrue 0\n", res.stderr
    # each second run of a version in C
    assert _fast_execs(res.stderr) == (3 if in_c else 0), res.stderr
