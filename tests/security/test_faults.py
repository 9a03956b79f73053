"""Bad input and faults, as a guest meets them.

* Bad ELF input: a guest execs a truncated ELF, one for another architecture,
  one with an absurd program header count, an empty executable, a #! loop and
  a #! naming a missing interpreter (execerr.c); each must fail with the errno
  Linux gives the same exec natively.  (tests/test_unit_loader_bad_elf.py covers
  the loader alone.)
* A guest that aborts is reported with its signal (segfault and kill are in
  tests/test_guest_lifecycle.py, with kill -9 of umlpy; fsync'ed data surviving
  kill -9 is tests/test_guest_ext2.py and tests/test_unit_block_crash.py).
* A full host disk: the guest's root is a small host tmpfs (root only); filling
  it gives the guest ENOSPC, and umlpy goes on and exits cleanly.

Attacks by class: bad-elf 7, faults 2.
"""
from __future__ import annotations

import os
import shutil
import struct
import subprocess
from pathlib import Path

import pytest

from guestroot import (HOST_BUSYBOX, build_busybox_root, compile_static, describe, run_umlpy,
                       umlpy_command)
from hostcheck import ATTACKS, build_probe

BAD = ("trunc", "arch", "phnum", "phoff", "empty", "loop1", "nointerp")


def make_bad(d: Path) -> list:
    """The bad executables in d (all mode 755); their names, relative to d."""
    d.mkdir(parents=True, exist_ok=True)
    elf = Path(HOST_BUSYBOX).read_bytes()
    files = {
        "trunc": elf[:200],                                  # program headers past EOF
        "arch": elf[:18] + struct.pack("<H", 183) + elf[20:],          # EM_AARCH64
        "phnum": elf[:56] + struct.pack("<H", 0xFFFF) + elf[58:],       # e_phnum
        "phoff": elf[:32] + struct.pack("<Q", 1 << 62) + elf[40:],      # e_phoff
        "empty": b"",
        "loop1": b"#!./loop2\n",
        "loop2": b"#!./loop1\n",
        "nointerp": b"#!./no-such-interpreter\n",
    }
    for name, data in files.items():
        (d / name).write_bytes(data)
        os.chmod(d / name, 0o755)
    return [f"./{n}" for n in BAD]


@pytest.fixture(scope="module")
def exec_probe(tmp_path_factory) -> "tuple[Path, Path]":
    return build_probe("execerr", tmp_path_factory)


def test_bad_executables_fail_as_on_linux(exec_probe, host, tmp_path):
    binary, root = exec_probe
    names = make_bad(tmp_path / "native")
    nat = subprocess.run([str(binary), *names], capture_output=True, text=True, timeout=60,
                         cwd=str(tmp_path / "native"))
    make_bad(root / "bad")
    res = run_umlpy(umlpy_command(root, ["/bin/sh", "-c", 'cd /bad && exec /bin/execerr "$@"',
                                         "sh", *names]), timeout=60, cwd=str(root))
    ATTACKS["bad-elf"] += len(names)
    assert nat.stdout.count("\n") == len(names) and "OK" not in nat.stdout, nat.stdout
    assert res.stdout == nat.stdout, describe(res) + f"\nnative:\n{nat.stdout}"
    assert "Traceback" not in res.stderr and "oops" not in res.stderr, describe(res)


def test_an_aborting_guest_is_reported_with_its_signal(exec_probe, tmp_path):
    _, root = exec_probe
    compile_static("#include <stdlib.h>\nint main(void) { abort(); }\n", root / "bin" / "abrt")
    res = run_umlpy(umlpy_command(root, ["/bin/abrt"]), timeout=60, cwd=str(root))
    ATTACKS["faults"] += 1
    assert res.returncode == 128 + 6 and "Aborted" in res.stderr, describe(res)


def test_a_full_host_disk_gives_the_guest_enospc(tmp_path, host):
    if os.geteuid() != 0:
        pytest.skip("needs root to mount a small host tmpfs as the full disk")
    disk = tmp_path / "disk"
    disk.mkdir()
    size = os.path.getsize(HOST_BUSYBOX) + (1 << 20)
    subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size}", "none", str(disk)], check=True)
    try:
        root = build_busybox_root(disk / "root")
        script = ("dd if=/dev/zero of=/fill bs=64k count=64 2>&1 | grep -o 'No space.*'; "
                  "echo x > /small 2>/dev/null; sync; rm /fill; echo again > /after && "
                  "cat /after; exit 3")
        res = run_umlpy(umlpy_command(root, ["/bin/sh", "-c", script]), timeout=60,
                        cwd=str(tmp_path))
        ATTACKS["faults"] += 1
        assert res.stdout.startswith("No space left on device\n"), describe(res)
        assert res.stdout.endswith("again\n") and res.returncode == 3, describe(res)
        assert "Traceback" not in res.stderr and "oops" not in res.stderr, describe(res)
    finally:
        subprocess.run(["umount", "-l", str(disk)], check=False)
