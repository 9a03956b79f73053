"""A full tmpfs: size= and nr_inodes= as Linux enforces them, from the guest.

Guest root mounts a tmpfs with size=1m and nr_inodes=8 and fills it with
native writes (dd), a sparse truncate past the size, fallocate, more files
than inodes, and a remount below what is used.  The same busybox script runs
natively on a host tmpfs with the same options (as root) and the outputs must
match.  The kernel keeps the data of a tmpfs with size= in a private host
tmpfs of that size (umlpy/fs/tmpfs_backing.py), which is what makes a native
write get ENOSPC; without root that is not possible and the test is skipped.

Attacks by class: resources 1 (a full tmpfs, size and inodes).
"""
from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest

from guestroot import describe, run_umlpy, umlpy_command
from hostcheck import ATTACKS, build_probe

# $D is the tmpfs mount point; every line of output is compared with Linux's.
SCRIPT = r"""
D=$1 E=$2
report() { echo "$1 rc=$2 $(sed 's/.*: //' $E | head -1)"; : > $E; }
dd if=/dev/zero of=$D/big bs=64k count=40 2>$E; report dd-past-size $?
echo "size $(stat -c %s $D/big)"
dd if=/dev/zero of=$D/more bs=4k count=1 2>$E; report dd-when-full $?
truncate -s 10M $D/sparse 2>$E; report sparse-truncate $?
echo "sparse $(stat -c %s $D/sparse)"
fallocate -l 512k $D/sparse 2>$E; report fallocate-when-full $?
rm -f $D/big $D/more $D/sparse
fallocate -l 512k $D/alloc 2>$E; report fallocate-room $?
mount -o remount,size=64k $D 2>$E; report remount-below-used $?
rm -f $D/alloc
i=0; while [ $i -lt 10 ]; do : > $D/f$i 2>$E || break; i=$((i+1)); done
report inodes-$i $?
df -k $D | tail -1 | awk '{print "df", $2}'
"""


@pytest.fixture(scope="module")
def bb_root(tmp_path_factory) -> Path:
    return build_probe("res", tmp_path_factory)[1]


def test_a_full_tmpfs_gives_enospc_like_linux(bb_root, host, tmp_path):
    if os.geteuid() != 0:
        pytest.skip("needs root: a host tmpfs is what enforces size= on native writes "
                    "(and the native reference mounts one)")
    opts = "size=1m,nr_inodes=8"
    d = tmp_path / "native-tmpfs"
    d.mkdir()
    subprocess.run(["mount", "-t", "tmpfs", "-o", opts, "none", str(d)], check=True)
    try:
        nat = subprocess.run(["/bin/busybox", "sh", "-c", SCRIPT, "sh", str(d),
                              str(tmp_path / "err")],
                             capture_output=True, text=True, timeout=60)
    finally:
        subprocess.run(["umount", str(d)], check=True)
    (bb_root / "fill.sh").write_text(SCRIPT)
    guest_script = (f"mkdir -p /mnt/t && mount -t tmpfs -o {opts} none /mnt/t && "
                    "exec /bin/sh /fill.sh /mnt/t /mnt/err")
    res = run_umlpy(umlpy_command(bb_root, ["/bin/sh", "-c", guest_script]), timeout=120,
                    cwd=str(bb_root))
    ATTACKS["resources"] += 1
    assert "dd-past-size rc=1 No space left on device" in nat.stdout, nat.stdout + nat.stderr
    assert res.stdout == nat.stdout, describe(res) + f"\nnative:\n{nat.stdout}{nat.stderr}"
    assert "Traceback" not in res.stderr and "oops" not in res.stderr, describe(res)
