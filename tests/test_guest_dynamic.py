"""Dynamically linked Debian programs (coreutils, bash, python3) under the kernel.

The guest's own ld.so loads the guest's own libraries from the dynamic root.
Where the output is comparable, it is compared with the same program run
natively on the host.
"""

from __future__ import annotations

import os
import random
import shutil
import subprocess
import textwrap

import pytest

import guestroot
from guestroot import describe, run_guest

NATIVE_ENV = {"PATH": "/usr/bin:/bin", "LC_ALL": "C", "LANG": "C", "HOME": "/root"}


# -- the root itself (no guest): failures here are builder bugs, not kernel bugs


def test_dynamic_root_has_every_library(dynamic_root):
    for link in guestroot.MERGED_USR_LINKS:
        if os.path.islink(link):
            assert os.readlink(dynamic_root / link.lstrip("/")) == os.readlink(link), link
    # /usr/lib64/ld-linux-x86-64.so.2 is an absolute symlink: resolve it in the root.
    target = os.readlink(dynamic_root / "usr/lib64/ld-linux-x86-64.so.2")
    if target.startswith("/"):
        assert (dynamic_root / target.lstrip("/")).is_file(), target
    for prog in guestroot.DYNAMIC_PROGRAMS:
        real = os.path.realpath(prog)
        assert (dynamic_root / real.lstrip("/")).is_file(), prog
        for lib in guestroot.ldd_libraries(real):
            assert os.path.lexists(dynamic_root / lib.lstrip("/")), (prog, lib)
    assert (dynamic_root / "usr/lib/python3.11/os.py").is_file()
    assert (dynamic_root / "usr/lib/python3.11/lib-dynload").is_dir()


@pytest.mark.skipif(os.geteuid() != 0 or shutil.which("chroot") is None,
                    reason="checking the root natively needs chroot (root)")
def test_dynamic_root_works_natively_under_chroot(dynamic_root):
    """The root is self-contained: the programs run in it with the host's chroot."""
    res = subprocess.run([shutil.which("chroot"), str(dynamic_root), "/usr/bin/python3", "-c",
                          "import os, subprocess, threading; "
                          "print(subprocess.run(['echo', 'hi'], capture_output=True).stdout)"],
                         capture_output=True, text=True, env=NATIVE_ENV, timeout=60)
    assert res.returncode == 0 and res.stdout == "b'hi\\n'\n", describe(res)
    res = subprocess.run([shutil.which("chroot"), str(dynamic_root),
                          "/bin/bash", "-c", "ls / | sort | wc -l"],
                         capture_output=True, text=True, env=NATIVE_ENV, timeout=60)
    assert res.returncode == 0 and int(res.stdout) >= 8, describe(res)


# -- guests


def _ls_entries(text: str) -> dict[str, list[str]]:
    """``ls -la --time-style=+%s`` lines by name (name and ``-> target`` kept)."""
    entries = {}
    for line in text.splitlines():
        fields = line.split(None, 6)
        if len(fields) < 7 or line.startswith("total"):
            continue
        entries[fields[6].split(" -> ")[0]] = fields
    return entries


def test_ls_la_root_matches_native(dynamic_root):
    res = run_guest(dynamic_root, ["/bin/ls", "-la", "--time-style=+%s", "/"])
    assert res.returncode == 0, describe(res)
    native = subprocess.run(["/bin/ls", "-la", "--time-style=+%s", str(dynamic_root)],
                            capture_output=True, text=True, env=NATIVE_ENV, check=True)
    guest, host = _ls_entries(res.stdout), _ls_entries(native.stdout)
    # the kernel's own mount points show even where the directory does not exist
    # (they are made up in the namespace, never created in the host directory)
    assert set(guest) == set(host) | {"dev", "proc", "sys"}, describe(res)
    assert not (dynamic_root / "sys").exists()
    # "." and ".." differ (the guest's ".." of / is / itself); mount points may too.
    for name in set(host) - {".", "..", "dev", "proc", "tmp", "sys", "run"}:
        assert guest[name] == host[name], (name, guest[name], host[name])
    assert guest["bin"][0].startswith("l") and guest["bin"][6] == "bin -> usr/bin"


def test_sort_matches_native(dynamic_root):
    rng = random.Random(1234)
    words = ["".join(rng.choice("abcXYZ019 -_") for _ in range(rng.randint(0, 12)))
             for _ in range(3000)]
    data = "\n".join(words) + "\n"
    (dynamic_root / "tmp" / "sort-input").write_text(data)
    res = run_guest(dynamic_root, ["/bin/sh", "-c",
                                   "sort /tmp/sort-input; echo ===; sort -r -u; echo ===; "
                                   "sort -t- -k2,2 -n -s /tmp/sort-input | wc -l"],
                    input=data)
    assert res.returncode == 0, describe(res)
    parts = res.stdout.split("===\n")
    assert len(parts) == 3, describe(res)

    def native(*args):
        return subprocess.run(["/usr/bin/sort", *args], input=data, capture_output=True,
                              text=True, env=NATIVE_ENV, check=True).stdout

    assert parts[0] == native(), "sort of a file differs from native"
    assert parts[1] == native("-r", "-u"), "sort -r -u of stdin differs from native"
    assert parts[2] == "3000\n", describe(res)


BASH_SCRIPT = r"""
set -o pipefail
echo "pid=$$ bashpid=$BASHPID"
printf '%s\n' pear apple fig | sort | tr a-z A-Z | head -n 2
( cd /usr/lib && pwd; echo "sub-bashpid-differs=$([ $BASHPID != $$ ] && echo yes)" )
arr=(one two three); echo "n=${#arr[@]} last=${arr[-1]}"
declare -A m=([k]=v); echo "assoc=${m[k]}"
echo "math=$(( 2**16 + 7 % 3 ))"
x=$(echo "a b c" | wc -w); echo "words=$x"
false | true; echo "pipefail=$?"
/bin/sh -c 'echo "dash parent=$PPID"'
read -r line < /etc/hostname; echo "hostname-file=$line"
coproc { echo from-coproc; }; read -r c <&"${COPROC[0]}"; wait; echo "$c"
exit 17
"""


def test_bash_pipeline_and_subshell(dynamic_root):
    res = run_guest(dynamic_root, ["/bin/bash", "-c", BASH_SCRIPT])
    assert res.returncode == 17, describe(res)
    lines = res.stdout.splitlines()
    assert lines[0] == "pid=1 bashpid=1", describe(res)
    assert lines[1:] == ["APPLE", "FIG", "/usr/lib", "sub-bashpid-differs=yes", "n=3 last=three",
                         "assoc=v", "math=65537", "words=3", "pipefail=1", "dash parent=1",
                         "hostname-file=guest", "from-coproc"], describe(res)
    # The same script natively (except the pids and the root-dependent lines).
    native = subprocess.run(["/bin/bash", "-c", BASH_SCRIPT.replace("/etc/hostname", "/dev/null")],
                            capture_output=True, text=True, env=NATIVE_ENV, timeout=60)
    assert native.returncode == 17
    nl = native.stdout.splitlines()
    assert lines[1:9] == nl[1:9]


PYTHON_SCRIPT = r"""
import os, subprocess, sys, threading
print("pid1", os.getpid() == 1, os.getpid())
print("main-tid-is-pid", threading.get_native_id() == os.getpid())
results, lock, barrier = [], threading.Lock(), threading.Barrier(4)
tids = set()
def work(i):
    tids.add(threading.get_native_id())
    barrier.wait()
    for j in range(200):
        with lock:
            results.append((i, j))
threads = [threading.Thread(target=work, args=(i,)) for i in range(4)]
for t in threads: t.start()
for t in threads: t.join()
print("threads", len(results), sorted({i for i, _ in results}), len(tids))
r = subprocess.run(["echo", "hi"], capture_output=True, text=True)
print("echo", repr(r.stdout), r.returncode)
r = subprocess.run(["/bin/sh", "-c", "echo $PPID $$; exit 3"], capture_output=True, text=True)
ppid, pid = map(int, r.stdout.split())
print("child", ppid == os.getpid(), pid != os.getpid(), r.returncode)
r = subprocess.run([sys.executable, "-c", "import os; print(os.getppid())"],
                   capture_output=True, text=True)
print("python-child-ppid", r.stdout.strip() == str(os.getpid()), r.returncode)
p = subprocess.Popen(["cat"], stdin=subprocess.PIPE, stdout=subprocess.PIPE)
out, _ = p.communicate(b"x" * 100000)
print("cat", len(out), p.returncode)
print("uname", os.uname().sysname, os.uname().machine)
"""


def test_python_threads_and_subprocess(dynamic_root):
    res = run_guest(dynamic_root, ["/usr/bin/python3", "-c", PYTHON_SCRIPT], timeout=180)
    assert res.returncode == 0, describe(res)
    lines = res.stdout.splitlines()
    assert lines[0] == "pid1 True 1", describe(res)
    assert lines[1] == "main-tid-is-pid True", describe(res)
    assert lines[2] == "threads 800 [0, 1, 2, 3] 4", describe(res)
    assert lines[3] == "echo 'hi\\n' 0", describe(res)
    assert lines[4] == "child True True 3", describe(res)
    assert lines[5] == "python-child-ppid True 0", describe(res)
    assert lines[6] == "cat 100000 0", describe(res)
    assert lines[7] == "uname Linux x86_64", describe(res)
    assert len(lines) == 8, describe(res)


def test_coreutils_smoke(dynamic_root):
    script = textwrap.dedent("""
        echo hello | wc -c
        printf 'a\\nb\\nc\\n' | head -n 2 | tr '\\n' ,; echo
        env -i /usr/bin/true && echo env-ok
        id -u >/dev/null && echo id-ok
        uname -s
        cd /usr/bin && pwd && ls sort
        sleep 0.1 && echo slept
        /usr/bin/false; echo false=$?
    """)
    res = run_guest(dynamic_root, ["/bin/sh", "-c", script])
    assert res.returncode == 0, describe(res)
    assert res.stdout == "6\na,b,\nenv-ok\nid-ok\nLinux\n/usr/bin\nsort\nslept\nfalse=1\n", \
        describe(res)
