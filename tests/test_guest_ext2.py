"""Booting from ext2/ext4 images on ubd devices: real images made by mke2fs,
the guest's changes checked by e2fsck and debugfs afterwards, a second disk
mounted from the guest, raw device access, and fsync surviving kill -9."""
from __future__ import annotations

import hashlib
import os
import random
import re
import shutil
import signal
import subprocess
import sys
import time

import pytest

from guestroot import describe, guest_env, kill_group, run_umlpy, umlpy_boot

pytestmark = pytest.mark.skipif(shutil.which("mke2fs") is None or shutil.which("e2fsck") is None,
                                reason="e2fsprogs missing (sh tools/install-test-deps.sh)")

WORKLOAD = """\
set -e
mkdir -p /work/a/b && cd /work
echo hello > a/b/f && cp -a a c && mv c/b c/moved && ln -s b/f a/sl && ln a/b/f a/hard
chmod 640 a/b/f && chown 12:34 a/b/f
dd if=/dev/zero of=big bs=4096 count=300 2>/dev/null
tar cf /work/t.tar a && mkdir x && tar xf t.tar -C x && rm -rf a
ls -lnR /work > /work/listing
sync
echo WORKLOAD-OK
"""


def make_image(path, kind: str, source=None, size: str = "64M"):
    cmd = ["mke2fs", "-q", "-F", "-t", kind] + (["-d", str(source)] if source else []) + \
        [str(path), size]
    subprocess.run(cmd, check=True, capture_output=True)
    return path


def fsck(path, *flags: str) -> subprocess.CompletedProcess:
    return subprocess.run(["e2fsck", "-f", *flags, str(path)], capture_output=True, text=True)


def debugfs(path, request: str) -> str:
    return subprocess.run(["debugfs", "-R", request, str(path)], capture_output=True,
                          text=True).stdout


def boot_image(img, script: str, *extra: str, timeout: float = 120):
    return run_umlpy(umlpy_boot([f"ubd0={img}", "init=/bin/sh", "rw", "quiet", *extra]),
                     input=script, timeout=timeout, cwd=str(img.parent))


@pytest.mark.parametrize("kind", ["ext2", "ext4"])
def test_a_mke2fs_image_boots_read_write_and_stays_clean(busybox_root, tmp_path, kind):
    img = make_image(tmp_path / "root.img", kind, busybox_root)
    res = boot_image(img, WORKLOAD + "poweroff -f\n")
    assert res.returncode == 0 and "WORKLOAD-OK" in res.stdout, describe(res)
    check = fsck(img, "-n")
    assert check.returncode == 0, check.stdout + check.stderr
    listing = debugfs(img, "cat /work/listing")
    assert "moved" in listing and "sl -> b/f" in listing and " 12 " in listing
    stat = debugfs(img, "stat /work/x/a/b/f")
    assert "Links: 2" in stat and "User:    12" in stat and "Group:    34" in stat, stat
    assert debugfs(img, "cat /work/x/a/b/f") == "hello\n"


def test_a_second_disk_is_mounted_from_the_guest(busybox_root, tmp_path):
    img = make_image(tmp_path / "root.img", "ext4", busybox_root)
    disk = make_image(tmp_path / "disk.img", "ext2", size="16M")
    script = ("mkdir -p /mnt && mount -t ext2 /dev/ubdb /mnt && echo data > /mnt/f && "
              "grep ubdb /proc/mounts && umount /mnt && mount -o ro /dev/ubdb /mnt && "
              "cat /mnt/f && (echo x > /mnt/g || echo refused) && umount /mnt\n"
              "blockdev --getsize64 /dev/ubdb\npoweroff -f\n")
    res = boot_image(img, script, f"ubdb={disk}")
    assert res.returncode == 0, describe(res)
    assert "/dev/ubdb /mnt ext2 rw" in res.stdout and "data\nrefused\n" in res.stdout
    assert str(16 << 20) in res.stdout, describe(res)
    assert fsck(disk, "-n").returncode == 0
    assert debugfs(disk, "cat /f") == "data\n"


def test_raw_device_access_runs_on_the_image(busybox_root, tmp_path):
    img = make_image(tmp_path / "root.img", "ext4", busybox_root)
    disk = tmp_path / "raw.img"
    disk.write_bytes(bytes(1 << 20))
    script = ("echo raw-bytes | dd of=/dev/ubdb bs=512 seek=3 conv=notrunc 2>/dev/null\n"
              "dd if=/dev/ubdb bs=512 skip=3 count=1 2>/dev/null | head -c 9; echo\n"
              "poweroff -f\n")
    res = boot_image(img, script, f"ubdb={disk}")
    assert "raw-bytes" in res.stdout, describe(res)
    assert disk.read_bytes()[3 * 512:3 * 512 + 9] == b"raw-bytes"


def test_a_damaged_image_gives_one_line(tmp_path):
    img = make_image(tmp_path / "root.img", "ext2", size="8M")
    with open(img, "r+b") as f:
        f.seek(1024 + 56)
        f.write(b"\0\0")                        # the superblock magic
    res = boot_image(img, "true\n")
    assert res.returncode == 2, describe(res)
    assert res.stderr.startswith("umlpy: root=/dev/ubda: ") and res.stderr.count("\n") == 1


CRASH_WRITER = """\
i=0
while true; do
  i=$((i+1))
  head -c 3000 /dev/urandom > /data/f$i.tmp
  sha=$(sha256sum /data/f$i.tmp | cut -d' ' -f1)
  dd if=/data/f$i.tmp of=/data/f$i conv=fsync 2>/dev/null && echo "SYNCED f$i $sha"
done
"""


def _crash_trials(busybox_root, tmp_path, trials: int):
    img = make_image(tmp_path / "root.img", "ext2", busybox_root)
    subprocess.run(["debugfs", "-w", "-R", "mkdir /data", str(img)], check=True,
                   capture_output=True)
    rng = random.Random(1234)
    checked = 0
    for trial in range(trials):
        proc = subprocess.Popen(umlpy_boot([f"ubd0={img}", "init=/bin/sh", "rw", "quiet"]),
                                stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                stderr=subprocess.PIPE, env=guest_env(), cwd=str(tmp_path),
                                start_new_session=True, text=True)
        proc.stdin.write(CRASH_WRITER)
        proc.stdin.close()
        proc.stdin = None                       # communicate() below has nothing to send
        time.sleep(1.0 + rng.random() * 2.0)
        os.killpg(proc.pid, signal.SIGKILL)
        out, err = proc.communicate()
        kill_group(proc)
        synced = [ln.split() for ln in out.splitlines() if ln.startswith("SYNCED ")]
        repair = fsck(img, "-p")
        assert repair.returncode in (0, 1), f"trial {trial}: e2fsck -p: {repair.stdout}"
        for _tag, name, sha in synced:
            data = subprocess.run(["debugfs", "-R", f"cat /data/{name}", str(img)],
                                  capture_output=True).stdout
            assert hashlib.sha256(data).hexdigest() == sha, f"trial {trial}: {name} lost"
            checked += 1
        subprocess.run(["debugfs", "-w", "-R", "rmdir /data", str(img)], capture_output=True)
        fsck(img, "-p")
    assert checked >= trials, f"only {checked} fsynced files in {trials} trials: nothing tested"
    return checked


def test_fsynced_files_survive_kill_9(busybox_root, tmp_path):
    _crash_trials(busybox_root, tmp_path, trials=2)


@pytest.mark.slow
def test_fsynced_files_survive_kill_9_many_times(busybox_root, tmp_path):
    _crash_trials(busybox_root, tmp_path, trials=20)


def _mkimage(path, *args: str):
    from guestroot import REPO
    res = subprocess.run([sys.executable, str(REPO / "tools" / "umlpy-mkimage"), str(path),
                          *args], capture_output=True, text=True)
    assert res.returncode == 0, res.stderr
    return path


@pytest.mark.parametrize("kind", ["ext2", "ext4"])
def test_umlpy_mkimage_makes_a_bootable_clean_image(tmp_path, kind):
    img = _mkimage(tmp_path / "bb.img", "--busybox", "-t", kind)
    assert fsck(img, "-n").returncode == 0
    res = boot_image(img, "echo booted $0; id -u; poweroff -f\n")
    assert res.returncode == 0 and "booted /bin/sh\n0\n" in res.stdout, describe(res)
    assert fsck(img, "-n").returncode == 0


@pytest.mark.skipif(shutil.which("uml_mkcow") is None or shutil.which("uml_moo") is None,
                    reason="uml-utilities missing (sh tools/install-test-deps.sh)")
def test_cow_files_interoperate_with_uml_utilities(tmp_path):
    base = _mkimage(tmp_path / "base.img", "--busybox")
    pristine = base.read_bytes()
    subprocess.run(["uml_mkcow", str(tmp_path / "a.cow"), str(base)], check=True,
                   capture_output=True)
    res = boot_image(tmp_path / "a.cow", "echo via-uml-cow > /root/f; poweroff -f\n")
    assert res.returncode == 0, describe(res)
    # a COW umlpy makes itself (ubd0=cow,backing creates it), merged by UML's uml_moo
    res = run_umlpy(umlpy_boot([f"ubd0={tmp_path / 'b.cow'},{base}", "init=/bin/sh", "rw",
                                "quiet"]), input="echo via-umlpy-cow > /root/g; poweroff -f\n",
                    timeout=60, cwd=str(tmp_path))
    assert res.returncode == 0, describe(res)
    assert base.read_bytes() == pristine, "the backing file was written"
    for cow, name, text in (("a.cow", "f", "via-uml-cow"), ("b.cow", "g", "via-umlpy-cow")):
        merged = tmp_path / f"{cow}.merged"
        subprocess.run(["uml_moo", str(tmp_path / cow), str(merged)], check=True,
                       capture_output=True)
        assert fsck(merged, "-n").returncode == 0
        assert debugfs(merged, f"cat /root/{name}") == text + "\n"


PYTHON_WORKLOAD = """\
cd /tmp
python3 -c 'import sqlite3; c = sqlite3.connect("/tmp/t.db"); c.execute("create table t(x)"); \
c.executemany("insert into t values(?)", [(i,) for i in range(1000)]); c.commit(); \
print("sum", c.execute("select sum(x) from t").fetchone()[0])'
"""


def test_python_and_sqlite_on_an_ext4_root(dynamic_root, tmp_path):
    img = make_image(tmp_path / "root.img", "ext4", dynamic_root, size="256M")
    res = run_umlpy(umlpy_boot([f"ubd0={img}", "init=/bin/bash", "rw", "quiet"]),
                    input=PYTHON_WORKLOAD, timeout=180, cwd=str(tmp_path))
    assert res.returncode == 0 and "sum 499500" in res.stdout, describe(res)
    assert fsck(img, "-n").returncode == 0
    stat = debugfs(img, "stat /tmp/t.db")
    size = re.search(r"Project: +\d+ +Size: (\d+)", stat)
    assert "Type: regular" in stat and size and int(size.group(1)) > 0, stat
