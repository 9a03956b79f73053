"""A bounded write-back page cache over any block device.

Pages of 4 KiB in LRU order; a write fills or patches pages in memory and marks them
dirty; evicting a dirty page writes it to the device below; flush() writes every dirty
page (contiguous pages in one write, in offset order) and then flushes the device
below, which keeps that device's own ordering (for COW: data, then bitmap).

Measured here (64 MiB of sequential 4 KiB I/O, 2-vCPU VM, files in the host page
cache; MB/s write / read): plain file 1550 / 2250-2550; plain + cache 600 / 550-760;
COW 580-600 / 1540-1600; COW + 4 MiB cache 390-400 / 550-680; COW + 128 MiB cache
(everything fits) 790-900 / 1170-1260 but a 0.5 s flush. 512-byte COW writes: 113 with
or without it. The host page cache already caches the image and a pread costs about
what a dict lookup plus copy costs in Python, so this layer does not pay: it stays
small and open_ubd() leaves it off unless asked (cache_pages=).
"""
from __future__ import annotations

import threading
from collections import OrderedDict
from typing import List, Tuple

from .device import BlockDevice, DeviceBase

PAGE_SIZE = 4096


class CachedDevice(DeviceBase):
    def __init__(self, inner: BlockDevice, page_size: int = PAGE_SIZE,
                 max_pages: int = 1024) -> None:
        if page_size <= 0 or max_pages <= 0:
            raise ValueError("page_size and max_pages must be positive")
        self.inner = inner
        self.name = getattr(inner, "name", "cache")
        self.size = inner.size
        self.readonly = inner.readonly
        self.page_size = page_size
        self.max_pages = max_pages
        self._pages: "OrderedDict[int, bytearray]" = OrderedDict()
        self._dirty: set = set()
        self._lock = threading.RLock()

    def _page_len(self, page: int) -> int:
        return min(self.page_size, self.size - page * self.page_size)

    def _load(self, first: int, count: int) -> None:
        """Bring pages [first, first + count) in with one read of the device below."""
        ps = self.page_size
        start = first * ps
        data = self.inner.read(start, min(count * ps, self.size - start))
        for i in range(count):
            self._pages[first + i] = bytearray(data[i * ps:(i + 1) * ps])
        self._evict()

    def _get(self, first: int, last: int) -> List[bytearray]:
        """Pages first..last, loading the missing ones in runs."""
        pages = self._pages
        missing_from = None
        for page in range(first, last + 2):
            absent = page <= last and page not in pages
            if absent and missing_from is None:
                missing_from = page
            elif not absent and missing_from is not None:
                self._load(missing_from, page - missing_from)
                missing_from = None
        out = []
        for page in range(first, last + 1):
            buf = pages.get(page)
            if buf is None:                     # evicted by a load bigger than the cache
                self._load(page, 1)
                buf = pages[page]
            pages.move_to_end(page)
            out.append(buf)
        return out

    def _evict(self) -> None:
        while len(self._pages) > self.max_pages:
            page, buf = self._pages.popitem(last=False)
            if page in self._dirty:
                self._dirty.discard(page)
                self.inner.write(page * self.page_size, bytes(buf))

    def read(self, offset: int, length: int) -> bytes:
        self._check_read(offset, length)
        if not length:
            return b""
        ps, end = self.page_size, offset + length
        first, last = offset // ps, (end - 1) // ps
        with self._lock:
            if last - first >= self.max_pages:  # bigger than the cache: go around it
                self._write_back()
                return self.inner.read(offset, length)
            pages = self._get(first, last)
            if first == last:
                return bytes(pages[0][offset - first * ps:end - first * ps])
            joined = b"".join(pages)
        return joined[offset - first * ps:end - first * ps]

    def write(self, offset: int, data: bytes) -> None:
        self._check_write(offset, len(data))
        if not data:
            return
        ps, end, view = self.page_size, offset + len(data), memoryview(data)
        with self._lock:
            pos = offset
            while pos < end:
                page = pos // ps
                lo = pos - page * ps
                hi = min(self._page_len(page), end - page * ps)
                chunk = view[pos - offset:pos - offset + hi - lo]
                if lo == 0 and hi == self._page_len(page):
                    self._pages[page] = bytearray(chunk)
                    self._pages.move_to_end(page)
                else:
                    self._get(page, page)[0][lo:hi] = chunk
                self._dirty.add(page)
                pos += hi - lo
                self._evict()

    def _write_back(self) -> None:
        runs: List[Tuple[int, List[bytes]]] = []
        for page in sorted(self._dirty):
            if runs and runs[-1][0] + len(runs[-1][1]) == page:
                runs[-1][1].append(bytes(self._pages[page]))
            else:
                runs.append((page, [bytes(self._pages[page])]))
        for page, bufs in runs:
            self.inner.write(page * self.page_size, b"".join(bufs))
        self._dirty.clear()

    def flush(self) -> None:
        with self._lock:
            self._write_back()
            self.inner.flush()

    def close(self) -> None:
        with self._lock:
            try:
                self._write_back()
            finally:
                self._pages.clear()
                self.inner.close()
