"""The security suite: its helpers on the path, and the count of attacks tried
(by class, from hostcheck.ATTACKS) printed at the end of the run."""
from __future__ import annotations

import os
import sys

sys.path.insert(0, os.path.dirname(__file__))

from hostcheck import ATTACKS  # noqa: E402


def pytest_terminal_summary(terminalreporter) -> None:
    if ATTACKS:
        total = sum(ATTACKS.values())
        terminalreporter.write_line(
            f"security: {total} attacks by class {dict(sorted(ATTACKS.items()))}; "
            "each asserted to fail as Linux fails it, with the host unchanged")
