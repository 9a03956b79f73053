"""Guest root directories and a runner for the guest tests.

A guest root is an ordinary host directory that ``umlpy run --root DIR`` shows
to the guest as ``/``.  Two kinds are built here:

* a *busybox root*: the static busybox of Debian's ``busybox-static`` with a
  symlink in ``/bin`` for each applet, ``/tmp`` and a minimal ``/etc``.  It has
  no ``/dev`` and no ``/proc`` on purpose: the kernel provides those.
* a *dynamic root*: copies of a few dynamically linked host programs (coreutils,
  bash, dash, Debian's python3.11) and of every library ``ldd`` names for them,
  at the same paths as on the host and through the same symlinks (the merged
  ``/usr`` links ``/bin -> usr/bin``, ``/lib -> usr/lib``, ``/lib64 -> usr/lib64``
  and the absolute ``/usr/lib64/ld-linux-x86-64.so.2`` link), plus Python's
  standard library.

Nothing here needs root: the roots are checked natively by looking at files,
and (in the tests, only when root) by ``chroot``.
"""

from __future__ import annotations

import difflib
import os
import re
import shutil
import signal
import stat
import subprocess
import sys
from pathlib import Path
from typing import Callable, Iterable, Mapping, Sequence

HOST_BUSYBOX = "/bin/busybox"
HOST_PYTHON = "/usr/bin/python3.11"
PYTHON_STDLIB = "/usr/lib/python3.11"
DYNAMIC_LOADER = "/lib64/ld-linux-x86-64.so.2"

# Host programs copied into the dynamic root (the host path is kept).
DYNAMIC_PROGRAMS: tuple[str, ...] = (
    "/usr/bin/ls",
    "/usr/bin/sort",
    "/usr/bin/cat",
    "/usr/bin/echo",
    "/usr/bin/bash",
    "/usr/bin/sh",  # -> dash
    "/usr/bin/env",
    "/usr/bin/true",
    "/usr/bin/false",
    "/usr/bin/python3",  # -> python3.11
    "/usr/bin/sleep",
    "/usr/bin/id",
    "/usr/bin/uname",
    "/usr/bin/head",
    "/usr/bin/wc",
    "/usr/bin/tr",
    "/usr/bin/pwd",
)

# The merged-/usr top-level symlinks a Debian 12 root has.
MERGED_USR_LINKS: tuple[str, ...] = ("/bin", "/sbin", "/lib", "/lib64")

ETC_PASSWD = "root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534:nobody:/nonexistent:/bin/sh\n"
ETC_GROUP = "root:x:0:\nnogroup:x:65534:\n"

GUEST_PATH = "/usr/local/bin:/usr/bin:/bin:/usr/sbin:/sbin"


# --------------------------------------------------------------------------
# copying host files into a root, symlinks included


def _guest(root: Path, host_path: str) -> Path:
    """The path inside ``root`` that mirrors the absolute ``host_path``."""
    return root / host_path.lstrip("/")


def replicate_path(host_path: str, root: Path, _depth: int = 0) -> str:
    """Mirror ``host_path`` into ``root`` at the same path, symlinks included.

    Every component of ``host_path`` that is a symlink on the host becomes the
    same symlink (same target text, absolute or relative) in ``root``, and its
    target is mirrored too, so that the guest resolves the path exactly as the
    host does.  Directories on the way are created; a final regular file is
    copied (mode and times kept); a final directory is only created.

    Returns the fully resolved host path.
    """
    if _depth > 40:
        raise RuntimeError(f"too many levels of symlinks in {host_path}")
    if not host_path.startswith("/"):
        raise ValueError(f"not an absolute path: {host_path}")
    parts = [p for p in host_path.split("/") if p not in ("", ".")]
    cur = "/"  # the resolved (symlink-free) host path walked so far
    for i, name in enumerate(parts):
        last = i == len(parts) - 1
        if name == "..":
            cur = os.path.dirname(cur.rstrip("/")) or "/"
            continue
        hp = os.path.join(cur, name)
        dst = _guest(root, hp)
        st = os.lstat(hp)
        if stat.S_ISLNK(st.st_mode):
            target = os.readlink(hp)
            if not os.path.lexists(dst):
                dst.parent.mkdir(parents=True, exist_ok=True)
                os.symlink(target, dst)
            nxt = target if target.startswith("/") else os.path.join(cur, target)
            cur = replicate_path(os.path.normpath(nxt), root, _depth + 1) if last else \
                _replicate_dir_chain(os.path.normpath(nxt), root, _depth + 1)
        elif stat.S_ISDIR(st.st_mode):
            if not dst.is_dir():
                dst.mkdir(parents=True, exist_ok=True)
                os.chmod(dst, stat.S_IMODE(st.st_mode))
            cur = hp
        elif last:
            if not os.path.lexists(dst):
                dst.parent.mkdir(parents=True, exist_ok=True)
                shutil.copy2(hp, dst)
            cur = hp
        else:
            raise NotADirectoryError(hp)
    return cur


def _replicate_dir_chain(host_path: str, root: Path, depth: int) -> str:
    """Mirror a path that must resolve to a directory (a middle component)."""
    resolved = replicate_path(host_path, root, depth)
    if not os.path.isdir(resolved):
        raise NotADirectoryError(host_path)
    return resolved


_LDD_ARROW = re.compile(r"^\s*\S+\s+=>\s+(/\S+)\s+\(0x[0-9a-f]+\)\s*$")
_LDD_PLAIN = re.compile(r"^\s*(/\S+)\s+\(0x[0-9a-f]+\)\s*$")


def ldd_libraries(path: str) -> list[str]:
    """The absolute paths of the libraries (and loader) ``ldd`` names for ``path``.

    A static binary gives ``[]``; a library ``ldd`` cannot find is an error.
    """
    proc = subprocess.run(["ldd", path], capture_output=True, text=True, timeout=60,
                          env={"PATH": "/usr/bin:/bin", "LC_ALL": "C"})
    out = proc.stdout + proc.stderr
    if "not a dynamic executable" in out or "statically linked" in out:
        return []
    if proc.returncode != 0:
        raise RuntimeError(f"ldd {path} failed: {out}")
    libs: list[str] = []
    for line in proc.stdout.splitlines():
        if "not found" in line:
            raise RuntimeError(f"ldd {path}: {line.strip()}")
        m = _LDD_ARROW.match(line) or _LDD_PLAIN.match(line)
        if m:
            libs.append(m.group(1))
    return libs


def _same_filesystem(a: Path, b: str) -> bool:
    return os.stat(a).st_dev == os.stat(b).st_dev


def copy_tree(host_dir: str, root: Path) -> None:
    """Mirror the directory tree ``host_dir`` into ``root`` at the same path.

    Hard links (``cp -al``) when ``root`` is on the same file system, a copy
    otherwise.  Symlinks inside the tree are copied as symlinks.
    """
    resolved = replicate_path(host_dir, root)
    dst = _guest(root, resolved)
    dst.parent.mkdir(parents=True, exist_ok=True)
    if dst.exists():
        shutil.rmtree(dst)
    link = "-al" if _same_filesystem(dst.parent, resolved) else "-a"
    subprocess.run(["cp", link, resolved, str(dst)], check=True, timeout=300)


# --------------------------------------------------------------------------
# the roots


def _make_skeleton(root: Path, dirs: Iterable[str]) -> None:
    root.mkdir(parents=True, exist_ok=True)
    for d in dirs:
        (root / d).mkdir(parents=True, exist_ok=True)
    tmp = root / "tmp"
    tmp.mkdir(exist_ok=True)
    os.chmod(tmp, 0o1777)
    (root / "etc").mkdir(exist_ok=True)
    (root / "etc" / "passwd").write_text(ETC_PASSWD)
    (root / "etc" / "group").write_text(ETC_GROUP)
    (root / "etc" / "hostname").write_text("guest\n")


def busybox_applets(busybox: str = HOST_BUSYBOX) -> list[str]:
    proc = subprocess.run([busybox, "--list"], capture_output=True, text=True,
                          check=True, timeout=30)
    return [a for a in proc.stdout.split() if a and "/" not in a and a != "busybox"]


def build_busybox_root(root: Path, busybox: str = HOST_BUSYBOX) -> Path:
    """A root with a static busybox as /bin/busybox and its applets in /bin.

    Applets are relative symlinks ``/bin/NAME -> busybox``, except ``/bin/sh``
    which is the absolute symlink ``/bin/sh -> /bin/busybox`` (resolved inside
    the root by the kernel).  ``/usr/bin`` and ``/sbin`` lead to ``/bin`` so
    that ``#!/usr/bin/env sh`` works.
    """
    _make_skeleton(root, ["bin", "usr", "root"])
    shutil.copy2(busybox, root / "bin" / "busybox")
    for applet in busybox_applets(busybox):
        link = root / "bin" / applet
        if os.path.lexists(link):
            continue
        os.symlink("/bin/busybox" if applet == "sh" else "busybox", link)
    for name, target in (("sbin", "bin"), ("usr/bin", "../bin"), ("usr/sbin", "../bin")):
        if not os.path.lexists(root / name):
            os.symlink(target, root / name)
    return root


def build_dynamic_root(root: Path, programs: Sequence[str] = DYNAMIC_PROGRAMS) -> Path:
    """A root with dynamic host programs, their libraries and Python's stdlib."""
    _make_skeleton(root, ["dev", "proc", "root", "usr/local/bin"])
    for link in MERGED_USR_LINKS:
        if os.path.lexists(link):
            replicate_path(link, root)
    wanted: set[str] = {DYNAMIC_LOADER}
    for prog in programs:
        real = replicate_path(prog, root)
        wanted.update(ldd_libraries(real))
    copy_tree(PYTHON_STDLIB, root)
    dynload = os.path.join(PYTHON_STDLIB, "lib-dynload")
    for ext in sorted(os.listdir(dynload)):
        if ext.endswith(".so"):
            wanted.update(ldd_libraries(os.path.join(dynload, ext)))
    # sitecustomize.py is an absolute symlink into /etc/python3.11.
    if os.path.isdir("/etc/python3.11"):
        copy_tree("/etc/python3.11", root)
    # The C.UTF-8 locale Python coerces to (PEP 538); small.
    if os.path.isdir("/usr/lib/locale/C.utf8"):
        copy_tree("/usr/lib/locale/C.utf8", root)
    for lib in sorted(wanted):
        replicate_path(lib, root)
    return root


def compile_static(source: str, output: Path, include_dirs: Sequence[Path] = ()) -> Path:
    """Compile a C program statically with the host's gcc (its #include "..."
    headers searched in include_dirs)."""
    src = output.with_suffix(".c")
    src.write_text(source)
    includes = [f"-I{d}" for d in include_dirs]
    subprocess.run(["gcc", "-static", "-O0", *includes, "-o", str(output), str(src)],
                   check=True, capture_output=True, timeout=120)
    src.unlink()
    return output


# --------------------------------------------------------------------------
# running umlpy


# umlpy from this checkout, whatever an editable install points at.
REPO = Path(__file__).resolve().parent.parent
UMLPY_MAIN = (f"import sys; sys.path.insert(0, {str(REPO)!r}); "
         "from umlpy.cli import main; sys.exit(main())")


def umlpy_run(argv: Sequence[str], options: Sequence[str] = ()) -> list[str]:
    """The command line of `umlpy run OPTIONS -- ARGV` from this checkout."""
    return [sys.executable, "-c", UMLPY_MAIN, "run", *options, "--", *argv]


def umlpy_command(root: Path | str, argv: Sequence[str]) -> list[str]:
    return umlpy_run(argv, ["--root", str(root)])


def guest_env(extra: Mapping[str, str] | None = None) -> dict[str, str]:
    """The environment umlpy (and so the guest) is started with."""
    env = {k: v for k, v in os.environ.items()
           if k not in ("PYTHONHOME", "PYTHONSTARTUP", "LD_PRELOAD", "LD_LIBRARY_PATH")}
    env.update(PATH=GUEST_PATH, LC_ALL="C", LANG="C", HOME="/root", TERM="dumb")
    if extra:
        env.update(extra)
    return env


def wait_for_descendants(pid: int, wanted: Callable[[list], bool], what: str,
                         timeout: float = 60) -> list:
    """The host processes below `pid` (umlpy) once `wanted(them)` holds, as
    psutil.Process objects; AssertionError naming `what` after `timeout` s."""
    import psutil
    import time
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            found = psutil.Process(pid).children(recursive=True)
        except psutil.Error:
            found = []
        if wanted(found):
            return found
        time.sleep(0.05)
    raise AssertionError(f"{what} never appeared below process {pid}")


def named(procs: list, name: str) -> list:
    """Those of `procs` called `name` (gone ones left out)."""
    out = []
    for p in procs:
        try:
            if p.name() == name:
                out.append(p)
        except Exception:       # psutil.Error: it ended meanwhile
            pass
    return out


def kill_group(proc: subprocess.Popen) -> None:
    """SIGKILL the process group (session) of a Popen started with a new session."""
    try:
        os.killpg(proc.pid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        pass


class GuestTimeout(AssertionError):
    pass


def run_guest(root: Path | str, argv: Sequence[str], *, input: str | bytes | None = None,
              timeout: float = 120, env: Mapping[str, str] | None = None,
              text: bool = True) -> subprocess.CompletedProcess:
    """Run ``argv`` in the guest rooted at ``root``; capture stdout and stderr."""
    return run_umlpy(umlpy_command(root, argv), input=input, timeout=timeout, env=env,
                     text=text, cwd=str(root))


def umlpy_boot(options: Sequence[str]) -> list[str]:
    """The command line of `umlpy OPTIONS` (a UML-style boot) from this checkout."""
    return [sys.executable, "-c", UMLPY_MAIN, *options]


def boot_hostfs_machine(root: Path | str, umid: str, uml_dir: Path | str) -> subprocess.Popen:
    """A machine booted on the host directory `root` (hostfs) with init=/bin/sh
    reading its script from stdin, with an mconsole socket named `umid`; in a
    session of its own (kill_group ends it)."""
    return subprocess.Popen(umlpy_boot(["root=/dev/root", "rootfstype=hostfs",
                                        f"rootflags={root}", "init=/bin/sh", f"umid={umid}",
                                        f"uml_dir={uml_dir}", "quiet"]),
                            stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, env=guest_env(),
                            start_new_session=True)


def run_umlpy(cmd: Sequence[str], *, input: str | bytes | None = None, timeout: float = 120,
              env: Mapping[str, str] | None = None, text: bool = True,
              cwd: str | None = None) -> subprocess.CompletedProcess:
    """Run an umlpy command line; capture stdout and stderr.

    umlpy is started in its own session; on timeout the whole session is
    killed and the test fails with whatever was printed so far.
    """
    if text and isinstance(input, bytes):
        input = input.decode()
    proc = subprocess.Popen(list(cmd),
                            stdin=subprocess.PIPE if input is not None else subprocess.DEVNULL,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=text,
                            env=guest_env(env), cwd=cwd, start_new_session=True)
    try:
        out, err = proc.communicate(input, timeout=timeout)
    except subprocess.TimeoutExpired:
        kill_group(proc)
        out, err = proc.communicate()
        raise GuestTimeout(f"guest timed out after {timeout}s: {list(cmd)!r}\n"
                           f"stdout: {out!r}\nstderr: {err!r}") from None
    finally:
        kill_group(proc)  # stray guest processes, if any survived umlpy
    return subprocess.CompletedProcess(list(cmd), proc.returncode, out, err)


def describe(res: subprocess.CompletedProcess) -> str:
    """A readable account of a guest run, for assertion messages."""
    return (f"\ncommand: {res.args!r}\nexit status: {res.returncode}\n"
            f"stdout:\n{res.stdout}\nstderr:\n{res.stderr}")


def run_shell_like_native(native: str, command: str, timeout: float = 120
                          ) -> subprocess.CompletedProcess:
    """Run shell `command` in the default guest with --counters; its output
    must equal `native` (what the same program printed on the host)."""
    res = run_umlpy(umlpy_run(["/bin/sh", "-c", command], ["--counters"]), timeout=timeout)
    assert res.returncode == 0, res.stdout + res.stderr
    diff = "".join(difflib.unified_diff(native.splitlines(True), res.stdout.splitlines(True),
                                        "native", "guest", n=1))
    assert not diff, diff + res.stderr
    return res
