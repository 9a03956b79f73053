"""The peers umlpy is measured against, each a Runner (runners.py).

* PRoot: `proot CMD`, the host's / as its root (Debian's build has no
  seccomp acceleration, so it stops on every syscall).
* gVisor: `runsc --rootless --network=none --platform=P do CMD`, the host's /
  as the sandbox's root under an overlay; one runner per platform (ptrace,
  systrap). A platform the installed runsc does not know is reported as
  unavailable with runsc's own words.
* User-Mode Linux: `linux.uml` booting the host's / as a hostfs root, with
  an init script that runs the command, prints its status and powers off.
  Its wall time includes UML's boot, as umlpy's includes its start-up.

None of them has a CPU option, so pinning is `taskset -c N` around the whole
sandbox, every thread and process it starts included.
"""
from __future__ import annotations

import atexit
import hashlib
import shlex
import shutil
import subprocess
import tempfile
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

from umlpy.bench.runners import Runner, register, taskset

GUEST_PATH = "/usr/local/bin:/usr/bin:/bin:/usr/sbin:/sbin"


def _missing(tool: str, package: str) -> str | None:
    return None if shutil.which(tool) else f"{tool} not found (apt-get install {package})"


@dataclass(frozen=True)
class ProotRunner(Runner):
    def unavailable(self) -> str | None:
        return _missing("proot", "proot") or _missing("taskset", "util-linux")

    def argv(self, command: list[str], cpu: int | None) -> list[str]:
        return [*taskset(cpu), "proot", *command]


@lru_cache(maxsize=None)
def _runsc_refuses(platform: str) -> str | None:
    """runsc's one-line complaint if it cannot run on `platform`, else None."""
    try:
        out = subprocess.run(["runsc", "--rootless", "--network=none", f"--platform={platform}",
                              "do", "/bin/true"], capture_output=True, text=True, timeout=60)
    except (OSError, subprocess.TimeoutExpired) as exc:
        return f"runsc --platform={platform}: {exc}"
    if out.returncode == 0:
        return None
    lines = [ln for ln in out.stderr.splitlines() if ln.strip()]
    return f"runsc --platform={platform}: {lines[-1] if lines else f'exit {out.returncode}'}"


@dataclass(frozen=True)
class GvisorRunner(Runner):
    platform: str = "ptrace"

    def unavailable(self) -> str | None:
        return (_missing("runsc", "runsc") or _missing("taskset", "util-linux")
                or _runsc_refuses(self.platform))

    def argv(self, command: list[str], cpu: int | None) -> list[str]:
        return [*taskset(cpu), "runsc", "--rootless", "--network=none",
                f"--platform={self.platform}", "do", *command]


_uml_dir: list[Path] = []


def _uml_scripts() -> Path:
    """A private directory for init scripts, on the host's / that UML boots."""
    if not _uml_dir:
        d = Path(tempfile.mkdtemp(prefix="umlpy-bench-uml-"))
        atexit.register(shutil.rmtree, d, True)
        _uml_dir.append(d)
    return _uml_dir[0]


def uml_init_script(command: list[str]) -> Path:
    """The init that runs `command` inside UML and powers the machine off."""
    body = "\n".join([
        "#!/bin/sh",
        f"export PATH={GUEST_PATH} HOME=/root",
        "mount -t proc proc /proc 2>/dev/null",
        # UML's /dev is its own devtmpfs: give it the tmpfs /dev/shm that the
        # host and umlpy have, so file workloads run on a tmpfs everywhere.
        "mkdir -p /dev/shm && mount -t tmpfs tmpfs /dev/shm",
        "cd /tmp",
        shlex.join(command) + " </dev/null",
        'echo "uml-exit=$?"',
        "exec /bin/busybox poweroff -f",
        ""])
    name = hashlib.sha256(body.encode()).hexdigest()[:16]
    path = _uml_scripts() / f"init-{name}.sh"
    if not path.exists():
        path.write_text(body)
        path.chmod(0o755)
    return path


@dataclass(frozen=True)
class UmlRunner(Runner):
    mem: str = "256M"

    def unavailable(self) -> str | None:
        return (_missing("linux.uml", "user-mode-linux") or _missing("taskset", "util-linux")
                or _missing("busybox", "busybox-static"))

    def argv(self, command: list[str], cpu: int | None) -> list[str]:
        boot = [*taskset(cpu), "linux.uml", f"mem={self.mem}", "root=/dev/root",
                "rootfstype=hostfs", "rootflags=/", "rw", "quiet",
                f"init={uml_init_script(command)}", "con0=fd:0,fd:1", "con=null"]
        # UML exits 0 whatever init did: the status comes back on the console.
        check = ('out=$("$@" 2>&1); printf "%s\\n" "$out"; '
                 'case "$out" in *uml-exit=0*) exit 0;; esac; exit 1')
        return ["/bin/sh", "-c", check, "uml", *boot]


register(ProotRunner("proot", "PRoot (proot CMD; taskset when pinned)"))
register(GvisorRunner("gvisor-ptrace", "gVisor runsc do, ptrace platform", platform="ptrace"))
register(GvisorRunner("gvisor-systrap", "gVisor runsc do, systrap platform", platform="systrap"))
register(UmlRunner("uml", "User-Mode Linux (linux.uml, hostfs root, init runs the command)"))

PEERS: tuple[str, ...] = ("uml", "gvisor-ptrace", "gvisor-systrap", "proot")
