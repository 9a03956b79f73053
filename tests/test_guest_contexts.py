"""Published path answers are shared only between tasks that resolve alike.

The accelerator answers a stat, an access or an open(O_RDONLY) of a path
that the kernel published for the asking task's resolution context: its
root, cwd and credentials (umlpy/kernel/contexts.py, csrc/statpath.c). A
child of a fork shares its parent's context until it changes one of them.

CTXSEQ makes each change in a child: chdir, fchdir, chroot, setuid,
setfsuid, setgroups. After each, a sibling forked afterwards (so in the
context the child had) looks the same name up twice, publishing its answer,
and only then does the child look it up. If the child kept its old context,
C would give it the sibling's answer: a name from another directory, or a
root-only file opened by uid 1000 (an escape). The output must equal the host's (the same script run
natively as root). A last part forks 20 children that open the same file:
they share the parent's context, so C answers most of their opens.
"""
from __future__ import annotations

import re
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

from guestroot import run_shell_like_native

CTXSEQ = r'''
import ctypes, errno, os, sys

top = sys.argv[1]
A, B = f"{top}/a", f"{top}/b"           # "f" and "secret" in A; "f" in B only under chroot
libc = ctypes.CDLL(None, use_errno=True)


def probe(name):
    """stat, access and open of name, twice each: what this task sees."""
    out = []
    for _ in range(2):
        try:
            st = os.stat(name)
            out.append(f"stat={st.st_size}")
        except OSError as e:
            out.append(errno.errorcode[e.errno])
        out.append("access=ok" if os.access(name, os.F_OK) else "access=no")
        try:
            fd = os.open(name, os.O_RDONLY)
            out.append(f"open={os.read(fd, 32)!r}")
            os.close(fd)
        except OSError as e:
            out.append(errno.errorcode[e.errno])
    return " ".join(out)


def case(label, change, name, sibling_change=lambda: None):
    """A child makes `change`; then a sibling forked after it (whose context
    is what the child's was), after `sibling_change`, probes name twice,
    publishing its answer; then the child probes it."""
    go, done = os.pipe(), os.pipe()
    pid = os.fork()
    if pid == 0:
        change()
        os.write(go[1], b"x")
        os.read(done[0], 1)
        print(f"{label:<10} child   {probe(name)}", flush=True)
        os._exit(0)
    os.read(go[0], 1)
    other = os.fork()
    if other == 0:
        sibling_change()
        print(f"{label:<10} sibling {probe(name)}", flush=True)
        os._exit(0)
    os.waitpid(other, 0)
    os.write(done[1], b"x")
    os.waitpid(pid, 0)
    for fd in go + done:
        os.close(fd)


def as_user(uid, groups=()):
    def change():
        os.setgroups(list(groups))
        os.setgid(1000)
        os.setuid(uid)
    return change


def set_fsuid():
    libc.setfsuid(1000)


os.chdir(A)
case("chdir", lambda: os.chdir(B), "f")
fd_b = os.open(B, os.O_RDONLY | os.O_DIRECTORY)
case("fchdir", lambda: os.fchdir(fd_b), "f")
case("chroot", lambda: (os.chroot(f"{top}/jail"), os.chdir("/")), "/f")
case("setuid", as_user(1000), "secret")
case("setfsuid", set_fsuid, "secret")
# group 2000 may read "shared"; the sibling in group 2000 publishes first
case("groups", as_user(1001), "shared", as_user(1001, [2000]))

# the sharing itself: children alike open what an earlier one opened
for i in range(20):
    pid = os.fork()
    if pid == 0:
        fd = os.open("f", os.O_RDONLY)
        os.close(fd)
        os._exit(0)
    os.waitpid(pid, 0)
print("children done")
'''

POPULATE = r'''
import os, sys
top = sys.argv[1]
for d in ("a", "b", "jail"):
    os.mkdir(f"{top}/{d}", 0o755)
os.chmod(top, 0o755)
def put(path, text, mode, owner=(0, 0)):
    with open(path, "w") as f:
        f.write(text)
    os.chmod(path, mode)
    os.chown(path, *owner)
put(f"{top}/a/f", "in a\n", 0o644)
put(f"{top}/jail/f", "in the jail\n", 0o644)
put(f"{top}/a/secret", "root only\n", 0o600)
put(f"{top}/a/shared", "group 2000\n", 0o640, (0, 2000))
'''


def test_changed_context_never_sees_another_tasks_answer(tmp_path):
    script = tmp_path / "ctxseq.py"
    script.write_text(CTXSEQ)
    populate = tmp_path / "populate.py"
    populate.write_text(POPULATE)
    tmp_path.chmod(0o755)           # uid 1000 walks through it

    native_top = Path(tempfile.mkdtemp(dir="/dev/shm", prefix="umlpy-ctx-"))
    try:
        for cmd in ([sys.executable, str(populate), str(native_top)],
                    [sys.executable, str(script), str(native_top)]):
            res = subprocess.run(cmd, capture_output=True, text=True, timeout=60)
            assert res.returncode == 0, res.stdout + res.stderr
        native = res.stdout
    finally:
        shutil.rmtree(native_top, ignore_errors=True)

    cmd = (f"mkdir /dev/shm/t && {sys.executable} {populate} /dev/shm/t && "
           f"exec {sys.executable} {script} /dev/shm/t")
    res = run_shell_like_native(native, cmd, timeout=180)
    # the cases that matter did tell the tasks apart on the host too
    assert "chdir      child   ENOENT" in native
    assert "setuid     child   stat=10 access=ok EACCES" in native
    assert "groups     child   stat=11 access=ok EACCES" in native
    assert "groups     sibling stat=11 access=ok open=b'group 2000\\n'" in native
    m = re.search(r"fast_opens=(\d+)", res.stderr)
    assert m, res.stderr
    # the 20 children's opens of "f" (the first publishes; Python's own
    # start-up adds more)
    assert int(m.group(1)) >= 19, res.stderr
    assert "oopses=0" in res.stderr, res.stderr
