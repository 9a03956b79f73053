"""Opens for reading answered by the accelerator (csrc/fastopen.c).

After the kernel publishes a path's stat, an open(O_RDONLY) of that path by
a task of the same resolution context may be made in C: a tmpfs file's memfd reopened, or a file of
the overlay's read-only host layer opened below its root. One Python script
(OPENSEQ) stats then opens files every way a program does and looks at what
it got (fstat against stat, the data, F_GETFL, /proc/self/fd): files of the
guest's tmpfs and of a host directory seen through the default root, a
symbolic link followed and with O_NOFOLLOW (ELOOP), a missing name (ENOENT),
a file opened again and again with no stat between (the open publishes too),
names from a directory descriptor, a root-only file a uid-1000 child stats
and may not open (EACCES, then allowed after a chmod), a file replaced by a
rename and one unlinked after its stat. The output must equal the host's
(the same script natively), and the guest must have answered opens in C.
"""
from __future__ import annotations

import difflib
import re
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

from guestroot import run_umlpy, umlpy_run

OPENSEQ = r'''
import errno, fcntl, os, sys

scratch, lower = sys.argv[1], sys.argv[2]
ROOTS = {scratch: "SCRATCH", lower: "LOWER"}


def shown(path):
    for root, label in ROOTS.items():
        if path.startswith(root):
            return label + path[len(root):]
    return path


def opened(path, flags=os.O_RDONLY, dir_fd=None):
    try:
        fd = os.open(path, flags, dir_fd=dir_fd)
    except OSError as e:
        return errno.errorcode[e.errno]
    try:
        a, b = os.fstat(fd), os.stat(path, dir_fd=dir_fd)
        same = (a.st_dev, a.st_ino, a.st_mode, a.st_uid, a.st_size) == \
               (b.st_dev, b.st_ino, b.st_mode, b.st_uid, b.st_size)
        fl = fcntl.fcntl(fd, fcntl.F_GETFL) & (os.O_ACCMODE | os.O_NONBLOCK | os.O_APPEND)
        cloexec = fcntl.fcntl(fd, fcntl.F_GETFD)
        return (f"ok same={same} mode={a.st_mode:o} size={a.st_size} data={os.read(fd, 64)!r} "
                f"fl={fl:o} fd_flags={cloexec} link={shown(os.readlink(f'/proc/self/fd/{fd}'))}")
    finally:
        os.close(fd)


def stat_then_open(label, path, flags=os.O_RDONLY, follow=True, dir_fd=None):
    try:
        s = os.stat(path, dir_fd=dir_fd, follow_symlinks=follow)
        st = f"mode={s.st_mode:o} size={s.st_size}"
    except OSError as e:
        st = errno.errorcode[e.errno]
    print(f"{label:<28} stat {st:<22} open {opened(path, flags, dir_fd)} | "
          f"again {opened(path, flags, dir_fd)}")


def in_child(fn):
    pid = os.fork()
    if pid == 0:
        try:
            fn()
        finally:
            sys.stdout.flush()
            os._exit(0)
    os.waitpid(pid, 0)


for root in (scratch, lower):
    tag = ROOTS[root]
    for i in range(12):
        stat_then_open(f"{tag} f{i}", f"{root}/f{i}")
    stat_then_open(f"{tag} f0 O_NONBLOCK", f"{root}/f0", os.O_RDONLY | os.O_NONBLOCK)
    stat_then_open(f"{tag} f1 O_CLOEXEC", f"{root}/f1", os.O_RDONLY | os.O_CLOEXEC)
    stat_then_open(f"{tag} f2 O_NOFOLLOW", f"{root}/f2", os.O_RDONLY | os.O_NOFOLLOW)
    stat_then_open(f"{tag} link", f"{root}/link")
    stat_then_open(f"{tag} link O_NOFOLLOW", f"{root}/link", os.O_RDONLY | os.O_NOFOLLOW)
    stat_then_open(f"{tag} lstat link O_NOFOLLOW", f"{root}/link", os.O_RDONLY | os.O_NOFOLLOW,
                   follow=False)
    stat_then_open(f"{tag} missing", f"{root}/missing")
    stat_then_open(f"{tag} f3/ (ENOTDIR)", f"{root}/f3/")
    d = os.open(root, os.O_RDONLY | os.O_DIRECTORY)
    for name in sorted(os.listdir(d)):
        if name.startswith("f1"):
            stat_then_open(f"{tag} dirfd {name}", name, dir_fd=d)
    os.close(d)
    in_child(lambda: (os.setgid(1000), os.setuid(1000),
                      stat_then_open(f"{tag} uid 1000 secret", f"{root}/secret"),
                      stat_then_open(f"{tag} uid 1000 f4", f"{root}/f4")))

def open_only(path):
    """open, fstat, read, close: no stat by path (the open itself publishes)"""
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError as e:
        return errno.errorcode[e.errno]
    try:
        a = os.fstat(fd)
        return f"ok mode={a.st_mode:o} size={a.st_size} data={os.read(fd, 16)!r}"
    finally:
        os.close(fd)


for root in (scratch, lower):
    for i in range(3):
        print(f"{ROOTS[root]} f10 open only #{i}", open_only(f"{root}/f10"))
    for i in range(2):
        print(f"{ROOTS[root]} link open only #{i}", open_only(f"{root}/link"))

secret = f"{scratch}/secret"
os.chmod(secret, 0o644)
in_child(lambda: (os.setgid(1000), os.setuid(1000),
                  stat_then_open("SCRATCH uid 1000 after chmod", secret)))
stat_then_open("SCRATCH f5 before", f"{scratch}/f5")
with open(f"{scratch}/new", "w") as f:
    f.write("replaced")
os.rename(f"{scratch}/new", f"{scratch}/f5")
print("SCRATCH f5 replaced", opened(f"{scratch}/f5"))
stat_then_open("SCRATCH f6 before", f"{scratch}/f6")
os.unlink(f"{scratch}/f6")
print("SCRATCH f6 unlinked", opened(f"{scratch}/f6"))
'''


def _populate(root: Path) -> None:
    """Twelve small files, a symbolic link, and a root-only file."""
    for i in range(12):
        (root / f"f{i}").write_text(f"file {i}\n" * (i + 1))
        (root / f"f{i}").chmod(0o644)   # whatever the umask
    (root / "link").symlink_to("f3")
    secret = root / "secret"
    secret.write_text("root only\n")
    secret.chmod(0o600)


def _run_native(script: Path, scratch: Path, lower: Path) -> str:
    res = subprocess.run([sys.executable, str(script), str(scratch), str(lower)],
                         capture_output=True, text=True, timeout=60)
    assert res.returncode == 0, res.stdout + res.stderr
    return res.stdout


def test_stat_then_open(tmp_path):
    """The guest's tmpfs (/dev/shm) and a host directory through the default
    root's read-only layer, against the same script natively on the host's
    tmpfs and that host directory (as root, like the guest)."""
    lower = tmp_path / "lower"
    lower.mkdir()
    _populate(lower)
    tmp_path.chmod(0o755)           # the uid-1000 child walks through it
    script = tmp_path / "openseq.py"
    script.write_text(OPENSEQ)
    native_scratch = Path(tempfile.mkdtemp(dir="/dev/shm", prefix="umlpy-fastopen-"))
    try:
        native_scratch.chmod(0o755)
        _populate(native_scratch)
        native = _run_native(script, native_scratch, lower)
    finally:
        shutil.rmtree(native_scratch, ignore_errors=True)
    populate = (
        "import os, pathlib\n"
        "root = pathlib.Path('/dev/shm/s')\n"
        "for i in range(12): (root / f'f{i}').write_text(f'file {i}\\n' * (i + 1)); "
        "(root / f'f{i}').chmod(0o644)\n"
        "(root / 'link').symlink_to('f3')\n"
        "s = root / 'secret'; s.write_text('root only\\n'); s.chmod(0o600)\n")
    cmd = (f"mkdir -m 755 /dev/shm/s && {sys.executable} -c \"{populate}\" && "
           f"exec {sys.executable} {script} /dev/shm/s {lower}")
    res = run_umlpy(umlpy_run(["/bin/sh", "-c", cmd], ["--counters"]), timeout=180)
    assert res.returncode == 0, res.stdout + res.stderr
    guest = res.stdout.replace("/dev/shm/s", "SCRATCH")
    diff = "".join(difflib.unified_diff(native.splitlines(True), guest.splitlines(True),
                                        "native", "guest", n=1))
    assert not diff, diff + res.stderr
    assert "uid 1000 secret" in native and "EACCES" in native
    m = re.search(r"fast_opens=(\d+)", res.stderr)
    assert m, res.stderr
    # the script's own opens after a stat: 2 roots x 23 stat-then-open pairs
    # at least; Python's imports in the guest add more
    assert int(m.group(1)) >= 40, res.stderr
    assert "oopses=0" in res.stderr, res.stderr
