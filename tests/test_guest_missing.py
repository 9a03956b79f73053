"""Missing paths answered by the accelerator as the host answers them.

A read-only open, stat or access that finds no such file (the last name, or
a directory on the way) publishes its ENOENT, so that the next walk of the
same text in the same resolution context is answered in C (ld.so searches
the same missing library paths at every exec). MISSSEQ probes missing names,
a dangling symbolic link (missing only when followed: lstat sees it, and
O_NOFOLLOW gives ELOOP), a name under a missing directory and one under a
regular file (ENOTDIR), every way twice, in the process and in children;
then creates what was missing and probes again. The output must equal the
host's (the same script natively), and C must have answered some of it.

A missing name under a host directory (hostfs, which the host may change
behind the kernel) is never remembered: the host creates it while the guest
waits, and the guest's next open must find it.
"""
from __future__ import annotations

import re
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

from guestroot import guest_env, kill_group, run_shell_like_native, umlpy_command

MISSSEQ = r'''
import errno, os, sys

top = sys.argv[1]
os.chdir(top)
NAMES = ["gone", f"{top}/gone", "nodir/x", "nodir/deeper/x", "dangling", "file/x", "gone/"]


def one(fn):
    try:
        r = fn()
        return "ok" if r is None or isinstance(r, os.stat_result) else str(r)
    except OSError as e:
        return errno.errorcode[e.errno]


def opened(name, flags):
    fd = os.open(name, flags)
    os.close(fd)


def probe(tag):
    for name in NAMES:
        shown = name.replace(top, "TOP")
        row = []
        for _ in range(2):
            row += [one(lambda: opened(name, os.O_RDONLY)),
                    one(lambda: opened(name, os.O_RDONLY | os.O_NOFOLLOW)),
                    one(lambda: os.stat(name)),
                    one(lambda: os.lstat(name)),
                    one(lambda: os.access(name, os.F_OK))]
        print(f"{tag:<8} {shown:<16} {' '.join(row)}", flush=True)


def in_child(tag):
    pid = os.fork()
    if pid == 0:
        probe(tag)
        os._exit(0)
    os.waitpid(pid, 0)


probe("first")
in_child("child")
in_child("child2")
for d in ("nodir", "nodir/deeper"):
    os.mkdir(d)
for name in ("gone", "nodir/x", "nodir/deeper/x", "target"):
    with open(name, "w") as f:
        f.write("now here\n")
probe("created")
in_child("child3")
'''


def _populate(top: Path) -> None:
    (top / "file").write_text("a regular file\n")
    (top / "dangling").symlink_to("target")


def test_missing_paths_answered_as_the_host(tmp_path):
    script = tmp_path / "missseq.py"
    script.write_text(MISSSEQ)
    native_top = Path(tempfile.mkdtemp(dir="/dev/shm", prefix="umlpy-miss-"))
    try:
        _populate(native_top)
        res = subprocess.run([sys.executable, str(script), str(native_top)],
                             capture_output=True, text=True, timeout=60)
        assert res.returncode == 0, res.stdout + res.stderr
        native = res.stdout
    finally:
        shutil.rmtree(native_top, ignore_errors=True)
    cmd = ("mkdir /dev/shm/m && echo 'a regular file' > /dev/shm/m/file && "
           f"ln -s target /dev/shm/m/dangling && exec {sys.executable} {script} /dev/shm/m")
    res = run_shell_like_native(native, cmd)
    # what the host says, so that the comparison means something
    assert re.search(r"first +dangling +ENOENT ELOOP ENOENT ok False", native), native
    assert re.search(r"first +file/x +ENOTDIR", native), native
    assert re.search(r"created +nodir/deeper/x +ok ok ok ok True", native), native
    fast = {k: int(v) for k, v in re.findall(r"(fast_\w+)=(\d+)", res.stderr)}
    # each missing name's second probe at least, in three processes
    assert fast.get("fast_opens", 0) >= 12, res.stderr
    assert fast.get("fast_stats", 0) >= 30, res.stderr
    assert "oopses=0" in res.stderr, res.stderr


def test_missing_on_a_host_directory_is_not_remembered(fresh_busybox_root):
    root = fresh_busybox_root
    script = "cat /nodir/x; cat /nodir/x; echo ready; read line; cat /nodir/x"
    proc = subprocess.Popen(umlpy_command(root, ["/bin/sh", "-c", script]),
                            stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, start_new_session=True,
                            env=guest_env(), cwd=str(root))
    try:
        assert proc.stdout.readline() == "ready\n"
        (root / "nodir").mkdir()
        (root / "nodir" / "x").write_text("appeared behind the kernel\n")
        out, err = proc.communicate("go\n", timeout=60)
    finally:
        kill_group(proc)
    assert out == "appeared behind the kernel\n", out + err
    assert err.count("No such file or directory") == 2, err
