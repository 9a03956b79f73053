"""Build the benchmark's guest programs (small static C binaries) on demand.

Guests are compiled at run time rather than shipped so they match the host's
libc and compiler, and statically so that a sandbox measures the loop under
test rather than the dynamic loader. Binaries are cached by a hash of their
sources, the flags and the compiler version: a rebuild happens only when one
of those changes.
"""
from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
import tempfile
from pathlib import Path

GUEST_DIR = Path(__file__).resolve().parent / "guest"
CFLAGS: tuple[str, ...] = ("-O2", "-static", "-Wall")


class BuildError(RuntimeError):
    """A guest program could not be compiled (no gcc, no static libc, ...)."""


def default_cache_dir() -> Path:
    """~/.cache/umlpy-bench, honouring XDG_CACHE_HOME."""
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(Path.home(), ".cache")
    return Path(base) / "umlpy-bench"


def compiler() -> str | None:
    """The C compiler to use (CC, else gcc), or None if it is not installed."""
    cc = os.environ.get("CC", "gcc")
    return shutil.which(cc)


def _compiler_version(cc: str) -> str:
    out = subprocess.run([cc, "--version"], capture_output=True, text=True, check=False)
    return out.stdout.splitlines()[0] if out.stdout else cc


def _fingerprint(source: Path, cc: str) -> str:
    h = hashlib.sha256()
    # Headers are shared by every guest, so any change to one rebuilds all.
    for path in [source, *sorted(GUEST_DIR.glob("*.h"))]:
        h.update(path.name.encode() + b"\0" + path.read_bytes() + b"\0")
    h.update("\0".join(CFLAGS).encode())
    h.update(_compiler_version(cc).encode())
    return h.hexdigest()[:16]


def build_guest(name: str, cache_dir: Path | None = None) -> Path:
    """Return the path of guest `name` (guest/<name>.c), compiling it if needed."""
    source = GUEST_DIR / f"{name}.c"
    if not source.is_file():
        raise BuildError(f"no guest source {source}")
    cc = compiler()
    if cc is None:
        raise BuildError("gcc not found (set CC to use another compiler)")
    cache = cache_dir or default_cache_dir()
    try:
        cache.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise BuildError(f"cannot create cache dir {cache}: {exc} (use --cache-dir)") from exc
    binary = cache / f"{name}-{_fingerprint(source, cc)}"
    if binary.is_file() and os.access(binary, os.X_OK):
        return binary
    # Compile to a temporary name and rename, so a concurrent or interrupted
    # run never leaves a half-written binary under the cached name.
    fd, tmp = tempfile.mkstemp(prefix=f".{name}-", dir=cache)
    os.close(fd)
    try:
        cmd = [cc, *CFLAGS, "-I", str(GUEST_DIR), "-o", tmp, str(source)]
        out = subprocess.run(cmd, capture_output=True, text=True, check=False)
        if out.returncode != 0:
            raise BuildError(f"{' '.join(cmd)} failed:\n{out.stderr.strip()}")
        os.chmod(tmp, 0o755)
        os.replace(tmp, binary)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)
    return binary
