"""Block devices on host files: plain images, COW devices, the cache, flags, locks and
the order of writes that makes a flush crash-safe."""
import errno
import os
import random
import subprocess
import sys
from pathlib import Path

import pytest

import umlpy.block.cow_device as cow_device_mod
from umlpy.block import (BlockDevice, BlockError, CachedDevice, CowDevice, FileDevice,
                         blkflsbuf, blkgetsize, blkgetsize64, blkroget, blksszget,
                         decode_header, open_ubd, parse_ubd_option)

REPO = Path(__file__).resolve().parents[1]
SIZE = 256 * 1024 + 1000                    # backing size, not a multiple of 512
ROUNDED = -(-SIZE // 512) * 512             # the device size


@pytest.fixture
def backing(tmp_path):
    path = tmp_path / "back.img"
    path.write_bytes(random.Random(1).randbytes(SIZE))
    return path


def errno_of(call) -> int:
    with pytest.raises(OSError) as exc:
        call()
    return exc.value.errno


def test_plain_image_semantics(tmp_path):
    img = tmp_path / "root_fs"
    img.write_bytes(bytes(8192))
    with open_ubd(parse_ubd_option(f"ubd0={img}")) as dev:
        assert isinstance(dev, FileDevice) and isinstance(dev, BlockDevice)
        assert (dev.size, dev.readonly) == (8192, False)
        dev.write(100, b"abc")
        assert dev.read(99, 5) == b"\0abc\0"
        assert errno_of(lambda: dev.read(8190, 4)) == errno.EIO
        assert errno_of(lambda: dev.write(8192, b"x")) == errno.ENOSPC
        assert errno_of(lambda: dev.write(8190, b"xyz")) == errno.EIO
        assert errno_of(lambda: dev.write(-1, b"x")) == errno.EINVAL
        assert dev.read(8190, 2) == b"\0\0"              # the refused writes wrote nothing
        assert dev.read(0, 0) == b""
        assert (blkgetsize64(dev), blkgetsize(dev), blksszget(dev), blkroget(dev)) == \
            (8192, 16, 512, 0)
        blkflsbuf(dev)
    assert img.read_bytes()[100:103] == b"abc"


def test_readonly_refuses_writes(tmp_path, backing):
    img = tmp_path / "ro.img"
    img.write_bytes(b"data" * 1024)
    with open_ubd(parse_ubd_option(f"ubd0r={img}")) as dev:
        assert dev.readonly and blkroget(dev) == 1
        assert errno_of(lambda: dev.write(0, b"x")) == errno.EROFS
        assert dev.read(0, 4) == b"data"
    cow = tmp_path / "ro.cow"
    open_ubd(parse_ubd_option(f"ubd1={cow},{backing}")).close()
    before = cow.read_bytes()
    with open_ubd(parse_ubd_option(f"ubd1r={cow},{backing}")) as dev:
        assert errno_of(lambda: dev.write(0, b"x")) == errno.EROFS
        dev.flush()
    assert cow.read_bytes() == before


def test_data_only_treats_cow_file_as_raw(tmp_path, backing):
    cow = tmp_path / "x.cow"
    open_ubd(parse_ubd_option(f"ubd0={cow},{backing}")).close()
    with open_ubd(parse_ubd_option(f"ubd0d={cow}")) as dev:
        assert isinstance(dev, FileDevice)
        assert dev.size == os.path.getsize(cow) and dev.read(0, 4) == b"OOOM"
    with open_ubd(parse_ubd_option(f"ubd0={cow}")) as dev:  # without d: a COW device
        assert isinstance(dev, CowDevice) and dev.size == ROUNDED


def test_cow_reads_and_partial_writes(tmp_path, backing):
    base = backing.read_bytes()
    with open_ubd(parse_ubd_option(f"ubd0={tmp_path}/c.cow,{backing}")) as dev:
        assert dev.size == ROUNDED
        assert dev.read(0, SIZE) == base
        assert dev.read(SIZE - 10, 20) == base[-10:] + bytes(10)   # past backing: zeros
        dev.write(700, b"X" * 10)                       # inside sector 1, not yet in COW
        dev.write(2000, b"Y" * 3000)                    # sectors 3..9, both ends partial
        dev.write(8192, b"Z" * 4096)                    # whole sectors
        dev.write(dev.size - 3, b"END")                 # the padding sector
    model = bytearray(base + bytes(ROUNDED - SIZE))
    model[700:710], model[2000:5000] = b"X" * 10, b"Y" * 3000
    model[8192:12288], model[-3:] = b"Z" * 4096, b"END"
    with open_ubd(parse_ubd_option(f"ubd0={tmp_path}/c.cow")) as dev:
        assert dev.read(0, dev.size) == bytes(model)
        assert dev.sectors_in_cow() == 1 + 7 + 8 + 1
    assert backing.read_bytes() == base                 # the backing file is never written


@pytest.mark.parametrize("cached", [False, True])
def test_random_io_matches_a_model(tmp_path, backing, cached):
    rng = random.Random(7)
    spec = parse_ubd_option(f"ubd0={tmp_path}/r.cow,{backing}")
    model = bytearray(backing.read_bytes() + bytes(ROUNDED - SIZE))

    def opened():
        dev = open_ubd(spec)
        return CachedDevice(dev, max_pages=8) if cached else dev

    dev = opened()
    for step in range(400):
        offset = rng.randrange(len(model))
        length = rng.choice([1, 7, 511, 512, 513, 4096, 5000, 20000])
        length = min(length, len(model) - offset)
        if rng.random() < 0.6:
            data = rng.randbytes(length)
            dev.write(offset, data)
            model[offset:offset + length] = data
        else:
            assert dev.read(offset, length) == model[offset:offset + length]
        if step % 97 == 96:                             # flush and reopen now and then
            dev.close()
            dev = opened()
    assert dev.read(0, len(model)) == model
    dev.close()
    with open_ubd(spec) as fresh:
        assert fresh.read(0, len(model)) == model


def test_cache_writes_back_on_eviction_and_flush(tmp_path):
    img = tmp_path / "img"
    img.write_bytes(bytes(64 * 4096))
    inner = open_ubd(parse_ubd_option(f"ubd0={img}"))
    cache = CachedDevice(inner, max_pages=4)
    for page in range(6):
        cache.write(page * 4096 + 1, bytes([page + 1]))
    assert inner.read(1, 1) == b"\x01"                   # evicted, so written below
    assert inner.read(5 * 4096 + 1, 1) == b"\0"          # still only in the cache
    cache.flush()
    assert inner.read(5 * 4096 + 1, 1) == b"\x06"
    assert cache.read(0, 64 * 4096) == inner.read(0, 64 * 4096)   # bigger than the cache
    cache.close()


def test_flush_order_data_before_bitmap(tmp_path, backing, monkeypatch):
    dev = open_ubd(parse_ubd_option(f"ubd0={tmp_path}/o.cow,{backing}"))
    header = dev.header
    events = []
    real_pwrite, real_sync = cow_device_mod.pwrite_full, os.fdatasync

    def pwrite(fd, data, offset):
        kind = "data" if offset >= header.data_offset else "bitmap"
        events.append(kind)
        real_pwrite(fd, data, offset)

    def fdatasync(fd):
        events.append("sync")
        real_sync(fd)

    monkeypatch.setattr(cow_device_mod, "pwrite_full", pwrite)
    monkeypatch.setattr(cow_device_mod.os, "fdatasync", fdatasync)
    dev.write(0, b"a" * 4096)
    dev.write(100000, b"b" * 100)
    assert events == ["data", "data"]                   # bits stay in memory until flush
    dev.flush()
    assert events[2:] == ["sync", "bitmap", "sync"]
    events.clear()
    dev.write(0, b"c" * 512)                            # sector already in the COW file
    dev.flush()
    assert events == ["data", "sync"]                   # no bitmap write needed
    events.clear()
    dev.flush()
    assert events == []
    dev.close()


def test_sync_flag_writes_bits_at_once(tmp_path, backing):
    cow = tmp_path / "s.cow"
    with open_ubd(parse_ubd_option(f"ubd0s={cow},{backing}")) as dev:
        import fcntl
        assert fcntl.fcntl(dev._cow_fd, fcntl.F_GETFL) & os.O_SYNC == os.O_SYNC
        dev.write(512 * 9, b"s" * 512)
        with open(cow, "rb") as f:                      # no flush: already on disk
            f.seek(decode_header(f.read(4136)).bitmap_offset + 1)
            assert f.read(1) == b"\x02"


def test_cow_created_when_missing_and_used_when_present(tmp_path, backing):
    cow = tmp_path / "new.cow"
    spec = parse_ubd_option(f"ubd0={cow},{backing}")
    with open_ubd(spec) as dev:
        dev.write(0, b"first")
    with open_ubd(spec) as dev:                          # present: opened, not recreated
        assert dev.read(0, 5) == b"first"
    with pytest.raises(BlockError, match="not a COW file"):  # a raw file is not clobbered
        open_ubd(parse_ubd_option(f"ubd0={backing},{backing}"))


HOLD = """
import sys, time
sys.path.insert(0, {repo!r})
from umlpy.block import open_ubd, parse_ubd_option, BlockError
try:
    dev = open_ubd(parse_ubd_option(sys.argv[1]))
except BlockError as e:
    print("ERR", e, flush=True)
    sys.exit(1)
print("OPEN", flush=True)
sys.stdin.read()
"""


def _holder(cwd, option):
    return subprocess.Popen([sys.executable, "-c", HOLD.format(repo=str(REPO)), option],
                            cwd=cwd, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)


def _try_open(cwd, option) -> str:
    proc = subprocess.run([sys.executable, "-c", HOLD.format(repo=str(REPO)), option],
                          cwd=cwd, input="", capture_output=True, text=True, timeout=60)
    return proc.stdout.strip()


def test_two_processes_cannot_share_an_image(tmp_path, backing):
    (tmp_path / "root_fs").write_bytes(bytes(4096))
    holder = _holder(tmp_path, "ubd0=root_fs")
    try:
        assert holder.stdout.readline().strip() == "OPEN"
        assert _try_open(tmp_path, "ubd0=root_fs") == \
            "ERR ubd0: image root_fs is in use by another process"
        assert _try_open(tmp_path, "ubd0r=root_fs").startswith("ERR ")
        assert _try_open(tmp_path, "ubd0c=root_fs") == "OPEN"     # shared: no lock
        with pytest.raises(BlockError, match="in use by another process"):
            open_ubd(parse_ubd_option(f"ubd1={tmp_path}/root_fs"))
    finally:
        holder.communicate("")
    assert _try_open(tmp_path, "ubd0=root_fs") == "OPEN"          # lock gone with it


def test_cow_and_backing_locks(tmp_path, backing):
    dev = open_ubd(parse_ubd_option(f"ubd0={tmp_path}/a.cow,{backing}"))
    try:
        # the backing file is read-locked: another COW over it is fine, writing it is not
        assert _try_open(tmp_path, f"ubd1={tmp_path}/b.cow,{backing}") == "OPEN"
        assert _try_open(tmp_path, f"ubd1={backing}") == \
            f"ERR ubd1: image {backing} is in use by another process"
        assert _try_open(tmp_path, f"ubd1={tmp_path}/a.cow,{backing}") == \
            f"ERR ubd1: COW file {tmp_path}/a.cow is in use by another process"
    finally:
        dev.close()
    with open_ubd(parse_ubd_option(f"ubd0r={backing}")) as a, \
            open_ubd(parse_ubd_option(f"ubd1r={backing}")) as b:   # readers share
        assert a.read(0, 10) == b.read(0, 10)


def test_missing_image(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    with pytest.raises(BlockError) as exc:
        open_ubd(parse_ubd_option("ubd0=root_fs"))
    assert str(exc.value) == "ubd0: image root_fs: No such file or directory"
