"""Regular files created by the accelerator (csrc/fastcreate.c) in the guest
kernel's tmpfs (its /dev/shm).

After the kernel in Python creates a file in a tmpfs directory, the next
creates there by the same task and the same path text (up to the last '/')
of names the directory does not hold may be made in C: a memfd installed in
the guest, adopted by the kernel before its next event. Set-id modes,
unusual flags, names that may exist and errors stay with Python, and any
Python call that may change names, credentials, the umask or the working
directory ends what was published.

One static program (createseq.c) creates files in runs in one directory
and looks at them (fstat, stat by path, the contents by path, the lowest
free descriptor number, F_GETFL and F_GETFD, times as relations): by openat
from a directory descriptor, by absolute and relative paths and creat;
modes under three umasks; set-id and sticky modes; 255- and 256-byte names,
names that are not UTF-8, a trailing slash, "." and "..", a directory's
name, dangling symlinks (followed, O_EXCL, O_NOFOLLOW), other spellings of
the directory ("sub//", "sub/./", a symlink to it), a descriptor that is
not a directory's or none; the access modes, O_APPEND, O_TRUNC, O_SYNC and
O_NOATIME, a descriptor a forked child writes through; a child that
created there as root just before, then with setfsuid and setfsgid, then
as uid 1000 (EACCES, its own owner, a set-group-id directory's group, its
own directory made read-only by fchmod and back); a set-group-id
directory; names linked, renamed, unlinked and made again; the directory
renamed under the published path text and the working directory;
RLIMIT_NOFILE running out; 300 files in a row; then the listing, link
counts, directory sizes and whether the inode numbers are unique. Its
output must equal a run on the host's tmpfs, with the creates made in C
and with every call in Python (UMLPY_NO_FAST_STATS=1).

unlinkseq.c removes files in runs as the accelerator may (unlink and
unlinkat of names the published directory says the task may remove): by
path and from a directory descriptor, files still open, hard links, the
same name made and removed over and over, what unlink may not remove
(directories, ".", "..", trailing slashes, names that are not there), a
sticky directory as uid 1000 (its own files go, root's stay: EPERM) and one
it may not write (EACCES), 300 in a row, and the directory renamed under
the published path text and descriptor. Its output must equal the host's
too, both ways.

Then a tmpfs mounted with nr_inodes=30 filled up (ENOSPC, then room again
after unlinks; another tmpfs mounted on a directory of it and unmounted),
and GNU tar extracting 120 files in three directories, as the host
extracts them.
"""
from __future__ import annotations

import difflib
import io
import re
import shutil
import subprocess
import tarfile
import tempfile
from pathlib import Path

import pytest

from guestroot import REPO, compile_static, run_umlpy, umlpy_run

pytestmark = pytest.mark.skipif(shutil.which("gcc") is None,
                                reason="gcc missing (install gcc and libc6-dev)")

# The creates in main() of createseq.c that may be made in C: the second and
# later of each run of new names in one directory, by one task and one
# spelling, with flags C takes, a mode without set-id bits and nothing in
# between that ends the published directory (any call Python handles that
# may change something: a umask, chdir, set*id, fchmod, mkdir, symlink,
# unlink, rename, fork, or a create by another spelling or with other flags):
#   1. 40 "sub/fNN" by openat                                        39
#   3. 5 under umask 027, 5 under umask 0, 3 under 022               4+4+2
#   4. 2 plain, then (after the set-id ones) 2 sticky and 2 more     1+3
#   5. "sub/n", the 255-byte name, n2- .. n5-, via, dbl, dot runs;
#      6 odd names; e0, e1; e1-0, e1-1                               12+5+1+1
#   6. 4 absolute; 4 relative and 4 creat from the cwd               3+7
#   7. 9 in "sub/" (O_RDONLY, O_APPEND, O_TRUNC); 3 around a gap;
#      fk0 (fk1 after a fork); 2 plain after the O_NOATIME ones      8+2+1+1
#   8. root's 2 in locked/; the child's 2 there as root, 2 in open/,
#      2 after each of setfsuid and setfsgid, 2 more (after 2 EEXIST);
#      as uid 1000 5 in open/, 3 and 2 (not the 2 set-gid ones) in
#      opensg/, 2 in own/ before its fchmod and 2 after               1+1+1+1+1+1+4+2+1+1+1
#   9. 3 in sg/, then (after the set-gid ones) 2 more                2+1
#  10. g0, g1, f09 and f05..f07 again; p0, p1; 4 in sub2/; 3 from
#      the cwd; 3 in the new sub/                                    5+1+3+2+2
#  11. 13 until EMFILE                                               12
#  11b. 300 in a row (one of them after 256 waiting: Python's)        298
# 435 in all; at least half of them must be made in C.
FAST_CREATES_AT_LEAST = 218


def _program(tmp_path_factory, name: str) -> Path:
    d = tmp_path_factory.mktemp(name)
    return compile_static((REPO / "tests" / f"{name}.c").read_text(), d / name, [REPO / "tests"])


@pytest.fixture(scope="module")
def createseq(tmp_path_factory) -> Path:
    return _program(tmp_path_factory, "createseq")


def _host_tmp(what: str) -> Path:
    """A fresh directory on the host's tmpfs (mode 0755, as the guest's
    mkdir makes it)."""
    work = Path(tempfile.mkdtemp(prefix=f"umlpy-fastcreate-{what}-", dir="/dev/shm"))
    work.chmod(0o755)
    return work


def _native(prog: Path, what: str) -> str:
    """prog's output run on the host in a fresh directory of its tmpfs."""
    work = _host_tmp(what)
    try:
        res = subprocess.run([str(prog), str(work)], capture_output=True, text=True,
                             timeout=60)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    assert res.returncode == 0, res.stdout + res.stderr
    return res.stdout


@pytest.fixture(scope="module")
def native(createseq) -> str:
    return _native(createseq, "seq")


def _counter(stderr: str, name: str, absent_is_zero: bool = False) -> int:
    m = re.search(name + r"=(\d+)", stderr)
    if m is None and absent_is_zero:
        return 0
    assert m, f"no {name} counter in: {stderr}"
    return int(m.group(1))


def _fast_creates(stderr: str, absent_is_zero: bool = False) -> int:
    return _counter(stderr, "fast_creates", absent_is_zero)


def _same_as_native(res, native: str) -> None:
    assert res.returncode == 0, res.stdout + res.stderr
    diff = "".join(difflib.unified_diff(native.splitlines(True), res.stdout.splitlines(True),
                                        "native", "guest", n=1))
    assert not diff, diff + res.stderr
    assert "oopses=0" in res.stderr, res.stderr


@pytest.mark.parametrize("in_c", [True, False], ids=["c", "python-only"])
def test_tmpfs(createseq, native, in_c):
    """The guest kernel's /dev/shm. With UMLPY_NO_FAST_STATS=1 every create
    reaches Python: the same output, and nothing counted."""
    res = run_umlpy(umlpy_run(["/bin/sh", "-c",
                               f"mkdir /dev/shm/w && exec {createseq} /dev/shm/w"],
                              ["--counters"]), env=None if in_c else {"UMLPY_NO_FAST_STATS": "1"})
    _same_as_native(res, native)
    if in_c:
        assert _fast_creates(res.stderr) >= FAST_CREATES_AT_LEAST, res.stderr
    else:
        assert _fast_creates(res.stderr, absent_is_zero=True) == 0, res.stderr


# ---- unlink ----

# The unlinks in unlinkseq.c that may be made in C include the 30 of step 1
# (by the path text the creates there published) and 297 of the 300 of
# step 6; the others are checked for their answers only.
FAST_UNLINKS_AT_LEAST = 320


@pytest.fixture(scope="module")
def unlinkseq(tmp_path_factory) -> Path:
    return _program(tmp_path_factory, "unlinkseq")


@pytest.mark.parametrize("in_c", [True, False], ids=["c", "python-only"])
def test_unlink(unlinkseq, in_c):
    """Names removed in C as Python removes them, the host's tmpfs as
    the reference."""
    native = _native(unlinkseq, "unlink")
    res = run_umlpy(umlpy_run(["/bin/sh", "-c",
                               f"mkdir /dev/shm/w && exec {unlinkseq} /dev/shm/w"],
                              ["--counters"]), env=None if in_c else {"UMLPY_NO_FAST_STATS": "1"})
    _same_as_native(res, native)
    unlinks = _counter(res.stderr, "fast_unlinks")
    if in_c:
        assert unlinks >= FAST_UNLINKS_AT_LEAST, res.stderr
    else:
        assert unlinks == 0, res.stderr


# ---- a tmpfs with few inodes ----

NR_INODES_SETUP = "mount -t tmpfs -o nr_inodes=30 none {d} && exec {prog} --nr-inodes {d}"


@pytest.mark.skipif(shutil.which("unshare") is None, reason="unshare missing (util-linux)")
def test_nr_inodes(createseq):
    """Files made in C take inodes as Python's do: ENOSPC at the same
    count, room again after unlinks (and a directory taking one)."""
    work = _host_tmp("nr")
    try:
        native = subprocess.run(["unshare", "-m", "/bin/sh", "-c",
                                 NR_INODES_SETUP.format(d=work, prog=createseq)],
                                capture_output=True, text=True, timeout=60)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    assert native.returncode == 0, native.stdout + native.stderr
    assert native.stdout.startswith("created 29, then ENOSPC\n"), native.stdout
    res = run_umlpy(umlpy_run(["/bin/sh", "-c", "mkdir /dev/shm/n && "
                               + NR_INODES_SETUP.format(d="/dev/shm/n", prog=createseq)],
                              ["--counters"]))
    _same_as_native(res, native.stdout)
    assert _fast_creates(res.stderr) > 0, res.stderr


# ---- GNU tar ----

def _tarball(path: Path) -> None:
    """Under top/, 3 directories of 40 files each: sizes from 0 to 9 KiB,
    modes without set-id bits, owners 0 and 1000, fixed mtimes (whole and
    half seconds: a pax archive)."""
    modes = [0o644, 0o600, 0o755, 0o640, 0o444, 0o700, 0o664, 0o400, 0o750, 0o1755]
    owners = [(0, 0), (1000, 1000), (0, 1000)]
    with tarfile.open(path, "w", format=tarfile.PAX_FORMAT) as t:
        for d in range(3):
            info = tarfile.TarInfo(f"top/d{d}")
            info.type, info.mode, info.mtime = tarfile.DIRTYPE, 0o755, 1300000000 + d
            t.addfile(info)
            for i in range(40):
                data = bytes((d * 40 + i + k) % 251 for k in range((i * 233 + d * 97) % 9300))
                f = tarfile.TarInfo(f"top/d{d}/f{i:02d}")
                f.size, f.mode = len(data), modes[(i + d) % len(modes)]
                f.uid, f.gid = owners[i % len(owners)]
                f.mtime = 1200000000 + d * 1000 + i * 60 + (0.5 if i % 4 == 0 else 0)
                t.addfile(f, io.BytesIO(data))
        top = tarfile.TarInfo("top")
        top.type, top.mode, top.mtime = tarfile.DIRTYPE, 0o755, 1400000000
        t.addfile(top)


# What was extracted ("." itself, not in the archive, left out), then a
# checksum of each file's contents: the same shell line natively and in the
# guest.
FIND = ["find", ".", "-mindepth", "1", "-printf", r"%p %m %U %G %T@ %s %y\n"]
LISTING = (" ".join(f"'{a}'" for a in FIND) + " | LC_ALL=C sort && echo -- && "
           "find . -type f -exec md5sum {} + | LC_ALL=C sort -k 2")


def test_tar_x(tmp_path):
    """GNU tar x as root into the guest's /dev/shm: files, modes, owners,
    mtimes, sizes and contents as the host's own extraction, most files
    made in C."""
    tarball = tmp_path / "t.tar"
    _tarball(tarball)
    work = _host_tmp("tar")
    try:
        subprocess.run(["tar", "-xpf", str(tarball), "--numeric-owner"], cwd=work, check=True,
                       timeout=60)
        native = subprocess.run(["/bin/sh", "-c", LISTING], cwd=work, capture_output=True,
                                text=True, check=True, timeout=60).stdout
    finally:
        shutil.rmtree(work, ignore_errors=True)
    # top, its 3 directories and 120 files; "--"; 120 checksums
    assert len(native.splitlines()) == 4 + 120 + 1 + 120, native
    res = run_umlpy(umlpy_run(["/bin/sh", "-c",
                               f"mkdir /dev/shm/x && cd /dev/shm/x && "
                               f"tar -xpf {tarball} --numeric-owner && {LISTING}"],
                              ["--counters"]))
    assert res.returncode == 0, res.stdout + res.stderr
    diff = "".join(difflib.unified_diff(native.splitlines(True), res.stdout.splitlines(True),
                                        "native", "guest", n=1))
    assert not diff, diff + res.stderr
    assert "oopses=0" in res.stderr, res.stderr
    # 120 files in 3 directories: all but the first of each may be made in C
    assert _fast_creates(res.stderr) >= 100, res.stderr
