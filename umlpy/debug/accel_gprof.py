"""gprof for the C accelerator: glibc's shared-object profile made a gmon.out.

glibc profiles one shared object of a running program when LD_PROFILE names
its SONAME (the accelerator's is umlpy_accel.so): call arcs into the object
and a PC histogram of its text, in a file like gmon.out but with version
0x1ffff, the histogram header aligned to 8 and the arcs in one table. glibc's
own reader (sprof) fails on Debian 12, so this turns the file into a plain
gmon.out that `gprof ACCEL.so gmon.out` reads: addresses there are offsets in
the object, which is what gprof expects of a shared object's symbols.
"""
from __future__ import annotations

import struct

GMON_VERSION, SHOBJ_VERSION = 1, 0x1FFFF
TAG_TIME_HIST, TAG_CG_ARC = 0, 1
_HDR = struct.Struct("<4sI12s")
_HIST = struct.Struct("<QQii15sc")      # low, high, bins, rate, dimen, abbrev
_ARCS = struct.Struct("<II")            # tag, number of arcs
_ARC = struct.Struct("<QQI")            # from, self, count (packed)
HIST_AT = 24                            # the tag byte at 20, then alignment


class ProfileError(ValueError):
    pass


def to_gmon(raw: bytes) -> bytes:
    """A gmon.out (version 1) of an LD_PROFILE file."""
    if len(raw) < HIST_AT + _HIST.size:
        raise ProfileError("too short for a shared-object profile")
    cookie, version, _spare = _HDR.unpack_from(raw, 0)
    if cookie != b"gmon" or version != SHOBJ_VERSION or raw[_HDR.size] != TAG_TIME_HIST:
        raise ProfileError("not a glibc shared-object profile (LD_PROFILE)")
    low, high, bins, rate, dimen, abbrev = _HIST.unpack_from(raw, HIST_AT)
    at = HIST_AT + _HIST.size
    if bins < 0 or at + 2 * bins + _ARCS.size > len(raw):
        raise ProfileError("histogram runs past the end of the file")
    counts = raw[at:at + 2 * bins]
    at += 2 * bins
    tag, narcs = _ARCS.unpack_from(raw, at)
    at += _ARCS.size
    if tag != TAG_CG_ARC or at + narcs * _ARC.size > len(raw):
        raise ProfileError("bad arc table")
    out = [_HDR.pack(b"gmon", GMON_VERSION, bytes(12)),
           bytes([TAG_TIME_HIST]), _HIST.pack(low, high, bins, rate, dimen, abbrev), counts]
    for i in range(narcs):
        frm, to, count = _ARC.unpack_from(raw, at + i * _ARC.size)
        if count:
            out += [bytes([TAG_CG_ARC]), _ARC.pack(frm + low, to + low, count)]
    return b"".join(out)
