"""CRC32C (metadata_csum) and CRC16 (gdt_csum / uninit_bg).

ext4 stores the raw CRC32C register (no final inversion) and chains it as a
seed, so crc32c_raw(seed, data) is the kernel's ext4_chksum(). google-crc32c
gives the standard (inverted) CRC; inverting in and out converts.
"""
from __future__ import annotations

try:
    import google_crc32c as _gcrc

    def crc32c_raw(seed: int, data) -> int:
        return _gcrc.extend(seed ^ 0xFFFFFFFF, bytes(data)) ^ 0xFFFFFFFF
except ImportError:                       # slow fallback, good enough for small images
    def _table(poly: int) -> list:
        out = []
        for n in range(256):
            for _ in range(8):
                n = (n >> 1) ^ poly if n & 1 else n >> 1
            out.append(n)
        return out

    _T32 = _table(0x82F63B78)

    def crc32c_raw(seed: int, data) -> int:
        crc = seed
        for byte in bytes(data):
            crc = _T32[(crc ^ byte) & 0xFF] ^ (crc >> 8)
        return crc


def _table16() -> list:
    out = []
    for n in range(256):
        for _ in range(8):
            n = (n >> 1) ^ 0xA001 if n & 1 else n >> 1
        out.append(n)
    return out


_T16 = _table16()


def crc16(seed: int, data) -> int:
    """The reflected ANSI CRC16 (poly 0x8005) e2fsprogs uses for group descriptors."""
    crc = seed
    for byte in bytes(data):
        crc = _T16[(crc ^ byte) & 0xFF] ^ (crc >> 8)
    return crc & 0xFFFF
