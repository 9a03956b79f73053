"""Little-endian fields over a raw byte buffer.

On-disk structures keep their raw bytes and expose fields through
descriptors, so fields we do not know about survive a read-modify-write.
"""
from __future__ import annotations

import struct


class Field:
    """One little-endian integer (or byte string, fmt 'Ns') at a fixed offset."""

    def __init__(self, offset: int, fmt: str) -> None:
        self.offset = offset
        self.codec = struct.Struct("<" + fmt)
        self.end = offset + self.codec.size

    def __get__(self, obj, owner=None):
        if obj is None:
            return self
        return self.codec.unpack_from(obj.buf, self.offset)[0]

    def __set__(self, obj, value) -> None:
        self.codec.pack_into(obj.buf, self.offset, value)


class SplitField:
    """A value stored as lo and hi halves; the hi half only counts when present(obj)."""

    def __init__(self, lo: Field, hi: Field, present=lambda obj: True) -> None:
        self.lo, self.hi, self.present = lo, hi, present
        self.shift = lo.codec.size * 8

    def __get__(self, obj, owner=None):
        if obj is None:
            return self
        value = self.lo.__get__(obj)
        if self.present(obj):
            value |= self.hi.__get__(obj) << self.shift
        return value

    def __set__(self, obj, value: int) -> None:
        self.lo.__set__(obj, value & ((1 << self.shift) - 1))
        if self.present(obj):
            self.hi.__set__(obj, value >> self.shift)
        elif value >> self.shift:
            raise OverflowError("value needs the high half of a field this layout lacks")


class RawStruct:
    """Base for structures kept as a bytearray; subclasses declare Fields."""

    SIZE = 0

    def __init__(self, buf=None) -> None:
        self.buf = bytearray(buf) if buf is not None else bytearray(self.SIZE)

    def zero_range(self, start: int, end: int) -> None:
        self.buf[start:end] = bytes(end - start)
