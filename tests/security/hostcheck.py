"""The host side of the security tests: what must be the same after an attack.

HostState plants a canary tree and starts a host sleeper (a process the guest
aims at), and remembers the host's process list.  check() then asserts that

* the canary tree is byte for byte, mode and owner the same;
* the sleeper and the test process are alive with their priority unchanged;
* no guest process outlived its kernel: no new host process runs an umlpy exec
  image (its exe is the kernel's "umlpy-exec" memfd) without a tracer.

Other engineers' tests may run at the same time, so the process list is
compared only for processes this check can attribute to an umlpy guest.
"""
from __future__ import annotations

import collections
import os
import subprocess
from pathlib import Path

ATTACKS: "collections.Counter[str]" = collections.Counter()
SECRET = "CANARY-SECRET-proc-7e1"


def snapshot(top: Path) -> dict:
    out = {}
    for dirpath, dirnames, filenames in os.walk(top):
        for name in sorted(dirnames + filenames):
            p = os.path.join(dirpath, name)
            s = os.lstat(p)
            body = os.readlink(p) if os.path.islink(p) else (
                Path(p).read_bytes() if os.path.isfile(p) else b"")
            out[p] = (s.st_mode, s.st_uid, s.st_gid, s.st_size, s.st_mtime_ns, body)
    return out


def _status(pid: int) -> dict:
    out = {}
    try:
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                k, _, v = line.partition(":")
                out[k] = v.strip()
    except OSError:
        pass
    return out


def stray_guests(before: set) -> list[str]:
    """New host processes running an umlpy exec image with no tracer left."""
    strays = []
    for name in os.listdir("/proc"):
        if not name.isdigit() or int(name) in before:
            continue
        try:
            exe = os.readlink(f"/proc/{name}/exe")
        except OSError:
            continue
        if "umlpy-exec" in exe and _status(int(name)).get("TracerPid", "0") == "0":
            strays.append(f"{name} {exe}")
    return strays


def make_decoy(top: Path) -> Path:
    """The canary tree: secret, sub/x (both holding SECRET) and lnk -> secret."""
    (top / "sub").mkdir(parents=True)
    for name in ("secret", "sub/x"):
        (top / name).write_text(f"{SECRET} {name}\n")
    os.symlink("secret", top / "lnk")
    return top


class HostState:
    def __init__(self, canary: Path) -> None:
        self.canary = make_decoy(canary)
        self.tree = snapshot(canary)
        self.sleeper = subprocess.Popen(["sleep", "600"], start_new_session=True)
        self.nice = (os.getpriority(os.PRIO_PROCESS, self.sleeper.pid),
                     os.getpriority(os.PRIO_PROCESS, os.getpid()))
        self.pids = {int(n) for n in os.listdir("/proc") if n.isdigit()}

    def check(self) -> None:
        try:
            assert self.sleeper.poll() is None, "the host sleeper was killed"
            nice = (os.getpriority(os.PRIO_PROCESS, self.sleeper.pid),
                    os.getpriority(os.PRIO_PROCESS, os.getpid()))
            assert nice == self.nice, f"host priorities changed: {self.nice} -> {nice}"
            assert snapshot(self.canary) == self.tree, "the host canary tree changed"
            strays = stray_guests(self.pids)
            assert not strays, f"guest processes outlived their kernel: {strays}"
        finally:
            self.sleeper.kill()
            self.sleeper.wait()


def build_probe(name: str, tmp_path_factory) -> "tuple[Path, Path]":
    """tests/security/<name>.c compiled static, and a busybox root with it as
    /bin/<name>: (binary, root). Skips when the host tools are missing."""
    import shutil

    import pytest

    from guestroot import build_busybox_root, compile_static
    if shutil.which("gcc") is None:
        pytest.skip("gcc missing (install gcc and libc6-dev)")
    if not os.path.exists("/bin/busybox"):
        pytest.skip("/bin/busybox missing (busybox-static)")
    here = Path(__file__).resolve().parent
    binary = compile_static((here / f"{name}.c").read_text(),
                            tmp_path_factory.mktemp(name) / name, include_dirs=(here,))
    root = build_busybox_root(tmp_path_factory.mktemp(f"{name}root") / "root")
    shutil.copy2(binary, root / "bin" / name)
    return binary, root
