"""The COW sector bitmap in memory: bit N%8 of byte N//8 (LSB first) set means sector N
lives in the COW file. Tracks which 4 KiB pages of the bitmap changed since they were
last written out, so a flush writes only those."""
from __future__ import annotations

from typing import Iterator, List, Optional, Tuple

BITMAP_PAGE = 4096


class SectorBitmap:
    def __init__(self, data: bytes, sectors: int) -> None:
        # sized for every sector even when the file's bitmap is shorter (v1/v2)
        self._bits = bytearray(data[:-(-sectors // 8)].ljust(-(-sectors // 8), b"\0"))
        self.sectors = sectors
        self._dirty_pages: set = set()

    def test(self, sector: int) -> bool:
        return bool(self._bits[sector >> 3] >> (sector & 7) & 1)

    def count(self) -> int:
        """How many sectors are in the COW file."""
        return sum(bin(b).count("1") for b in self._bits)

    def set_range(self, first: int, count: int) -> bool:
        """Mark sectors [first, first + count) as in the COW file; True if any was not."""
        bits, end, n, changed = self._bits, first + count, first, False
        while n < end and n & 7:
            if not bits[n >> 3] >> (n & 7) & 1:
                bits[n >> 3] |= 1 << (n & 7)
                changed = True
            n += 1
        full = (end - n) >> 3
        if full:
            lo = n >> 3
            if bits.count(0xFF, lo, lo + full) != full:
                bits[lo:lo + full] = b"\xff" * full
                changed = True
            n += full * 8
        while n < end:
            if not bits[n >> 3] >> (n & 7) & 1:
                bits[n >> 3] |= 1 << (n & 7)
                changed = True
            n += 1
        if changed:
            self._dirty_pages.update(range((first >> 3) // BITMAP_PAGE,
                                           ((end - 1) >> 3) // BITMAP_PAGE + 1))
        return changed

    def uniform(self, first: int, count: int) -> Optional[bool]:
        """True if every sector of the range is in the COW file, False if none is,
        None if mixed (or not whole bytes of the bitmap: the caller then uses runs)."""
        if first & 7 or count & 7:
            return None
        lo, hi = first >> 3, (first + count) >> 3
        ones = self._bits.count(0xFF, lo, hi)
        if ones == hi - lo:
            return True
        if not ones and self._bits.count(0, lo, hi) == hi - lo:
            return False
        return None

    def runs(self, first: int, count: int) -> Iterator[Tuple[int, int, bool]]:
        """(start, length, in_cow) for maximal runs of equal bits in the range."""
        bits, end, n = self._bits, first + count, first
        while n < end:
            state = bits[n >> 3] >> (n & 7) & 1
            whole = 0xFF if state else 0
            m = n + 1
            while m < end:
                if not m & 7 and m + 8 <= end and bits[m >> 3] == whole:
                    m += 8                      # a whole byte of the same state
                elif bits[m >> 3] >> (m & 7) & 1 == state:
                    m += 1
                else:
                    break
            yield n, m - n, bool(state)
            n = m

    @property
    def dirty(self) -> bool:
        return bool(self._dirty_pages)

    def dirty_extents(self, limit: int) -> List[Tuple[int, bytes]]:
        """(byte offset, bytes) of the changed pages, contiguous pages joined, clipped
        to the first `limit` bytes (the part the file holds)."""
        extents: List[Tuple[int, bytes]] = []
        for page in sorted(self._dirty_pages):
            lo = page * BITMAP_PAGE
            hi = min(lo + BITMAP_PAGE, limit)
            if lo >= hi:
                continue
            if extents and extents[-1][0] + len(extents[-1][1]) == lo:
                start, prev = extents.pop()
                extents.append((start, prev + bytes(self._bits[lo:hi])))
            else:
                extents.append((lo, bytes(self._bits[lo:hi])))
        return extents

    def clear_dirty(self) -> None:
        self._dirty_pages.clear()
