"""Escape attempts against the VFS: nothing outside the guest's allowed roots is read
or changed, and the guest gets the errno Linux gives.

Two set-ups:

* ``--root DIR`` (a busybox root): a canary host tree lives outside DIR.  The guest
  must neither read nor change it; every path towards it gives ENOENT, as it would
  in a chroot or a mount namespace.
* the default overlay root: the host's ``/`` is the read-only lower layer, so the
  guest may *read* a canary tree on the host but every change it makes (through
  ``..``, symlinks, hard links, /proc/PID/root, O_PATH reopen, a rename race) must
  land in the upper layer.  The host canary is compared before and after.

The probes are one static C program (escape.c, compiled at set-up) that reads
operations from stdin and prints ``<n> <op> -> OK[:content] | ERRNO`` per line.
Where Linux itself can answer, the same operations are run natively (in a host
directory, or in a ``chroot`` of an identical root) and the outputs compared.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import tempfile
import uuid
from pathlib import Path
from typing import Iterator, Optional, Sequence

import pytest

from guestroot import build_busybox_root, compile_static, describe
from test_guest_vfs import assert_untouched, chowned_on_host, guest, native, snapshot

HERE = Path(__file__).resolve().parent
SECRET = "CANARY-SECRET-5be1"
DEEP = "../" * 20
RACE_ITERATIONS = 3000
# pytest's own pid: a host pid the guest's /proc must not know.
HOST_PID = os.getpid()


# --------------------------------------------------------------------------
# fixtures


@pytest.fixture(scope="session")
def escape_bin(tmp_path_factory) -> Path:
    if shutil.which("gcc") is None:
        pytest.skip("gcc missing (install gcc and libc6-dev)")
    d = tmp_path_factory.mktemp("escape")
    return compile_static((HERE / "escape.c").read_text(), d / "escape", include_dirs=(HERE,))


def make_canary(top: Path) -> Path:
    """A host tree to attack: files of several modes, a subdirectory, an empty one."""
    (top / "sub").mkdir(parents=True)
    (top / "empty").mkdir()
    for name in ("secret", "ro", "b", "c", "d", "sub/x"):
        (top / name).write_text(f"{SECRET} {name}\n")
    os.chmod(top / "ro", 0o444)
    os.symlink("secret", top / "lnk")
    return top


@pytest.fixture
def canary(tmp_path) -> Path:
    return make_canary(tmp_path / "canary")


@pytest.fixture
def canary2(tmp_path) -> Path:
    return make_canary(tmp_path / "canary2")


@pytest.fixture
def root_with_escape(fresh_busybox_root, escape_bin) -> Path:
    return _install(fresh_busybox_root, escape_bin)


def _install(root: Path, escape_bin: Path) -> Path:
    shutil.copy2(escape_bin, root / "bin" / "escape")
    (root / "tmp" / "inside").write_text("INSIDE\n")
    return root


@pytest.fixture
def guest_tmp() -> Iterator[str]:
    """A fresh guest path under /tmp for the overlay runs (removed from the host
    afterwards in case the writes reached it)."""
    d = f"/tmp/umlpy-esc-{uuid.uuid4().hex[:10]}"
    yield d
    shutil.rmtree(d, ignore_errors=True)


# --------------------------------------------------------------------------
# helpers


def ops_text(ops: Sequence[str]) -> str:
    return "".join(op + "\n" for op in ops)


def run_native_ops(escape: str, ops: Sequence[str], chroot: Optional[Path] = None
                   ) -> subprocess.CompletedProcess:
    argv = ["chroot", str(chroot), escape] if chroot else [escape]
    return native(argv, input=ops_text(ops), timeout=120)


def run_guest_ops(escape: str, ops: Sequence[str], *, root: Optional[Path] = None,
                  upper: Optional[Path] = None, timeout: float = 120) -> subprocess.CompletedProcess:
    return guest([escape], root=str(root) if root else None,
                 upper=str(upper) if upper else None, input=ops_text(ops), timeout=timeout)


def results(out: str) -> list[str]:
    return [line for line in out.splitlines() if re.match(r"^\d+ \S+ -> ", line)]


def by_op(lines: Sequence[str]) -> dict[int, list[str]]:
    """Result lines grouped by operation number ("name -> result" each), so that an op
    printing fewer lines than expected does not shift the comparison of the rest."""
    out: dict[int, list[str]] = {}
    for line in lines:
        n, rest = line.split(" ", 1)
        out.setdefault(int(n), []).append(rest)
    return out


def compare(want_lines: Sequence[str], got_lines: Sequence[str], ops: Sequence[str],
            res: subprocess.CompletedProcess, what: str = "Linux") -> None:
    want, got = by_op(want_lines), by_op(got_lines)
    bad = [f"  {i}: {ops[i - 1] if 0 < i <= len(ops) else '?'!r}\n      want {want.get(i)}\n      got  {got.get(i)}"
           for i in sorted(set(want) | set(got)) if want.get(i) != got.get(i)]
    assert not bad, f"guest differs from {what}:\n" + "\n".join(bad) + describe(res)


# what /tmp/inside holds once "opath /tmp/inside" appended through both writable reopens
AFTER_OPATH = "OK:INSIDE|PWNED|PWNED|"
OPATH_STEPS = ("reopen-ro", "reopen-wo", "reopen-rw", "write-opath", "fchmod-opath")
Expected = str | tuple[str, ...]       # one result, or one per opath step


def expected_lines(ops: Sequence[tuple[str, Expected]]) -> list[tuple[str, str]]:
    """(op, "<n> <name> -> <result>") for every line escape prints for `ops`."""
    lines = []
    for i, (op, exp) in enumerate(ops, 1):
        name = op.split()[0]
        if isinstance(exp, tuple):
            lines += [(op, f"{i} {name}/{step} -> {e}") for step, e in zip(OPATH_STEPS, exp)]
        else:
            lines.append((op, f"{i} {name} -> {exp}"))
    return lines


def check(res: subprocess.CompletedProcess, ops: Sequence[tuple[str, Expected]]) -> None:
    """escape printed, for each op, what Linux answers."""
    compare([line for _, line in expected_lines(ops)], results(res.stdout),
            [op for op, _ in ops], res)


# --------------------------------------------------------------------------
# --root DIR: the canary outside the root is neither read nor changed


def root_ops(c: str) -> list[tuple[str, Expected]]:
    """(operation, what Linux answers) with the guest's / at the root directory and the
    canary (host path c) outside it.  These hold in a chroot too, except where noted."""
    return [
        ("chdir /", "OK"),
        # `..` beyond the root stays at the root
        (f"read /{DEEP}{c}/secret", "ENOENT"),
        (f"read {DEEP}{c}/secret", "ENOENT"),
        (f"read /tmp/{DEEP}{c}/secret", "ENOENT"),
        (f"append /{DEEP}{c}/secret", "ENOENT"),
        (f"write /{DEEP}{c}/new", "ENOENT"),
        (f"trunc /{DEEP}{c}/b", "ENOENT"),
        (f"unlink /{DEEP}{c}/b", "ENOENT"),
        (f"chmod /{DEEP}{c}/b", "ENOENT"),
        (f"chown /{DEEP}{c}/b", "ENOENT"),
        (f"mkdir /{DEEP}{c}/newdir", "ENOENT"),
        (f"rmdir /{DEEP}{c}/empty", "ENOENT"),
        (f"rename /tmp/inside /{DEEP}{c}/moved", "ENOENT"),
        (f"opathat / {DEEP}{c}/secret", "ENOENT"),
        (f"opathat /tmp {DEEP}{c}/secret", "ENOENT"),
        # symlinks made in the guest, absolute and relative, to files and to dirs
        (f"symlink {c}/secret /tmp/abs", "OK"),
        (f"symlink {DEEP}{c}/secret /tmp/rel", "OK"),
        (f"symlink {c} /tmp/absdir", "OK"),
        (f"symlink {DEEP}{c} /tmp/reldir", "OK"),
        ("read /tmp/abs", "ENOENT"),
        ("read /tmp/rel", "ENOENT"),
        ("append /tmp/abs", "ENOENT"),
        ("write /tmp/rel", "ENOENT"),           # O_CREAT through a dangling link: no parent
        ("creat /tmp/abs", "EEXIST"),            # O_EXCL does not follow
        ("read /tmp/absdir/secret", "ENOENT"),
        ("write /tmp/reldir/new", "ENOENT"),
        ("mkdir /tmp/absdir/newdir", "ENOENT"),
        ("unlink /tmp/reldir/b", "ENOENT"),
        ("rename /tmp/inside /tmp/absdir/moved", "ENOENT"),
        ("readlink /tmp/abs", f"OK:{c}/secret"),  # stored as written
        # hard links
        (f"link {c}/secret /tmp/hl", "ENOENT"),
        (f"link /{DEEP}{c}/secret /tmp/hl", "ENOENT"),
        ("link /tmp/abs /tmp/hl2", "OK"),        # links the symlink itself
        ("read /tmp/hl2", "ENOENT"),
        # O_PATH of the root, then `..` relative to it: the root again (a directory)
        ("opathat / ..", "OK:EISDIR"),
        ("opathat / ../tmp/inside", "OK:INSIDE|"),
        # --- from here on, not in a native chroot (no /proc there; the jailbreak escapes it)
        ("opath /tmp/inside", ("OK:INSIDE|", "OK", "OK", "EBADF", "EBADF")),
        # the chroot jailbreak lands at the guest's root, never beyond
        ("mkdir /tmp/jail", "OK"),
        ("jailbreak /tmp/jail", "OK"),
        (f"read {c}/secret", "ENOENT"),
        (f"read {DEEP}{c}/secret", "ENOENT"),
        ("read /tmp/inside", AFTER_OPATH),
    ]


PROC_OPS_AT_ROOT: list[tuple[str, Expected]] = [
    # /proc/PID/root and /proc/PID/cwd are the guest's own root and cwd
    ("readlink /proc/1/root", "OK:/"),
    ("readlink /proc/self/cwd", "OK:/"),
    ("read /proc/1/root/tmp/inside", AFTER_OPATH),
    ("read /proc/self/root/tmp/inside", AFTER_OPATH),
]


def proc_escape_ops(c: str) -> list[tuple[str, Expected]]:
    return [
        (f"read /proc/1/root/{c}/secret", "ENOENT"),
        (f"read /proc/1/root/{DEEP}{c}/secret", "ENOENT"),
        (f"read /proc/self/root/{DEEP}{c}/secret", "ENOENT"),
        (f"read /proc/1/cwd/{DEEP}{c}/secret", "ENOENT"),
        (f"append /proc/1/cwd/{DEEP}{c}/secret", "ENOENT"),
        (f"write /proc/self/root/../{c}/new", "ENOENT"),
        # a host pid is not a guest pid
        (f"read /proc/{HOST_PID}/root/{c}/secret", "ENOENT"),
        (f"read /proc/{HOST_PID}/cwd/secret", "ENOENT"),
    ]


def test_root_dir_paths_do_not_escape(root_with_escape, canary, escape_bin, tmp_path):
    c = str(canary)
    ops = root_ops(c)
    # Proof that the expectations are Linux's: the chroot-safe part, natively in a chroot
    # of an identical root (the jailbreak is left out: in a chroot it does escape).
    if os.geteuid() == 0:
        twin = _install(build_busybox_root(tmp_path / "twin"), escape_bin)
        cut = [i for i, (op, _) in enumerate(ops) if op.startswith("opath /tmp/inside")][0]
        before = snapshot(canary)
        nat = run_native_ops("/bin/escape", [op for op, _ in ops[:cut]], chroot=twin)
        assert_untouched(before, canary, nat)
        check(nat, ops[:cut])
    before = snapshot(canary)
    all_ops = ops + PROC_OPS_AT_ROOT + proc_escape_ops(c)
    res = run_guest_ops("/bin/escape", [op for op, _ in all_ops], root=root_with_escape)
    assert SECRET not in res.stdout + res.stderr, describe(res)
    assert_untouched(before, canary, res)
    check(res, all_ops)


# --------------------------------------------------------------------------
# openat2 and O_PATH reopen: compared with Linux on an identical tree


JAIL_SETUP = [
    "mkdir J", "mkdir J/sub", "creat J/file", "creat outside-file",
    "symlink .. J/sub/up", "symlink ../../outside-file J/sub/out", "symlink /file J/abs",
    "symlink /proc/self/root J/procroot",
]


def openat2_ops(c: str) -> list[str]:
    return [
        "openat2 J file beneath", "openat2 J ../outside-file beneath", "openat2 J /file beneath",
        "openat2 J sub/out beneath", "openat2 J sub/up/file beneath", "openat2 J abs beneath",
        "openat2 J procroot beneath", "openat2 J sub/.. beneath",
        "openat2 J ../outside-file in_root", "openat2 J /file in_root", "openat2 J abs in_root",
        "openat2 J sub/out in_root", "openat2 J /../../file in_root", "openat2 J procroot in_root",
        "openat2 J sub/up/file no_symlinks", "openat2 J file no_symlinks",
        "openat2 J /proc/self/exe no_magiclinks", "openat2 J procroot/tmp no_magiclinks",
        "openat2 J /proc/self/status no_xdev", "openat2 J sub/../file no_xdev",
        "openat2 J file 0x80", "openat2 J file beneath|in_root",
        # towards the host canary (outside J in both runs)
        f"openat2 J {DEEP}{c}/secret beneath", f"openat2 J {c}/secret beneath",
        f"openat2 J {DEEP}{c}/secret in_root", f"openat2 J {c}/secret in_root",
    ]


USER_OPATH = [
    "creat rootfile", "creat private", "chmod private 600", "mkdir dir", "symlink rootfile sl",
    "setuid 1000",
    # O_PATH needs no permission; a reopen through /proc/self/fd is checked afresh
    "opath rootfile", "opath private", "opath dir", "opathl sl", "opathat . rootfile",
    "append rootfile", "read private",
]


def workdir(w: str) -> list[str]:
    """The same three first lines in every run, so line numbers match."""
    return [f"mkdir {w}", f"chmod {w} 755", f"chdir {w}"]


@pytest.mark.parametrize("mode", ["overlay", "root"])
def test_openat2_and_opath_reopen_match_linux(mode, escape_bin, canary, request):
    """The same tree natively and in the guest; the outputs must be identical."""
    ops = JAIL_SETUP + openat2_ops(str(canary)) + USER_OPATH
    nat = _native_in_public_dir(escape_bin, ops)
    before = snapshot(canary)
    if mode == "root":
        root = _install(request.getfixturevalue("fresh_busybox_root"), escape_bin)
        res = run_guest_ops("/bin/escape", workdir("/tmp/w") + ops, root=root)
    else:
        w = f"/tmp/umlpy-esc-{uuid.uuid4().hex[:10]}"
        request.addfinalizer(lambda: shutil.rmtree(w, ignore_errors=True))
        res = run_guest_ops(str(escape_bin), workdir(w) + ops)
    assert_untouched(before, canary, res)
    assert SECRET not in res.stdout, describe(res)
    compare(results(nat.stdout), results(res.stdout), workdir("W") + ops, res)


def _native_in_public_dir(escape_bin: Path, ops: Sequence[str]) -> subprocess.CompletedProcess:
    """Linux's answers, in a fresh directory under /tmp that uid 1000 can reach (pytest's
    directories are 0700), with the program copied there too."""
    d = tempfile.mkdtemp(prefix="umlpy-esc-native-", dir="/tmp")
    try:
        os.chmod(d, 0o755)
        exe = os.path.join(d, "escape")
        shutil.copy2(escape_bin, exe)
        nat = run_native_ops(exe, workdir(os.path.join(d, "w")) + list(ops))
        assert nat.returncode == 0 and "setuid -> OK" in nat.stdout, nat
        return nat
    finally:
        shutil.rmtree(d, ignore_errors=True)


# --------------------------------------------------------------------------
# the overlay: every change lands in the upper layer, never on the host


def overlay_ops(c: str, c2: str, w: str) -> list[str]:
    return [
        f"mkdir {w}",
        f"append {c}/secret", f"read {c}/secret",                     # direct write: copy-up
        f"append {c}/{DEEP}{c}/b", f"read {c}/b",                       # via `..`
        f"link {c}/ro {w}/hl", f"append {w}/hl", f"read {c}/ro",        # hard link shares the inode
        f"symlink {c}/c {w}/abs", f"append {w}/abs", f"read {c}/c",     # guest-made symlinks
        f"symlink {DEEP}{c}/sub {w}/rel", f"write {w}/rel/new", f"read {c}/sub/new",
        f"append {c}/lnk",                                              # a symlink of the lower
        f"opath {c}/d", f"read {c}/d",                                   # O_PATH reopen for writing
        f"append /proc/self/root/{c}/sub/x", f"append /proc/self/cwd/{DEEP}{c}/sub/x",
        f"read {c}/sub/x",
        f"read /proc/{HOST_PID}/root/{c}/secret",                       # not a guest pid
        f"chmod {c}/b 700", f"chown {c}/b", f"trunc {c}/c", f"rename {c}/secret {c}/moved",
        f"unlink {c}/ro", f"mkdir {c}/newdir", f"creat {c}/new", f"chmod {c} 700",
        # a lower directory replaced by a guest symlink to another host tree
        f"rmdir {c}/empty", f"symlink {c2} {c}/empty", f"creat {c}/empty/planted",
        f"read {c2}/planted", f"append {c2}/secret",
    ]


def _host_pid_line(ops: Sequence[str]) -> int:
    return [i for i, op in enumerate(ops, 1) if f"/proc/{HOST_PID}/" in op][0]


@pytest.mark.parametrize("with_upper", [False, True], ids=["tmpfs-upper", "host-upper"])
def test_overlay_changes_never_reach_the_host(with_upper, escape_bin, canary, canary2,
                                              guest_tmp, tmp_path):
    # Linux's answers: the same operations natively on copies of the canaries.
    decoy, decoy2 = tmp_path / "decoy", tmp_path / "decoy2"
    shutil.copytree(canary, decoy, symlinks=True)
    shutil.copytree(canary2, decoy2, symlinks=True)
    nw = tmp_path / "native-w"
    nat = run_native_ops(str(escape_bin), overlay_ops(str(decoy), str(decoy2), str(nw)))
    ops = overlay_ops(str(canary), str(canary2), guest_tmp)
    # ...except that a host pid is no guest pid: natively the path reads the decoy.
    hp = _host_pid_line(ops)
    want = [f"{hp} read -> ENOENT" if line.startswith(f"{hp} read ") else line
            for line in results(nat.stdout)]

    upper = tmp_path / "upper" if with_upper else None
    if upper:
        upper.mkdir()
    before, before2 = snapshot(canary), snapshot(canary2)
    res = run_guest_ops(str(escape_bin), ops, upper=upper)
    assert_untouched(before, canary, res)
    assert_untouched(before2, canary2, res)
    assert not os.path.lexists(guest_tmp), "a guest directory appeared on the host"
    if upper:
        # Nothing in the kept upper layer is owned by the guest's uids on the host...
        assert not chowned_on_host(upper, 4242, 4242), "the upper copy was chowned on the host"
        # ...and a second instance writing through what the first one planted in it
        # (symlinks to host paths, a hard link, a redirected directory) stays inside.
        again = run_guest_ops(str(escape_bin), [
            f"append {guest_tmp}/abs", f"append {guest_tmp}/hl", f"write {canary}/empty/again",
            f"append {canary2}/b", f"read {canary2}/planted"], upper=upper)
        assert_untouched(before, canary, again)
        assert_untouched(before2, canary2, again)
        assert results(again.stdout) == ["1 append -> OK", "2 append -> OK", "3 write -> OK",
                                         "4 append -> OK", "5 read -> OK:PWNED|"], describe(again)
    # Last, as it is about errnos rather than escapes: what the guest saw is what Linux
    # shows on a copy of the trees.
    compare(want, results(res.stdout), ops, res, "Linux on a copy of the tree")


# --------------------------------------------------------------------------
# the rename race from a second guest thread


_RACE = re.compile(r"opens=(\d+) inside=(\d+) target=(\d+) enoent=(\d+) other=(\d+)\((\S+)\) creats=(\d+)")


def race_stats(res: subprocess.CompletedProcess) -> dict[str, int]:
    m = _RACE.search(res.stdout)
    assert m, "the race did not report" + describe(res)
    keys = ("opens", "inside", "target", "enoent", "other", "errno", "creats")
    return {k: (int(v) if v.isdigit() else v) for k, v in zip(keys, m.groups())}


def test_race_program_reaches_the_target_natively(escape_bin, tmp_path):
    """The race does what it claims when the host resolves the paths: B reaches the
    symlink's target (here a decoy), so its failing to in the guest means something."""
    decoy = make_canary(tmp_path / "decoy")
    nat = run_native_ops(str(escape_bin), [f"race {tmp_path}/r {decoy} {RACE_ITERATIONS}"])
    s = race_stats(nat)
    assert s["target"] > 0 and s["inside"] > 0, nat.stdout
    assert "PWNED" in (decoy / "secret").read_text()


@pytest.mark.parametrize("link", ["absolute", "relative"])
def test_rename_race_in_root_dir(link, root_with_escape, canary):
    c = str(canary)
    target = c if link == "absolute" else DEEP.rstrip("/") + c
    before = snapshot(canary)
    res = run_guest_ops("/bin/escape", [f"race /tmp/race {target} {RACE_ITERATIONS}"],
                        root=root_with_escape, timeout=300)
    assert_untouched(before, canary, res)
    s = race_stats(res)
    assert s["target"] == 0 and SECRET not in res.stdout, describe(res)
    assert s["other"] == 0, f"unexpected errno {s['errno']}" + describe(res)
    # Both shapes of the path were seen, so the walk really raced the renames.
    assert s["inside"] > 0 and s["enoent"] > 0, f"race not exercised: {s}" + describe(res)


def test_rename_race_on_overlay(escape_bin, canary, guest_tmp):
    """On the overlay the target (a host tree) is readable, so B may reach it; its
    writes must all be copies in the upper layer."""
    before = snapshot(canary)
    res = run_guest_ops(str(escape_bin), [f"mkdir {guest_tmp}",
                                          f"race {guest_tmp}/race {canary} {RACE_ITERATIONS}"],
                        timeout=300)
    assert_untouched(before, canary, res)
    s = race_stats(res)
    assert s["other"] == 0, f"unexpected errno {s['errno']}" + describe(res)
    assert s["inside"] > 0 and s["target"] + s["enoent"] > 0, f"race not exercised: {s}" + describe(res)
