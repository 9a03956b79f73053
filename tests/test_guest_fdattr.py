"""fchmod, fchown and futimens (utimensat(fd, NULL, times, 0)) answered by the
accelerator for files of the guest kernel's tmpfs (its /dev/shm and the upper
layer of the default overlay root).

One static program (fdattrseq.c) changes a file through its descriptor, each
call twice (the first reaches the kernel in Python, the repeat may be answered
in C): explicit times, UTIME_OMIT and UTIME_NOW in each position, a NULL
times, EINVAL; owners with -1; the set-id bits an fchown clears or keeps;
writes, growth and truncation after an fchmod; changes by path and through a
second, read-only or dup'ed descriptor; an O_PATH descriptor (EBADF); a
directory; a descriptor number closed and reused for another file; a renamed
then unlinked file; and a uid-1000 child with root's descriptors (EPERM,
EACCES, the write-permission rule of a NULL times) and a file of its own.
After each step the file is looked at every way (fstat, fstatat with an
empty path, stat, lstat, fstatat by path), twice: C's answers and Python's
must agree, and the whole output must equal a run on the host's tmpfs.

Then a read-only bind mount (EROFS through it, whatever was answered for the
writable mount of the same file, and after a remount of an open file's mount),
and GNU tar extracting a tarball as root (its fchown, fchmod and futimens on
one reused descriptor number) compared with the host's extraction.
"""
from __future__ import annotations

import difflib
import io
import re
import shutil
import subprocess
import tarfile
from pathlib import Path

import pytest

from guestroot import REPO, compile_static, run_umlpy, umlpy_run

pytestmark = pytest.mark.skipif(shutil.which("gcc") is None,
                                reason="gcc missing (install gcc and libc6-dev)")

# In main() of fdattrseq.c, root makes 46 pairs of fchmod/fchown/futimens
# calls on plain descriptors (92 calls); leaving out the 4 pairs that change
# nothing (UTIME_OMIT twice, three EINVAL) leaves 84 calls. About half of them:
# at least the repeat of each pair should be answered in C.
FAST_ATTRS_AT_LEAST = 42


@pytest.fixture(scope="module")
def fdattrseq(tmp_path_factory) -> Path:
    d = tmp_path_factory.mktemp("fdattrseq")
    return compile_static((REPO / "tests" / "fdattrseq.c").read_text(), d / "fdattrseq",
                          [REPO / "tests"])


def _native_run(fdattrseq: Path, tmp_path_factory, *options: str) -> str:
    work = Path("/dev/shm") / f"umlpy-fdattr-{tmp_path_factory.mktemp('n').name}"
    work.mkdir()
    try:
        res = subprocess.run([str(fdattrseq), str(work), *options], capture_output=True,
                             text=True, timeout=60)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    assert res.returncode == 0, res.stdout + res.stderr
    assert "MISMATCH" not in res.stdout
    return res.stdout


@pytest.fixture(scope="module")
def native(fdattrseq, tmp_path_factory) -> str:
    return _native_run(fdattrseq, tmp_path_factory)


@pytest.fixture(scope="module")
def native_linked_only(fdattrseq, tmp_path_factory) -> str:
    return _native_run(fdattrseq, tmp_path_factory, "--linked-only")


def _fast_attrs(stderr: str, absent_is_zero: bool = False) -> int:
    m = re.search(r"fast_attrs=(\d+)", stderr)
    if m is None and absent_is_zero:
        return 0
    assert m, f"no fast_attrs counter in: {stderr}"
    return int(m.group(1))


def _same_as_native(res, native: str) -> None:
    assert res.returncode == 0, res.stdout + res.stderr
    assert "MISMATCH" not in res.stdout, res.stdout
    diff = "".join(difflib.unified_diff(native.splitlines(True), res.stdout.splitlines(True),
                                        "native", "guest", n=1))
    assert not diff, diff + res.stderr


@pytest.mark.parametrize("in_c", [True, False], ids=["c", "python-only"])
def test_tmpfs(fdattrseq, native, in_c):
    """The guest kernel's /dev/shm. With UMLPY_NO_FAST_STATS=1 every call
    reaches Python: the same output, and nothing counted."""
    res = run_umlpy(umlpy_run(["/bin/sh", "-c", f"mkdir /dev/shm/w && exec {fdattrseq} /dev/shm/w"],
                              ["--counters"]), env=None if in_c else {"UMLPY_NO_FAST_STATS": "1"})
    _same_as_native(res, native)
    if in_c:
        assert _fast_attrs(res.stderr) >= FAST_ATTRS_AT_LEAST, res.stderr
    else:
        assert _fast_attrs(res.stderr, absent_is_zero=True) == 0, res.stderr


def test_overlay_upper(fdattrseq, native, tmp_path):
    """A directory of the default root: its files live in the overlay's upper
    layer. (The uid-1000 child stats ../r from its working directory DIR/kid:
    DIR must be searchable by others, as the native one under /dev/shm is.)"""
    tmp_path.chmod(0o755)
    res = run_umlpy(umlpy_run([str(fdattrseq), str(tmp_path)], ["--counters"]))
    _same_as_native(res, native)
    assert _fast_attrs(res.stderr) >= FAST_ATTRS_AT_LEAST, res.stderr


def test_hostfs_read_write(fdattrseq, native_linked_only, tmp_path):
    """--root: a host directory read-write (owners and modes in an xattr).
    Nothing is answered in C there; the Python answers must be right. (Not
    on an unlinked open file: hostfs reaches its files by name.)"""
    root = tmp_path / "root"
    (root / "w").mkdir(parents=True)
    shutil.copy(fdattrseq, root / "fdattrseq")
    res = run_umlpy(umlpy_run(["/fdattrseq", "/w", "--linked-only"],
                              ["--root", str(root), "--counters"]))
    _same_as_native(res, native_linked_only)


# ---- a read-only bind mount ----

# The remount first, while no read-only mount has reached /dev/shm's tmpfs (C
# may answer its first calls); then the read-only bind.
RO_SCRIPT = """set -e
mkdir /dev/shm/m /dev/shm/rw /dev/shm/ro
echo data > /dev/shm/m/f
mount --bind /dev/shm/m /dev/shm/rw
{prog} --remount /dev/shm/rw /dev/shm/rw/f
mount --bind /dev/shm/m /dev/shm/ro
mount -o remount,ro,bind /dev/shm/ro
{prog} --erofs /dev/shm/m/f /dev/shm/ro/f /dev/shm/m/f
"""


def _three(label: str, result: str) -> list[str]:
    """What fdattrseq's three() prints for fchmod, fchown and futimens(NULL)
    each answered `result` twice."""
    moved = "ctime+" if result == "ok" else "ctime="
    return [f"{label + ' ' + call:<34} {result}/{moved} {result}/{moved}"
            for call in ("fchmod", "fchown", "futimens NULL")]


def test_read_only_bind_mount(fdattrseq):
    """An open file whose mount is remounted read-only, then read-write again:
    EROFS only meanwhile, whatever C answered before. Then the same file
    through a writable mount, its read-only bind, and the writable one again,
    each opened read-only in turn (the same descriptor number each time):
    EROFS only through the read-only bind. (Not with both open at once: the
    kernel finds a descriptor's open file by its host object, so two opens of
    one tmpfs file through different mounts both get the later one's mount,
    a known limit of umlpy.vfs.handles.)"""
    ro_run = run_umlpy(umlpy_run(["/bin/sh", "-c", RO_SCRIPT.format(prog=fdattrseq)],
                                 ["--counters"]))
    assert ro_run.returncode == 0, ro_run.stdout + ro_run.stderr
    want = (_three("rw", "ok") + ["remount ro: ok"] + _three("ro", "EROFS")
            + ["remount rw: ok"] + _three("rw-again", "ok")
            + _three("path0 once", "ok") + _three("path1 once", "EROFS")
            + _three("path2 once", "ok"))
    assert ro_run.stdout.splitlines() == want
    # the 6 calls before the remount, by root on a plain descriptor of a file
    # of /dev/shm that no read-only mount has reached yet: half of them
    assert _fast_attrs(ro_run.stderr) >= 3, ro_run.stderr



# ---- GNU tar ----

def _tarball(path: Path) -> None:
    """20 files with set-id and other modes, owners 0, 1000 and 1001, whole
    and half-second mtimes (a pax archive), a directory and a symlink."""
    modes = [0o644, 0o600, 0o4755, 0o2755, 0o755, 0o640, 0o2745, 0o6755, 0o444, 0o1777]
    owners = [(0, 0), (1000, 1000), (1001, 1000), (1000, 1001), (0, 1001)]
    with tarfile.open(path, "w", format=tarfile.PAX_FORMAT) as t:
        d = tarfile.TarInfo("top")
        d.type, d.mode, d.uid, d.gid, d.mtime = tarfile.DIRTYPE, 0o2775, 1000, 1001, 1234567890
        t.addfile(d)
        for i in range(20):
            data = (b"x%d\n" % i) * (i * 37)
            f = tarfile.TarInfo(f"top/f{i:02d}")
            f.size, f.mode = len(data), modes[i % len(modes)]
            f.uid, f.gid = owners[i % len(owners)]
            f.mtime = 1000000000 + i * 86400 + (0.5 if i % 3 == 0 else 0)
            t.addfile(f, io.BytesIO(data))
        s = tarfile.TarInfo("top/link")
        s.type, s.linkname, s.uid, s.gid, s.mtime = tarfile.SYMTYPE, "f03", 1000, 1000, 1111111111
        t.addfile(s)


# Directories' mtimes are compared too: GNU tar sets them after their contents,
# to the archive's, natively and in the guest alike. "." (the extraction
# directory, not in the archive) is left out.
FIND = ["find", ".", "-mindepth", "1", "-printf", r"%p %m %U %G %T@ %s %y\n"]


def test_tar_extract(tmp_path):
    """GNU tar x as root into the guest's /dev/shm (a file's fchown, fchmod
    and futimens on the same descriptor number, file after file): owners,
    set-id bits, modes, mtimes and sizes as the host's own extraction."""
    tarball = tmp_path / "t.tar"
    _tarball(tarball)
    work = Path("/dev/shm") / f"umlpy-fdattr-tar-{tmp_path.name}"
    work.mkdir()
    try:
        subprocess.run(["tar", "-xpf", str(tarball), "--numeric-owner"], cwd=work, check=True,
                       timeout=60)
        native = subprocess.run(FIND, cwd=work, capture_output=True, text=True, check=True,
                                timeout=60).stdout
    finally:
        shutil.rmtree(work, ignore_errors=True)
    find = " ".join(f"'{a}'" for a in FIND)
    res = run_umlpy(umlpy_run(["/bin/sh", "-c",
                               f"mkdir /dev/shm/x && cd /dev/shm/x && "
                               f"tar -xpf {tarball} --numeric-owner && {find}"]))
    assert res.returncode == 0, res.stdout + res.stderr
    assert len(native.splitlines()) == 22
    assert sorted(res.stdout.splitlines()) == sorted(native.splitlines())
