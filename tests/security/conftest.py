"""The security suite: its helpers on the path, and the count of attacks tried
(by class, from hostcheck.ATTACKS) printed at the end of the run."""
from __future__ import annotations

import os
import sys

sys.path.insert(0, os.path.dirname(__file__))

import pytest  # noqa: E402

from hostcheck import ATTACKS, HostState  # noqa: E402


@pytest.fixture
def host(tmp_path):
    """A canary tree and a host sleeper, checked unchanged after the test."""
    state = HostState(tmp_path / "canary")
    yield state
    state.check()


def pytest_terminal_summary(terminalreporter) -> None:
    if ATTACKS:
        total = sum(ATTACKS.values())
        terminalreporter.write_line(
            f"security: {total} attacks by class {dict(sorted(ATTACKS.items()))}; "
            "each asserted to fail as Linux fails it, with the host unchanged")
