"""The VFS acceptance workloads (issue 3), each run natively and in the guest, compared.

The guest runs with the default root of ``umlpy run``: the host's ``/`` read-only
under a tmpfs.  Every workload is one shell (or python3) script from the host's own
userland, run twice: natively in a fresh host directory under /tmp, and in the guest
in a fresh directory under the guest's /tmp.  Scripts work with relative paths, so
their outputs must be equal; only what must differ between two file systems is
normalized (directory sizes, block counts; times unless the script sets them).

Scripts print sections (``@@ name``) so that a failure names the workload.
"""

from __future__ import annotations

import difflib
import hashlib
import os
import re
import shutil
import stat
import subprocess
import tempfile
import textwrap
import uuid
from pathlib import Path
from typing import Callable, Iterator, Mapping, Optional, Sequence

import pytest

from guestroot import describe, guest_env, run_umlpy, umlpy_run

PY = "/usr/bin/python3"          # the same interpreter natively and in the guest
SH = "/bin/sh"


# --------------------------------------------------------------------------
# running things natively and in the guest


def env(extra: Optional[Mapping[str, str]] = None) -> dict[str, str]:
    """The environment of both sides: guest_env's, plus a fixed time zone for touch -d."""
    return guest_env({"TZ": "UTC", **(extra or {})})


def umlpy_argv(argv: Sequence[str], *, root: Optional[str] = None,
               upper: Optional[str] = None) -> list[str]:
    opts = (["--root", root] if root else []) + (["--upper", upper] if upper else [])
    return umlpy_run(argv, opts)


def _run(cmd: Sequence[str], *, cwd: str, timeout: float, input: Optional[str],
         extra_env: Optional[Mapping[str, str]]) -> subprocess.CompletedProcess:
    return run_umlpy(cmd, input=input, timeout=timeout, env={"TZ": "UTC", **(extra_env or {})},
                     cwd=cwd)


def guest(argv: Sequence[str], *, root: Optional[str] = None, upper: Optional[str] = None,
          timeout: float = 120, input: Optional[str] = None,
          extra_env: Optional[Mapping[str, str]] = None) -> subprocess.CompletedProcess:
    """Run ``argv`` under ``umlpy run`` (default root unless ``root``) from the host's /."""
    return _run(umlpy_argv(argv, root=root, upper=upper), cwd="/", timeout=timeout,
                input=input, extra_env=extra_env)


def native(argv: Sequence[str], *, timeout: float = 60, input: Optional[str] = None,
           extra_env: Optional[Mapping[str, str]] = None) -> subprocess.CompletedProcess:
    return _run(argv, cwd="/", timeout=timeout, input=input, extra_env=extra_env)


def sh(script: str, *args: str) -> list[str]:
    return [SH, "-c", textwrap.dedent(script), "sh", *args]


def sections(text: str) -> dict[str, str]:
    """Split a script's output at its ``@@ name`` lines."""
    out: dict[str, list[str]] = {"": []}
    cur = ""
    for line in text.splitlines():
        if line.startswith("@@ "):
            cur = line[3:].strip()
            out[cur] = []
        else:
            out[cur].append(line)
    return {k: "\n".join(v) for k, v in out.items()}


def assert_same(native_out: str, guest_res: subprocess.CompletedProcess,
                normalize: Callable[[str], str] = lambda s: s) -> None:
    """Every section of the guest's output equals the native one (after normalize)."""
    want, got = sections(normalize(native_out)), sections(normalize(guest_res.stdout))
    diffs = []
    for name in [*want, *(n for n in got if n not in want)]:
        if want.get(name) != got.get(name):
            diff = difflib.unified_diff((want.get(name) or "<missing>").splitlines(),
                                        (got.get(name) or "<missing>").splitlines(),
                                        "native", "guest", lineterm="", n=1)
            diffs.append(f"--- section {name!r}:\n" + "\n".join(diff))
    assert not diffs, ("guest output differs from native:\n" + "\n".join(diffs)
                       + f"\nexit status: {guest_res.returncode}\nstderr:\n{guest_res.stderr}")


_LS_LINE = re.compile(r"^[-dlpcbs][-rwxsStT]{9}[.+]? .*$", re.M)
_DIR_SIZE = re.compile(r"^(d[-rwxsStT]{9}[.+]? \d+ \S+ \S+ )\d+", re.M)
_TOTAL = re.compile(r"^total \d+$", re.M)


def normalize_ls(text: str) -> str:
    """Directory sizes and block totals depend on the file system (ext4 here, tmpfs there),
    and ls pads its columns to the widest value, so runs of spaces are squeezed too."""
    text = _LS_LINE.sub(lambda m: re.sub(" +", " ", m.group(0)), text)
    return _TOTAL.sub("total _", _DIR_SIZE.sub(r"\1_", text))


def snapshot(top: Path) -> dict[str, tuple]:
    """Everything about a host tree a guest could change: type, mode, owner, link count,
    size, content (hash) or link target, mtime and ctime (so even a chmod to the same
    mode shows).  Not atime: a read may update it."""
    snap: dict[str, tuple] = {}
    paths = [str(top)] + [os.path.join(d, n) for d, dirs, files in os.walk(top) for n in dirs + files]
    for p in paths:
        s = os.lstat(p)
        if stat.S_ISREG(s.st_mode):
            with open(p, "rb") as f:
                body = hashlib.sha256(f.read()).hexdigest()
        else:
            body = os.readlink(p) if stat.S_ISLNK(s.st_mode) else ""
        snap[os.path.relpath(p, top)] = (s.st_mode, s.st_uid, s.st_gid, s.st_nlink, s.st_size,
                                         body, s.st_mtime_ns, s.st_ctime_ns)
    return snap


def assert_untouched(before: dict, top: Path, res: subprocess.CompletedProcess) -> None:
    """The host tree `top` is as `before` (a snapshot); else name what changed."""
    after = snapshot(top)
    changed = sorted(k for k in set(before) | set(after) if before.get(k) != after.get(k))
    assert not changed, f"host tree {top} changed: {changed}" + describe(res)


# --------------------------------------------------------------------------
# fixtures


@pytest.fixture
def native_dir() -> Iterator[str]:
    """A fresh host directory under /tmp that uid 1000 can reach (pytest's tmp_path
    sits below a 0700 directory)."""
    d = tempfile.mkdtemp(prefix="umlpy-vfs-native-", dir="/tmp")
    os.chmod(d, 0o755)
    yield d
    shutil.rmtree(d, ignore_errors=True)


@pytest.fixture
def guest_dir(request) -> Iterator[str]:
    """A guest path under /tmp that does not exist on the host.  The guest creates it;
    with the overlay it vanishes at exit, without it (the old hostfs root) it would
    be left on the host, so it is removed here either way."""
    d = f"/tmp/umlpy-vfs-guest-{request.node.name[:40]}-{uuid.uuid4().hex[:8]}"
    yield d
    shutil.rmtree(d, ignore_errors=True)


@pytest.fixture
def canary(tmp_path) -> Path:
    """A host tree on the overlay's lower layer, visible in the guest at the same path."""
    c = tmp_path / "canary"
    (c / "sub").mkdir(parents=True)
    (c / "a").write_text("alpha\n")
    (c / "b").write_text("bravo bravo\n")
    (c / "sub" / "c").write_text("charlie\n")
    os.symlink("a", c / "l")
    os.chmod(c / "a", 0o640)
    os.utime(c / "a", (981173106, 981173106))
    # tmp_path's parents are 0700 root: the guest is root, that is fine.
    return c


def _need(*tools: str) -> None:
    missing = [t for t in tools if shutil.which(t) is None]
    if missing:
        pytest.skip(f"host tools missing: {missing}")


# --------------------------------------------------------------------------
# coreutils on a tree the test makes


TREE = """
exec 2>&1
umask 022
mkdir -p "$1" && cd "$1" || exit 99
mkdir -p t/a/b t/c t/e
printf 'hello\\n' > t/a/f1
seq 1 3000 > t/a/b/f2
: > t/e/empty
ln -s ../a/f1 t/c/rel
ln -s /nonexistent/abs t/c/dangling
ln t/a/f1 t/c/hard
chmod 0640 t/a/f1; chmod 0750 t/a/b; chmod 4755 t/a/b/f2
find t -exec touch -h -d '2001-02-03 04:05:06' {} +
"""

COREUTILS = TREE + """
echo '@@ ls-lR'; ls -lR t
echo '@@ stat'; stat -c '%n %a %U %G %s %F %h' t/a/f1 t/a/b/f2 t/e/empty t/c/rel t/c/dangling t/c/hard
echo '@@ stat-dirs'; stat -c '%n %a %U %G %F %h' t t/a t/a/b t/c t/e
echo '@@ touch'
touch -d '2001-02-03 04:05:06.123456789' t/e/empty
touch -a -d '1999-12-31 23:59:59' t/e/empty
stat -c '%x|%y|%X|%Y' t/e/empty
touch -h -d '2002-01-01 00:00:00' t/c/rel
stat -c '%Y' t/c/rel; stat -L -c '%Y' t/c/rel
touch -r t/e/empty t/a/f1; stat -c '%Y %y' t/a/f1 t/c/hard
echo '@@ du'; du -s --apparent-size -B1 t; echo "dirs: $(find t -type d -printf '%s+')0"
echo '@@ cp-a'; cp -a t u && ls -lR u
echo '@@ cp-a-find'; find u -printf '%p %y %m %n %U %G %l\\n' | sort
echo '@@ mv'
mv u/a u/moved && mv u/c/hard u/moved/renamed && mv u/e/empty u/top && mv u/top u/moved/b/
mv u/moved/f1 u/moved/renamed; echo "mv-over=$?"
find u -printf '%p %y %m %n %l\\n' | sort; find u ! -type d -printf '%p %s\\n' | sort
echo '@@ rm'
rm -rf u/moved u/c/rel; find u | sort; rm -rf u; ls; rm -rf nonexistent; echo "rm-missing=$?"
rmdir t 2>/dev/null; echo "rmdir-nonempty=$?"
echo '@@ ln-s'
ln -s ../../t/a t/e/up && readlink t/e/up && cat t/e/up/f1
ln -s f1 t/a/self2 && ln -sf b t/a/self2 && readlink t/a/self2
ln -s x t/a/f1; echo "ln-exists=$?"
ls -d t/e/up/b t/e/up/../a
echo '@@ find'
find t -name 'f*' | sort
find t -type l | sort
find t -perm -4000
find t -type f -links 2 | sort
find -L t -type f | sort
find t -maxdepth 1 -mindepth 1 | sort
find t -path '*/b/*' -o -name empty | sort
echo '@@ chmod-R'; cp -a t w && chmod -R go-rwx,u+rwX w && find w -printf '%m %y %p\\n' | sort
echo '@@ chown-R'
chown -R 1234:5678 w && find w -printf '%U %G %y %p\\n' | sort
chown -h 42:43 w/c/rel && stat -c '%n %u %g' w/c/rel w/a/f1
chown 7 w/a/f1 && chgrp 8 w/a/b && stat -c '%n %u %g' w/a/f1 w/a/b
echo '@@ df'; df -P / >df.out; echo "df=$?"; head -n 1 df.out | tr -s ' '; tail -n 1 df.out | awk '{print $NF}'
"""


def test_coreutils_workloads(native_dir, guest_dir):
    nat = native(sh(COREUTILS, native_dir))
    assert "@@ df" in nat.stdout, nat          # the script itself ran to the end natively
    res = guest(sh(COREUTILS, guest_dir))
    assert_same(nat.stdout, res, normalize_ls_du)


def normalize_ls_du(text: str) -> str:
    """ls -l directory sizes and totals, and du's total minus the directories' own sizes
    (4096 each on ext4, entry-count based on tmpfs): what is left is files and symlinks."""
    text = normalize_ls(text)
    m = re.search(r"^(\d+)\tt\ndirs: ([\d+]+)$", text, re.M)
    if m:
        files = int(m.group(1)) - sum(int(x) for x in m.group(2).split("+"))
        text = text[:m.start()] + f"du-files={files}" + text[m.end():]
    return text


# --------------------------------------------------------------------------
# tar keeps modes, numeric owners, symlinks and hard links


TAR = """
exec 2>&1
umask 022
mkdir -p "$1" && cd "$1" || exit 99
mkdir -p src/d/sub src/e
printf x > src/d/f600; printf yy > src/exe; printf zzz > src/e/g
ln src/exe src/d/exe-hard
ln -s ../exe src/d/rel; ln -s /etc/passwd src/abs; ln -s sub src/d/dirlink
chown 1234:5678 src/d/f600 src/exe; chown -h 42:43 src/d/rel; chown 7:8 src/d/sub
chmod 600 src/d/f600; chmod 4755 src/exe; chmod 2750 src/d/sub; chmod 1777 src/d; chmod 0 src/e/g
chown 9:9 src/e/g
echo '@@ chown-clears-suid'; chmod 6755 src/e/g; chown 10 src/e/g; stat -c '%a %u %g' src/e/g
find src -exec touch -h -d '2003-04-05 06:07:08' {} +
echo '@@ tar'
tar --numeric-owner -cpf a.tar -C src . && echo tar-c-ok
mkdir dst && tar --numeric-owner -xpf a.tar -C dst && echo tar-x-ok
echo '@@ src'; (cd src && find . -printf '%p %m %U %G %n %y %l %TY\\n' | sort)
echo '@@ dst'; (cd dst && find . -printf '%p %m %U %G %n %y %l %TY\\n' | sort)
# Which name of a hard-linked file is archived as the file and which as the link
# follows readdir order, which is the file system's: compare modes, owners, names.
echo '@@ list'; tar --numeric-owner -tvf a.tar | awk '{print substr($1, 2), $2, $6}' | sort
tar -tvf a.tar | grep -c ' link to '

echo '@@ content'; cat dst/exe dst/d/exe-hard dst/d/rel; echo; cmp src/e/g dst/e/g && echo same
"""


def test_tar_round_trip(native_dir, guest_dir):
    _need("tar")
    nat = native(sh(TAR, native_dir))
    want = sections(nat.stdout)
    assert "tar-x-ok" in nat.stdout and want["src"] == want["dst"], nat   # the workload is sound
    res = guest(sh(TAR, guest_dir))
    assert_same(nat.stdout, res)
    got = sections(res.stdout)
    assert got.get("src") == got.get("dst"), describe(res)


# --------------------------------------------------------------------------
# a fifo between two processes


FIFO = """
exec 2>&1
mkdir -p "$1" && cd "$1" || exit 99
mkfifo -m 0620 p && stat -c '%F %a %s' p && [ -p p ] && echo is-fifo
# Readers under `timeout`: a fifo open blocks until the other end comes, so a broken
# writer would otherwise hang the test instead of failing it.
( echo "line one"; echo "line two" ) > p &
timeout 10 cat p; wait
timeout 10 cat p > got & printf 'reader first\\n' > p; wait; cat got
head -c 300000 /dev/zero > p & timeout 10 wc -c < p; wait
ls -l p | cut -c1
rm p && [ ! -e p ] && echo removed
"""


def test_mkfifo_between_processes(native_dir, guest_dir):
    nat = native(sh(FIFO, native_dir))
    assert "removed" in nat.stdout, nat
    res = guest(sh(FIFO, guest_dir), timeout=30)
    assert_same(nat.stdout, res)


TMPFILE = """
import os, sys
d = os.path.join(sys.argv[1], "sg")
os.makedirs(d)
os.chown(d, 0, 4242)
os.chmod(d, 0o2777)
for mode in (0o640, 0o2750):
    fd = os.open(d, os.O_TMPFILE | os.O_RDWR, mode)
    s = os.fstat(fd)
    print("O_TMPFILE", oct(mode), "gid", s.st_gid, "mode", oct(s.st_mode & 0o7777), "nlink", s.st_nlink)
"""


def test_tmpfile_in_a_setgid_directory(native_dir, guest_dir):
    """An O_TMPFILE file takes a set-group-id directory's group, as a created one does."""
    nat = native([PY, "-c", TMPFILE, native_dir])
    assert "gid 4242" in nat.stdout, nat
    assert_same(nat.stdout, guest([PY, "-c", TMPFILE, guest_dir], timeout=60))


# --------------------------------------------------------------------------
# /proc: ps, /proc/self/exe, /proc/self/cwd


PROC = """
exec 2>&1
mkdir -p "$1" && cd "$1" || exit 99
sleep 30 & s=$!
i=0; until read c 2>/dev/null < /proc/$s/comm && [ "$c" = sleep ] || [ $i -gt 300 ]; do i=$((i + 1)); done
echo '@@ ps'; ps -eo pid=,ppid=,comm= > ps.out; echo "ps=$?"; cat ps.out
echo '@@ ps-aux'; ps aux > aux.out; echo "ps-aux=$?"; head -n 1 aux.out; tail -n +2 aux.out | wc -l
echo '@@ ps-args'; ps -o args= -p 1 | cut -c1-9
echo '@@ exe'; readlink /proc/self/exe
echo '@@ cwd'; [ "$(readlink /proc/self/cwd)" = "$(pwd -P)" ] && echo cwd-matches
echo '@@ comm'; cat /proc/$$/comm; tr '\\0' ' ' < /proc/$s/cmdline; echo
{ kill $s; wait $s; } 2>/dev/null     # the shell may or may not report "Terminated"
"""


def test_proc_lists_guest_processes_only(guest_dir, native_dir):
    _need("ps")
    nat = native(sh(PROC, native_dir))
    res = guest(sh(PROC, guest_dir), timeout=60)
    got, want = sections(res.stdout), sections(nat.stdout)
    # Exactly the three guest processes, with guest pids: the shell is pid 1.
    procs = sorted(tuple(line.split()) for line in got.get("ps", "").splitlines()[1:])
    assert got.get("ps", "").startswith("ps=0"), describe(res)
    assert len(procs) == 3, describe(res)
    by_comm = {comm: (int(pid), int(ppid)) for pid, ppid, comm in procs}
    assert by_comm.get("sh") == (1, 0), describe(res)
    assert set(by_comm) == {"sh", "sleep", "ps"}, describe(res)
    assert by_comm["sleep"][1] == 1 and by_comm["ps"][1] == 1, describe(res)
    assert all(pid < 100 for pid, _ in by_comm.values()), describe(res)
    # ps aux: same header as natively, one line per guest process.
    aux = got.get("ps-aux", "").splitlines()
    squeeze = lambda line: " ".join(line.split())    # noqa: E731  (PID width follows pid_max)
    assert [squeeze(a) for a in aux[:2]] == ["ps-aux=0", squeeze(want["ps-aux"].splitlines()[1])], \
        describe(res)
    assert aux[2:] == ["3"], describe(res)
    assert got.get("ps-args") == "/bin/sh -", describe(res)
    for name in ("exe", "cwd", "comm"):
        assert got.get(name) == want[name], (name, describe(res))


# --------------------------------------------------------------------------
# python3 + sqlite3 on the guest's tmpfs /dev/shm


SQLITE = r"""
import os, sqlite3, subprocess, sys
path, mode = sys.argv[1], sys.argv[2]
if mode == "read":
    con = sqlite3.connect(path)
    print(con.execute("pragma journal_mode").fetchone()[0])
    print(con.execute("select count(*), sum(n), max(s) from t").fetchone())
    print(con.execute("pragma integrity_check").fetchone()[0])
    con.close()
    sys.exit(0)
con = sqlite3.connect(path)
print(con.execute("pragma journal_mode=wal").fetchone()[0])     # -shm is mmap(MAP_SHARED)
con.execute("create table t (n integer primary key, s text)")
with con:
    con.executemany("insert into t values (?, ?)", ((i, "row%05d" % i) for i in range(5000)))
with con:
    con.execute("update t set s = s || '!' where n % 7 = 0")
con.execute("pragma wal_checkpoint(truncate)")
con.close()
print(os.path.getsize(path))
# A second process reads the database back.
out = subprocess.run([sys.executable, "-c", sys.argv[3], path, "read"], capture_output=True, text=True)
print(out.stdout + out.stderr, end="")
os.unlink(path)
print([os.path.exists(path + ext) for ext in ("", "-wal", "-shm")])
open(path + ".keep", "w").close()      # left behind: it must not appear on the host
"""


def test_python_sqlite_on_dev_shm():
    tag = uuid.uuid4().hex[:8]
    nat_db, guest_db = f"/dev/shm/umlpy-vfs-{tag}-native.db", f"/dev/shm/umlpy-vfs-{tag}.db"

    def script(db: str) -> list[str]:
        return sh('stat -f -c %T /dev/shm && exec "$@"', PY, "-c", SQLITE, db, "write", SQLITE)
    try:
        nat = native(script(nat_db))
        assert nat.returncode == 0 and "\nok\n" in nat.stdout, nat     # the workload is sound
        res = guest(script(guest_db), timeout=120)
        assert res.returncode == 0, describe(res)
        assert res.stdout == nat.stdout, describe(res)
        # The guest's /dev/shm is a tmpfs of its own, not the host's.
        assert not os.path.exists(guest_db + ".keep"), describe(res)
    finally:
        for path in (nat_db, guest_db):
            for ext in ("", "-wal", "-shm", ".keep"):
                if os.path.exists(path + ext):
                    os.unlink(path + ext)


# --------------------------------------------------------------------------
# the overlay: writes vanish, or persist with --upper; the lower is never touched


MUTATE = """
exec 2>&1
cd "$1" || exit 99
echo more >> a; : > b; chmod 0600 a; chown 1:2 sub/c; rm l; mv sub/c sub/c2
mkdir newdir; echo new > newfile; ln a hardlink; touch -d '2000-01-01 00:00:00' b
ln -s newfile sym; echo made > "$2"
"""

LIST = """
exec 2>&1
cd "$1" || exit 99
find . ! -type d -printf '%p %y %m %U %G %s %n %l %TY\\n' | sort
find . -type d -printf '%p %y %m %U %G\\n' | sort
cat a; cat "$2"
"""


def test_overlay_writes_vanish_without_upper(canary):
    new = f"/tmp/umlpy-vfs-vanish-{uuid.uuid4().hex[:8]}"
    before = snapshot(canary)
    original = native(sh(LIST, str(canary), new)).stdout
    try:
        mutated = guest(sh(MUTATE + LIST, str(canary), new))
        assert mutated.returncode == 0 and "made" in mutated.stdout, describe(mutated)
        assert mutated.stdout != original, describe(mutated)          # the guest saw its writes
        assert "alpha\nmore" in mutated.stdout, describe(mutated)
        assert_untouched(before, canary, mutated)
        assert not os.path.lexists(new), "a guest write reached the host's /tmp"
        again = guest(sh(LIST, str(canary), new))
        assert again.stdout == original, "writes survived the guest's exit" + describe(again)
    finally:
        if os.path.lexists(new):
            os.unlink(new)


def test_overlay_upper_keeps_writes(canary, tmp_path):
    upper = tmp_path / "upper"
    upper.mkdir()
    new = f"/tmp/umlpy-vfs-upper-{uuid.uuid4().hex[:8]}"
    before = snapshot(canary)
    original = native(sh(LIST, str(canary), new)).stdout
    try:
        mutated = guest(sh(MUTATE + LIST, str(canary), new), upper=str(upper))
        assert mutated.returncode == 0 and "made" in mutated.stdout, describe(mutated)
        assert_untouched(before, canary, mutated)
        assert not os.path.lexists(new), "a guest write reached the host's /tmp"
        assert any(upper.iterdir()), "nothing was kept in the upper directory"
        # A second instance on the same upper sees every change, a third without it none.
        again = guest(sh(LIST, str(canary), new), upper=str(upper))
        assert again.stdout == mutated.stdout, describe(again)
        plain = guest(sh(LIST, str(canary), new))
        assert plain.stdout == original, describe(plain)
    finally:
        if os.path.lexists(new):
            os.unlink(new)


# --------------------------------------------------------------------------
# ownership is virtual: guest root chowns, the host file keeps its owner


CHOWN = """
exec 2>&1
mkdir -p "$1" && echo x > "$1/f" && chown 1234:5678 "$1/f" "$2" && stat -c '%u %g' "$1/f" "$2"
"""


def chowned_on_host(top: Path, uid: int, gid: int) -> list[str]:
    """Paths under top that carry the guest's uid or gid on the host."""
    return [p for p, (_, u, g, *rest) in snapshot(top).items() if u == uid or g == gid]


def test_chown_is_virtual_with_upper(canary, tmp_path, guest_dir):
    upper = tmp_path / "upper"
    upper.mkdir()
    target = str(canary / "b")
    before = snapshot(canary)
    res = guest(sh(CHOWN, guest_dir, target), upper=str(upper))
    assert res.stdout == "1234 5678\n1234 5678\n", describe(res)
    assert_untouched(before, canary, res)
    assert not chowned_on_host(upper, 1234, 5678), "the kept copy was chowned on the host"
    again = guest(["stat", "-c", "%u %g", f"{guest_dir}/f", target], upper=str(upper))
    assert again.stdout == "1234 5678\n1234 5678\n", describe(again)


def test_chown_is_virtual_with_host_root(fresh_busybox_root):
    root = fresh_busybox_root
    res = guest(sh(CHOWN + "chown -h 3:4 /bin/sh && stat -c '%u %g' /bin/sh\n", "/tmp/d", "/etc/passwd"),
                root=str(root))
    assert res.stdout == "1234 5678\n1234 5678\n3 4\n", describe(res)
    host_uid = os.getuid()
    for p in (root / "tmp/d/f", root / "etc/passwd", root / "bin/sh"):
        s = os.lstat(p)
        assert (s.st_uid, s.st_gid) == (host_uid, os.getgid()), f"{p} was chowned on the host"
    again = guest(["/bin/stat", "-c", "%u %g", "/tmp/d/f", "/bin/sh"], root=str(root))
    assert again.stdout == "1234 5678\n3 4\n", "ownership did not persist" + describe(again)


# --------------------------------------------------------------------------
# a non-root guest user gets EACCES and EPERM where Linux gives them


PERMS = r"""
import errno, os, stat, sys
os.chdir(sys.argv[1]); os.umask(0o022)

def mk(path, uid=0, gid=0, mode=0o644, data="x\n"):
    with open(path, "w") as f:
        f.write(data)
    os.chown(path, uid, gid); os.chmod(path, mode)

def mkd(path, uid=0, gid=0, mode=0o755):
    os.mkdir(path); os.chown(path, uid, gid); os.chmod(path, mode)

mkd("rootdir"); mk("rootdir/file"); mk("rootfile"); mk("secret", mode=0o600)
mk("other", 2000, 2000); mk("groupfile", 0, 1000, 0o660)
mkd("sticky", mode=0o1777); mk("sticky/others", 2000, 2000)
mkd("shared", mode=0o777); mk("shared/others", 2000, 2000)
mkd("mine", 1000, 1000); mkd("closed", mode=0o700); mk("closed/x")

def attempt(name, fn):
    try:
        r = fn()
        print(name, "ok" if r is None or isinstance(r, int) else r)
    except OSError as e:
        print(name, errno.errorcode.get(e.errno, e.errno))

pid = os.fork()
if pid == 0:
    try:
        os.setgroups([]); os.setgid(1000); os.setuid(1000)
        print("ids", os.getuid(), os.geteuid(), os.getgid(), os.getgroups())
        attempt("read-root-0644", lambda: os.close(os.open("rootfile", os.O_RDONLY)))
        attempt("write-root-0644", lambda: os.open("rootfile", os.O_WRONLY))
        attempt("trunc-create-root-0644", lambda: os.open("rootfile", os.O_WRONLY | os.O_CREAT | os.O_TRUNC))
        attempt("truncate-root-0644", lambda: os.truncate("rootfile", 0))
        attempt("read-root-0600", lambda: os.open("secret", os.O_RDONLY))
        attempt("access-w-root-0644", lambda: str(os.access("rootfile", os.W_OK)))
        attempt("create-in-root-0755", lambda: os.open("rootdir/new", os.O_WRONLY | os.O_CREAT, 0o644))
        attempt("mkdir-in-root-0755", lambda: os.mkdir("rootdir/newdir"))
        attempt("unlink-in-root-0755", lambda: os.unlink("rootdir/file"))
        attempt("symlink-in-root-0755", lambda: os.symlink("x", "rootdir/sl"))
        attempt("chmod-others-file", lambda: os.chmod("other", 0o777))
        attempt("chmod-root-file", lambda: os.chmod("rootfile", 0o666))
        attempt("utime-now-root-0644", lambda: os.utime("rootfile"))
        attempt("utime-set-root-0644", lambda: os.utime("rootfile", (1, 1)))
        attempt("unlink-sticky-others", lambda: os.unlink("sticky/others"))
        attempt("rename-sticky-others", lambda: os.rename("sticky/others", "sticky/mine"))
        attempt("create-in-sticky", lambda: os.close(os.open("sticky/own", os.O_WRONLY | os.O_CREAT, 0o644)))
        attempt("unlink-own-in-sticky", lambda: os.unlink("sticky/own"))
        attempt("unlink-shared-others", lambda: os.unlink("shared/others"))
        attempt("stat-through-0700", lambda: os.stat("closed/x") and None)
        attempt("chdir-0700", lambda: os.chdir("closed"))
        os.chdir(sys.argv[1])           # in case it wrongly succeeded: keep the rest meaningful
        attempt("listdir-0700", lambda: os.listdir("closed") and None)
        attempt("group-write-0660", lambda: os.close(os.open("groupfile", os.O_WRONLY)))
        attempt("create-own", lambda: os.close(os.open("mine/own", os.O_WRONLY | os.O_CREAT, 0o644)))
        attempt("chown-own-to-root", lambda: os.chown("mine/own", 0, 0))
        attempt("chgrp-own-to-own-group", lambda: os.chown("mine/own", -1, 1000))
        attempt("chgrp-own-to-other-group", lambda: os.chown("mine/own", -1, 2000))
        attempt("chmod-own", lambda: os.chmod("mine/own", 0o600))
        attempt("rename-into-root-dir", lambda: os.rename("mine/own", "rootdir/own"))
        attempt("mknod-fifo-own-dir", lambda: os.mkfifo("mine/fifo"))
        attempt("mknod-chardev", lambda: os.mknod("mine/null", stat.S_IFCHR | 0o666, os.makedev(1, 3)))
        attempt("setuid-back-to-0", lambda: os.setuid(0))
        attempt("mode-of-own", lambda: oct(os.stat("mine/own").st_mode))
    finally:
        sys.stdout.flush()
        os._exit(0)
os.waitpid(pid, 0)
print("after", os.stat("rootfile").st_size, os.path.exists("sticky/others"),
      os.path.exists("shared/others"), oct(os.stat("other").st_mode))
"""


def test_unprivileged_guest_user_permissions(native_dir, guest_dir):
    nat = native([PY, "-c", PERMS, native_dir])
    assert nat.returncode == 0 and "write-root-0644 EACCES" in nat.stdout, nat   # real Linux answers
    res = guest(["/bin/sh", "-c", 'mkdir -m 755 "$1" && exec "$2" -c "$3" "$1"', "sh",
                 guest_dir, PY, PERMS], timeout=120)
    assert res.returncode == 0, describe(res)
    assert res.stdout == nat.stdout, "\n".join(difflib.unified_diff(
        nat.stdout.splitlines(), res.stdout.splitlines(), "native", "guest", lineterm="")) \
        + describe(res)
