"""CPython's own regression tests inside the guest (issue 3's acceptance).

Runs tools/cpython-regrtest.py: the 18 modules of the acceptance list, natively and
in `umlpy run` (default overlay root), with the interpreter running pytest.  At least
95% of the test cases that pass natively must pass in the guest.  Slow: about 1.5
minutes natively plus the guest's time, so it is deselected by default
(`python3 -m pytest -m slow tests/test_cpython_regrtest.py`).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import sysconfig
from pathlib import Path

import pytest

TOOL = Path(__file__).resolve().parent.parent / "tools" / "cpython-regrtest.py"
MIN_RATIO = 0.95


@pytest.mark.slow
def test_cpython_regrtest_ratio(tmp_path):
    lib_test = Path(sysconfig.get_paths()["stdlib"]) / "test" / "libregrtest"
    if not lib_test.is_dir():
        pytest.skip(f"{sys.executable} has no regression test suite ({lib_test} missing; "
                    "Debian's python3.11 ships it in libpython3.11-testsuite)")
    out = tmp_path / "regrtest.json"
    proc = subprocess.run([sys.executable, str(TOOL), "--timeout", "900", "--json", str(out),
                           "--log-dir", str(tmp_path / "logs")],
                          capture_output=True, text=True, timeout=4 * 3600, cwd="/",
                          env={k: v for k, v in os.environ.items() if not k.startswith("PYTHON")})
    assert out.exists(), f"the tool wrote no results\n{proc.stdout}\n{proc.stderr}"
    data = json.loads(out.read_text())
    ratio = data["overall"]["ratio"]
    # Natively every module must have produced results, or the ratio means nothing.
    empty = [m["module"] for m in data["modules"] if m["native"]["passed"] == 0]
    assert not empty, f"no native results for {empty}\n{proc.stdout}"
    assert ratio is not None and ratio >= MIN_RATIO, (
        f"{ratio:.3f} of the natively passing cases pass in the guest (want >= {MIN_RATIO})\n"
        + proc.stdout)
