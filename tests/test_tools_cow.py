"""tools/umlpy-mkcow and tools/umlpy-moo, and interoperation both ways with
uml-utilities' uml_mkcow and uml_moo (ext2 images made by mke2fs as backing files)."""
import os
import pty
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from umlpy.block import decode_header, open_ubd, parse_ubd_option

REPO = Path(__file__).resolve().parents[1]
MKCOW = str(REPO / "tools" / "umlpy-mkcow")
MOO = str(REPO / "tools" / "umlpy-moo")
UML_MKCOW, UML_MOO = shutil.which("uml_mkcow"), shutil.which("uml_moo")
MKE2FS = shutil.which("mke2fs") or "/usr/sbin/mke2fs"
E2FSCK = shutil.which("e2fsck") or "/usr/sbin/e2fsck"
needs_uml = pytest.mark.skipif(not (UML_MKCOW and UML_MOO),
                               reason="uml_mkcow/uml_moo missing (uml-utilities)")
needs_e2fs = pytest.mark.skipif(not os.path.exists(MKE2FS), reason="mke2fs missing")


def tool(*args, cwd=None):
    """Run one of our tools from the checkout, from a directory outside it."""
    return subprocess.run([sys.executable, *args], capture_output=True, text=True, cwd=cwd,
                          timeout=120)


def mke2fs(path: Path, *extra: str) -> Path:
    subprocess.run([MKE2FS, "-q", "-F", "-t", "ext2", *extra, str(path), "8M"], check=True,
                   env={**os.environ, "E2FSPROGS_FAKE_TIME": "1700000000"})
    return path


def write_differences(option: str, source: bytes, base: bytes) -> int:
    """Copy every 4 KiB block where `source` differs from `base` through the device."""
    changed = 0
    with open_ubd(parse_ubd_option(option)) as dev:
        for pos in range(0, len(source), 4096):
            if source[pos:pos + 4096] != base[pos:pos + 4096]:
                dev.write(pos, source[pos:pos + 4096])
                changed += 1
    return changed


@pytest.fixture
def ext2_pair(tmp_path):
    """(backing image, another file system of the same size) as bytes on disk."""
    a = mke2fs(tmp_path / "a.img", "-L", "first")
    b = mke2fs(tmp_path / "b.img", "-L", "second", "-b", "1024", "-N", "300")
    return a, b


@needs_uml
@needs_e2fs
def test_our_cow_merged_by_uml_moo_and_by_us(tmp_path, ext2_pair):
    a, b = ext2_pair
    changed = write_differences(f"ubd0={tmp_path}/w.cow,{a}", b.read_bytes(), a.read_bytes())
    assert changed > 10
    subprocess.run([UML_MOO, str(tmp_path / "w.cow"), str(tmp_path / "theirs.img")],
                   check=True)
    ours = tool(MOO, "w.cow", "ours.img", cwd=tmp_path)
    assert ours.returncode == 0, ours.stderr
    assert (tmp_path / "theirs.img").read_bytes() == b.read_bytes()
    assert (tmp_path / "ours.img").read_bytes() == b.read_bytes()
    fsck = subprocess.run([E2FSCK, "-fn", str(tmp_path / "ours.img")], capture_output=True)
    assert fsck.returncode == 0, fsck.stdout


@needs_uml
@needs_e2fs
def test_uml_mkcow_file_written_by_us_and_merged_by_uml_moo(tmp_path, ext2_pair):
    a, b = ext2_pair
    cow = tmp_path / "their.cow"
    subprocess.run([UML_MKCOW, str(cow), str(a)], check=True)
    write_differences(f"ubd0={cow}", b.read_bytes(), a.read_bytes())   # header's backing
    with open_ubd(parse_ubd_option(f"ubd0r={cow}")) as dev:
        assert dev.read(0, dev.size) == b.read_bytes()
    subprocess.run([UML_MOO, str(cow), str(tmp_path / "merged.img")], check=True)
    assert (tmp_path / "merged.img").read_bytes() == b.read_bytes()


@needs_uml
def test_in_place_merge_matches_uml_moo(tmp_path):
    data = os.urandom(1 << 20)
    for name in ("ours.img", "theirs.img"):
        (tmp_path / name).write_bytes(data)
        os.utime(tmp_path / name, (1700000000, 1700000000))
    cow = tmp_path / "c.cow"
    with open_ubd(parse_ubd_option(f"ubd0={cow},{tmp_path}/ours.img")) as dev:
        dev.write(1000, b"A" * 5000)
        dev.write(700000, b"B" * 3)
    subprocess.run([UML_MOO, "-d", "-b", str(tmp_path / "theirs.img"), str(cow)],
                   check=True)             # uml_moo wants -d first
    done = tool(MOO, "-d", str(cow))
    assert done.returncode == 0, done.stderr
    expected = bytearray(data)
    expected[1000:6000], expected[700000:700003] = b"A" * 5000, b"B" * 3
    assert (tmp_path / "theirs.img").read_bytes() == expected
    assert (tmp_path / "ours.img").read_bytes() == expected


@needs_uml
def test_mkcow_same_bytes_as_uml_mkcow(tmp_path):
    (tmp_path / "back").write_bytes(os.urandom(100000))
    subprocess.run([UML_MKCOW, "theirs.cow", "back"], check=True, cwd=tmp_path)
    made = tool(MKCOW, "ours.cow", "back", cwd=tmp_path)
    assert made.returncode == 0 and made.stderr == ""
    assert (tmp_path / "ours.cow").read_bytes() == (tmp_path / "theirs.cow").read_bytes()


def test_mkcow_cli_errors(tmp_path):
    (tmp_path / "back").write_bytes(b"x" * 4096)
    usage = tool(MKCOW, cwd=tmp_path)
    assert usage.returncode == 2 and "umlpy-mkcow [-f] <COW file> <backing file>" in usage.stderr
    assert tool(MKCOW, "c.cow", "back", cwd=tmp_path).returncode == 0
    again = tool(MKCOW, "c.cow", "back", cwd=tmp_path)
    assert (again.returncode, again.stderr) == (
        1, "umlpy-mkcow: COW file c.cow exists (use -f to overwrite it)\n")
    assert tool(MKCOW, "-f", "c.cow", "back", cwd=tmp_path).returncode == 0
    self_cow = tool(MKCOW, "-f", "back", "back", cwd=tmp_path)
    assert self_cow.returncode == 1 and (tmp_path / "back").read_bytes() == b"x" * 4096
    missing = tool(MKCOW, "d.cow", "nothere", cwd=tmp_path)
    assert missing.returncode == 1
    assert missing.stderr == (f"umlpy-mkcow: backing file {tmp_path}/nothere: "
                              "No such file or directory\n")
    assert not (tmp_path / "d.cow").exists()


def test_mkcow_force_refuses_a_cow_in_use(tmp_path):
    (tmp_path / "back").write_bytes(b"x" * 4096)
    with open_ubd(parse_ubd_option(f"ubd0={tmp_path}/c.cow,{tmp_path}/back")) as dev:
        dev.write(0, b"keep")
        dev.flush()
        busy = tool(MKCOW, "-f", "c.cow", "back", cwd=tmp_path)
        assert busy.returncode == 1 and "in use by another process" in busy.stderr
    with open_ubd(parse_ubd_option(f"ubd0={tmp_path}/c.cow")) as dev:
        assert dev.read(0, 4) == b"keep"


def test_moo_cli_errors(tmp_path):
    back = tmp_path / "back"
    back.write_bytes(b"x" * 8192)
    assert tool(MOO, cwd=tmp_path).returncode == 1
    assert tool(MOO, "-d", "a", "b", cwd=tmp_path).returncode == 1
    missing = tool(MOO, "none.cow", "out", cwd=tmp_path)
    assert (missing.returncode, missing.stderr) == (
        1, "umlpy-moo: COW file none.cow: No such file or directory\n")
    assert tool(MKCOW, "c.cow", "back", cwd=tmp_path).returncode == 0
    same = tool(MOO, "c.cow", "back", cwd=tmp_path)
    assert same.returncode == 1 and "is the same file as" in same.stderr
    assert back.read_bytes() == b"x" * 8192
    os.utime(back, (1600000000, 1600000000))
    stale = tool(MOO, "c.cow", "out", cwd=tmp_path)
    assert stale.returncode == 1 and "Traceback" not in stale.stderr
    assert stale.stderr.startswith("umlpy-moo: COW file c.cow: mtime mismatch (")
    assert stale.stderr.endswith(" of COW header vs backing file " + str(back) + "\n")
    assert not (tmp_path / "out").exists() and len(os.listdir(tmp_path)) == 2


def test_moo_keeps_odd_tail_and_prints_progress_on_a_tty(tmp_path):
    back = tmp_path / "back"
    back.write_bytes(os.urandom(3 << 20) + b"tail")           # not a multiple of 512
    with open_ubd(parse_ubd_option(f"ubd0={tmp_path}/c.cow,{back}")) as dev:
        dev.write(dev.size - 512, b"T" * 512)
    master, slave = pty.openpty()
    proc = subprocess.run([sys.executable, MOO, "c.cow", "out"], cwd=tmp_path,
                          stderr=slave, timeout=60)
    os.close(slave)
    shown = os.read(master, 65536).decode()
    os.close(master)
    assert proc.returncode == 0
    assert "100%" in shown and "merged c.cow into out" in shown
    out = (tmp_path / "out").read_bytes()
    assert len(out) == (3 << 20) + 4
    assert out[:(3 << 20) - 508] == back.read_bytes()[:(3 << 20) - 508]
    assert out[-4:] == b"TTTT"
    assert decode_header((tmp_path / "c.cow").read_bytes()[:4136]).size == len(out)
