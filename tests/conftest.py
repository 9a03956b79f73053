"""Fixtures for the guest tests: guest roots built once per session."""

from __future__ import annotations

import os
import shutil
import sys
from pathlib import Path

import pytest

sys.path.insert(0, os.path.dirname(__file__))

import guestroot  # noqa: E402


def _require_static_busybox() -> None:
    if not os.path.exists(guestroot.HOST_BUSYBOX):
        pytest.skip(f"{guestroot.HOST_BUSYBOX} missing: install busybox-static "
                    "(sh tools/install-test-deps.sh)")
    with open(guestroot.HOST_BUSYBOX, "rb") as f:
        head = f.read(4096)
    if b"ld-linux" in head:
        pytest.skip(f"{guestroot.HOST_BUSYBOX} is not the static busybox: install busybox-static")


@pytest.fixture(scope="session")
def busybox_root(tmp_path_factory) -> Path:
    """A shared busybox root.  Tests write only under /tmp/<their own name>."""
    _require_static_busybox()
    return guestroot.build_busybox_root(tmp_path_factory.mktemp("busyboxroot"))


@pytest.fixture
def fresh_busybox_root(tmp_path) -> Path:
    """A busybox root of the test's own, to plant files and symlinks in."""
    _require_static_busybox()
    return guestroot.build_busybox_root(tmp_path / "root")


@pytest.fixture(scope="session")
def dynamic_root(tmp_path_factory) -> Path:
    missing = [p for p in (guestroot.HOST_PYTHON, guestroot.PYTHON_STDLIB, "/usr/bin/bash")
               if not os.path.exists(p)]
    if missing:
        pytest.skip(f"host programs missing for the dynamic root: {missing} "
                    "(Debian's python3.11 and bash)")
    if shutil.which("ldd") is None:
        pytest.skip("ldd missing (libc-bin)")
    return guestroot.build_dynamic_root(tmp_path_factory.mktemp("dynroot"))


@pytest.fixture(scope="session")
def static_tools(tmp_path_factory) -> Path:
    """A directory of tiny static C programs built with the host's gcc."""
    if shutil.which("gcc") is None:
        pytest.skip("gcc missing (install gcc and libc6-dev)")
    d = tmp_path_factory.mktemp("static")
    guestroot.compile_static(
        "int main(void) { *(volatile int *)0 = 1; return 0; }\n", d / "segv")
    return d
