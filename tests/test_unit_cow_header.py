"""UML COW headers: byte layout (against uml_mkcow), old versions, corrupt files, and
the backing file's size/mtime check."""
import os
import shutil
import struct
import subprocess

import pytest

from umlpy.block import (BlockError, CowDevice, decode_header, encode_header,
                         open_ubd, parse_ubd_option)
from umlpy.block.cow import (HEADER_V3_SIZE, CowHeader, absolutize, new_header)
from umlpy.block.toolmain import make_cow

UML_MKCOW = shutil.which("uml_mkcow")
needs_mkcow = pytest.mark.skipif(UML_MKCOW is None, reason="uml_mkcow missing (uml-utilities)")


@pytest.fixture
def backing(tmp_path):
    path = tmp_path / "back.img"
    path.write_bytes(os.urandom(37000))         # not a multiple of 512 on purpose
    os.utime(path, (1700000000, 1700000000))
    return path


def test_v3_layout_by_hand(backing):
    header = new_header(str(backing))
    raw = encode_header(header)
    assert len(raw) == HEADER_V3_SIZE == 4128
    assert raw[:4] == b"OOOM"
    magic, version, mtime, size, ss, align, fmt = struct.unpack(">IIIQIII", raw[:32])
    assert (magic, version, mtime, size, ss, align, fmt) == (
        0x4F4F4F4D, 3, 1700000000, 37000, 512, 4096, 0)
    assert raw[32:].rstrip(b"\0") == str(backing).encode()
    assert header.bitmap_offset == 8192
    assert header.bitmap_len == 10                      # 73 sectors
    assert header.data_offset == 12288
    assert header.file_size == 12288 + 37000
    assert decode_header(raw) == header


@needs_mkcow
def test_uml_mkcow_file_parses_and_ours_is_byte_identical(backing, tmp_path):
    theirs, ours = tmp_path / "theirs.cow", tmp_path / "ours.cow"
    subprocess.run([UML_MKCOW, str(theirs), str(backing)], check=True)
    make_cow(str(ours), str(backing))
    header = decode_header(theirs.read_bytes()[:4136])
    assert header == new_header(str(backing))
    assert theirs.read_bytes() == ours.read_bytes()     # header, zero bitmap, length
    assert os.stat(ours).st_blocks * 512 < os.stat(ours).st_size  # sparse


@needs_mkcow
def test_backing_path_recorded_like_uml_mkcow(backing, tmp_path, monkeypatch):
    (tmp_path / "sub").mkdir()
    (tmp_path / "link.img").symlink_to(backing)
    monkeypatch.chdir(tmp_path / "sub")
    for spelling in ("../back.img", "../sub/../back.img", "../link.img", str(backing)):
        subprocess.run([UML_MKCOW, "-f", "t.cow", spelling], check=True)
        with open("t.cow", "rb") as f:
            theirs = decode_header(f.read(4136)).backing_file
        assert absolutize(spelling) == theirs, spelling


def _v1(path, size, order="<"):
    return struct.pack(order + "II256sIQi", 0x4F4F4F4D, 1, path.encode(), 1700000000, size, 512)


def _v2(path, size):
    return struct.pack(">II4096sIQi", 0x4F4F4F4D, 2, path.encode(), 1700000000, size, 512)


def _v3_broken(path, size):
    raw = struct.pack(">IIIxxxxQIII4096s", 0x4F4F4F4D, 3, 1700000000, size, 512, 4096, 0,
                      path.encode())
    return raw.ljust(4136, b"\0")


@pytest.mark.parametrize("maker,bitmap_offset,data_offset", [
    (_v1, 280, 512), (lambda p, s: _v1(p, s, ">"), 280, 512),
    (_v2, 4120, 4608), (_v3_broken, 8192, 12288)])
def test_old_versions_read_and_write(tmp_path, maker, bitmap_offset, data_offset):
    size = 65536
    back = tmp_path / "b.img"
    back.write_bytes(bytes(range(256)) * (size // 256))
    os.utime(back, (1700000000, 1700000000))
    raw = maker(str(back), size)
    header = decode_header(raw)
    assert (header.bitmap_offset, header.data_offset) == (bitmap_offset, data_offset)
    assert (header.size, header.mtime, header.backing_file) == (size, 1700000000, str(back))
    cow = tmp_path / "old.cow"
    with open(cow, "wb") as f:
        f.write(raw)
        f.seek(bitmap_offset)
        f.write(b"\x02")                                 # sector 1 is in the COW file
        f.seek(data_offset + 512)
        f.write(b"C" * 512)
        f.truncate(data_offset + size)
    with open_ubd(parse_ubd_option(f"ubd0={cow}")) as dev:
        assert isinstance(dev, CowDevice) and dev.size == size
        assert dev.read(0, 512) == back.read_bytes()[:512]
        assert dev.read(512, 512) == b"C" * 512
        dev.write(4096, b"W" * 10)
        assert dev.read(4090, 20) == back.read_bytes()[4090:4096] + b"W" * 10 + \
            back.read_bytes()[4106:4110]
    with open(cow, "rb") as f:                            # the bit, where UML looks for it
        f.seek(bitmap_offset + 1)
        assert f.read(1) == b"\x01"


def test_v2_rounding_bug_leaves_last_sector_without_bit(tmp_path):
    back = tmp_path / "b.img"
    back.write_bytes(b"x" * 37000)
    os.utime(back, (1700000000, 1700000000))
    header = decode_header(_v2(str(back), 37000))
    assert header.bitmap_len == 9 and header.covered_sectors == 72 and header.sectors == 73
    cow = tmp_path / "v2.cow"
    cow.write_bytes(_v2(str(back), 37000).ljust(header.file_size, b"\0"))
    with open_ubd(parse_ubd_option(f"ubd0={cow}")) as dev:
        assert dev.read(36864, 512) == b"x" * 136 + bytes(376)
        with pytest.raises(OSError) as exc:
            dev.write(36900, b"y")
        assert exc.value.errno == 5


def _cow_for(tmp_path, backing, data: bytes):
    cow = tmp_path / "bad.cow"
    cow.write_bytes(data)
    return parse_ubd_option(f"ubd0={cow},{backing}")


@pytest.mark.parametrize("corrupt,message", [
    (lambda raw: b"XXXX" + raw[4:], "not a COW file (bad magic"),
    (lambda raw: raw[:100], "short COW v3 header (100 of 4128 bytes)"),
    (lambda raw: raw[:6], "short COW header (6 bytes)"),
    (lambda raw: raw[:4] + struct.pack(">I", 7) + raw[8:], "unknown COW version 7"),
    (lambda raw: raw[:20] + struct.pack(">I", 12345) + raw[24:],
     "unsupported COW sector size 12345"),
    (lambda raw: raw[:24] + struct.pack(">I", 3000) + raw[28:], "absurd COW alignment 3000"),
    (lambda raw: raw[:28] + struct.pack(">I", 1) + raw[32:], "unsupported COW format 1"),
    (lambda raw: raw[:32] + b"a" * 4096, "not NUL-terminated"),
    (lambda raw: raw[:12288], "truncated (12288 bytes, the header needs 49288)"),
])
def test_corrupt_headers(tmp_path, backing, corrupt, message):
    good = tmp_path / "good.cow"
    make_cow(str(good), str(backing))
    spec = _cow_for(tmp_path, backing, corrupt(good.read_bytes()))
    with pytest.raises(BlockError) as exc:
        open_ubd(spec)
    line = str(exc.value)
    assert line.startswith(f"ubd0: COW file {spec.file}: ") and message in line, line
    assert "\n" not in line


def test_mtime_and_size_mismatch(tmp_path, backing):
    spec = parse_ubd_option(f"ubd0={tmp_path}/x.cow,{backing}")
    open_ubd(spec).close()                                   # creates the COW file
    os.utime(backing, (1700000123, 1700000123))
    with pytest.raises(BlockError) as exc:
        open_ubd(spec)
    assert str(exc.value) == (f"ubd0: COW file {spec.file}: mtime mismatch (1700000000 vs "
                              f"1700000123) of COW header vs backing file {backing}")
    with open(backing, "ab") as f:
        f.write(b"more")
    with pytest.raises(BlockError) as exc:
        open_ubd(spec)
    assert str(exc.value) == (f"ubd0: COW file {spec.file}: size mismatch (37000 vs "
                              f"37004) of COW header vs backing file {backing}")


def test_missing_backing_file(tmp_path, backing):
    spec = parse_ubd_option(f"ubd0={tmp_path}/x.cow,{backing}")
    open_ubd(spec).close()
    os.unlink(backing)
    with pytest.raises(BlockError) as exc:
        open_ubd(parse_ubd_option(f"ubd0={tmp_path}/x.cow"))
    assert str(exc.value) == f"ubd0: backing file {backing}: No such file or directory"
    assert exc.value.errno == 2
    with pytest.raises(BlockError, match="No such file or directory"):
        open_ubd(parse_ubd_option(f"ubd1={tmp_path}/y.cow,{tmp_path}/none"))
    assert not (tmp_path / "y.cow").exists()                 # no empty leftover


def test_switch_backing_file(tmp_path, backing):
    cow = tmp_path / "x.cow"
    with open_ubd(parse_ubd_option(f"ubd0={cow},{backing}")) as dev:
        dev.write(0, b"cow data")
    moved = tmp_path / "moved.img"
    shutil.copy2(backing, moved)                             # same size and mtime
    with open_ubd(parse_ubd_option(f"ubd0={cow},{moved}")) as dev:
        assert dev.backing_file == str(moved)
        assert dev.read(0, 8) == b"cow data"
    assert decode_header(cow.read_bytes()[:4136]).backing_file == str(moved)
    os.utime(backing, (1600000000, 1600000000))                # now it does not match
    with pytest.raises(BlockError, match="mtime mismatch"):
        open_ubd(parse_ubd_option(f"ubd0={cow},{backing}"))
    assert decode_header(cow.read_bytes()[:4136]).backing_file == str(moved)


def test_encode_refuses_overlong_path():
    with pytest.raises(BlockError, match="too long"):
        encode_header(CowHeader("/" + "a" * 4096, 0, 0))


def test_broken_single_file_cow_is_refused_not_used_raw(tmp_path):
    img = tmp_path / "odd.img"
    img.write_bytes(b"OOOM" + bytes(8188))                    # magic, version 0
    with pytest.raises(BlockError) as exc:
        open_ubd(parse_ubd_option(f"ubd2={img}"))
    assert str(exc.value) == (f"ubd2: COW file {img}: unknown COW version 0 "
                              "(use ubd2d= to open it as a raw image)")
    with open_ubd(parse_ubd_option(f"ubd2d={img}")) as dev:
        assert dev.read(0, 4) == b"OOOM"
