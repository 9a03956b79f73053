"""The LD_PROFILE file of the accelerator turned into a gmon.out gprof reads."""
import shutil
import struct
import subprocess

import pytest

from umlpy.debug import accel_gprof as ag


def shobj_profile(arcs, bins=4, low=0x3000, high=0x3010, capacity=8) -> bytes:
    """A file laid out as glibc's shared-object profiler writes it."""
    head = struct.pack("<4sI12s", b"gmon", ag.SHOBJ_VERSION, bytes(12)) + bytes([0]) + bytes(3)
    hist = struct.pack("<QQii15sc", low, high, bins, 100, b"seconds", b"s")
    counts = b"".join(struct.pack("<H", i & 0xFFFF) for i in range(bins))
    table = struct.pack("<II", 1, len(arcs)) + b"".join(struct.pack("<QQI", *a) for a in arcs)
    return head + hist + counts + table + bytes(20 * (capacity - len(arcs)))


def test_histogram_kept_and_arcs_made_absolute():
    out = ag.to_gmon(shobj_profile([(0x10, 0x20, 5), (0x30, 0x40, 0)]))
    assert out[:8] == b"gmon" + struct.pack("<I", ag.GMON_VERSION)
    at = 20
    assert out[at] == ag.TAG_TIME_HIST
    low, high, bins, _rate, _d, _a = struct.unpack_from("<QQii15sc", out, at + 1)
    assert (low, high, bins) == (0x3000, 0x3010, 4)
    at += 1 + 40
    assert struct.unpack_from("<4H", out, at) == (0, 1, 2, 3)
    at += 8
    # one arc (the empty one is dropped), offsets made absolute
    assert out[at] == ag.TAG_CG_ARC
    assert struct.unpack_from("<QQI", out, at + 1) == (0x3010, 0x3020, 5)
    assert len(out) == at + 21


@pytest.mark.parametrize("raw", [b"", b"gmon" + bytes(100),
                                 shobj_profile([])[:50],
                                 shobj_profile([(1, 2, 3)], bins=100000)[:200]])
def test_malformed_profiles_are_refused(raw):
    with pytest.raises(ag.ProfileError):
        ag.to_gmon(raw)


def test_gprof_reads_the_result(tmp_path):
    if shutil.which("gprof") is None:
        pytest.skip("gprof missing (binutils)")
    import umlpy.host._accel as accel
    (tmp_path / "gmon.out").write_bytes(ag.to_gmon(shobj_profile([(0x10, 0x20, 5)])))
    res = subprocess.run(["gprof", "-b", accel.__file__, str(tmp_path / "gmon.out")],
                         capture_output=True, text=True, timeout=60)
    assert res.returncode == 0, res.stderr
    assert "Flat profile" in res.stdout
