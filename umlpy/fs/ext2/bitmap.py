"""Bit operations on bitmap blocks (bit n of a group = byte n//8, bit n%8).

Searches go through Python integers: one conversion of a 4 KiB bitmap costs
microseconds and then finding a free run is a handful of big-int operations.
"""
from __future__ import annotations

from typing import Optional, Tuple


def find_free_run(bitmap, start: int, limit: int, want: int) -> Optional[Tuple[int, int]]:
    """First clear bit at or after start (below limit) and the length of the clear
    run there, capped at want; None when every bit in [start, limit) is set."""
    if start >= limit:
        return None
    used = int.from_bytes(bitmap[:(limit + 7) // 8], "little")
    free = (~used & ((1 << limit) - 1)) >> start
    if not free:
        return None
    low = (free & -free).bit_length() - 1
    free >>= low
    run = (free ^ (free + 1)).bit_length() - 1        # count of trailing ones
    return start + low, min(run, want)


def _span(start: int, count: int) -> Tuple[int, int, int]:
    first = start >> 3
    last = (start + count - 1) >> 3
    mask = ((1 << count) - 1) << (start - first * 8)
    return first, last + 1, mask


def count_set(bitmap, start: int, count: int) -> int:
    first, end, mask = _span(start, count)
    return (int.from_bytes(bitmap[first:end], "little") & mask).bit_count()


def set_bits(bitmap: bytearray, start: int, count: int, value: bool) -> None:
    if count <= 0:
        return
    first, end, mask = _span(start, count)
    chunk = int.from_bytes(bitmap[first:end], "little")
    chunk = chunk | mask if value else chunk & ~mask
    bitmap[first:end] = chunk.to_bytes(end - first, "little")


def test_bit(bitmap, n: int) -> bool:
    return bool(bitmap[n >> 3] & (1 << (n & 7)))


def set_padding(bitmap: bytearray, valid_bits: int) -> None:
    """Mark the bits past the group's end as used, as mke2fs does."""
    total = len(bitmap) * 8
    if valid_bits < total:
        set_bits(bitmap, valid_bits, total - valid_bits, True)
