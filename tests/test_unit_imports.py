"""Every module of umlpy imports first, on its own: an import cycle that
only the usual order hides (a kernel module taking a name from a syscall
module while the syscall table is still loading) fails here."""
from __future__ import annotations

import subprocess
import sys

from guestroot import REPO

# A parent that has imported no umlpy module forks a child per module, which
# imports it alone: one interpreter start, not one per module.
_PROBE = r"""
import os, sys
sys.path.insert(0, sys.argv[1])
import importlib
names = []      # from the files: walking packages would import them here
for top, dirs, files in os.walk(os.path.join(sys.argv[1], "umlpy")):
    dirs[:] = sorted(d for d in dirs if d != "__pycache__")
    package = os.path.relpath(top, sys.argv[1]).replace(os.sep, ".")
    if package.startswith("umlpy.bench.guest"):
        continue
    for f in sorted(files):
        if f.endswith(".py") and f != "__main__.py":
            names.append(package if f == "__init__.py" else f"{package}.{f[:-3]}")
failed = 0
for name in names:
    pid = os.fork()
    if pid == 0:
        try:
            importlib.import_module(name)
        except BaseException as e:
            print(f"{name}: {type(e).__name__}: {e}", flush=True)
            os._exit(1)
        os._exit(0)
    _, status = os.waitpid(pid, 0)
    failed += status != 0
print(f"{len(names)} modules, {failed} failed")
"""


def test_every_module_imports_first():
    res = subprocess.run([sys.executable, "-c", _PROBE, str(REPO)], capture_output=True,
                         text=True, timeout=300)
    assert res.returncode == 0, res.stderr
    assert res.stdout.rstrip().endswith(" 0 failed"), res.stdout + res.stderr
    assert int(res.stdout.split()[-4]) > 100, res.stdout
