"""x86-64 registers for gdb: the target description and the 'g' packet layout."""
from __future__ import annotations

from typing import List, Optional, Tuple

GPRS = ("rax", "rbx", "rcx", "rdx", "rsi", "rdi", "rbp", "rsp",
        "r8", "r9", "r10", "r11", "r12", "r13", "r14", "r15")
SEGS = ("cs", "ss", "ds", "es", "fs", "gs")
FPCTL = ("fctrl", "fstat", "ftag", "fiseg", "fioff", "foseg", "fooff", "fop")

# (name, bytes, source in user_regs_struct or None when not read, feature, xml type)
LAYOUT: List[Tuple[str, int, Optional[str], str, str]] = (
    [(r, 8, r, "core", {"rbp": "data_ptr", "rsp": "data_ptr"}.get(r, "int64")) for r in GPRS]
    + [("rip", 8, "rip", "core", "code_ptr"), ("eflags", 4, "eflags", "core", "int32")]
    + [(s, 4, s, "core", "int32") for s in SEGS]
    + [(f"st{i}", 10, None, "core", "i387_ext") for i in range(8)]
    + [(f, 4, None, "core", "int") for f in FPCTL]
    + [(f"xmm{i}", 16, None, "sse", "uint128") for i in range(16)]
    + [("mxcsr", 4, None, "sse", "int")]
    + [("orig_rax", 8, "orig_rax", "linux", "int")]
    + [("fs_base", 8, "fs_base", "segments", "int"), ("gs_base", 8, "gs_base", "segments", "int")]
)

FEATURES = {"core": "org.gnu.gdb.i386.core", "sse": "org.gnu.gdb.i386.sse",
            "linux": "org.gnu.gdb.i386.linux", "segments": "org.gnu.gdb.i386.segments"}


def target_xml() -> str:
    parts = ['<?xml version="1.0"?>\n<!DOCTYPE target SYSTEM "gdb-target.dtd">\n<target>\n'
             "<architecture>i386:x86-64</architecture>\n<osabi>GNU/Linux</osabi>\n"]
    for key, fname in FEATURES.items():
        parts.append(f'<feature name="{fname}">\n')
        for n, (name, size, _, feat, typ) in enumerate(LAYOUT):
            if feat == key:
                group = ' group="float"' if name in FPCTL else ""
                parts.append(f'  <reg name="{name}" bitsize="{size * 8}" type="{typ}" '
                             f'regnum="{n}"{group}/>\n')
        parts.append("</feature>\n")
    parts.append("</target>\n")
    return "".join(parts)


def encode(regs) -> bytes:
    """The 'g' reply: every register, unread ones marked unavailable ('xx')."""
    out = bytearray()
    for _, size, src, _, _ in LAYOUT:
        if src is None:
            out += b"xx" * size
        else:
            out += (getattr(regs, src) & ((1 << (8 * size)) - 1)).to_bytes(size, "little").hex().encode()
    return bytes(out)


def encode_one(regs, n: int) -> bytes:
    if not 0 <= n < len(LAYOUT):
        return b"E00"
    _, size, src, _, _ = LAYOUT[n]
    if src is None:
        return b"xx" * size
    return (getattr(regs, src) & ((1 << (8 * size)) - 1)).to_bytes(size, "little").hex().encode()


def set_one(regs, n: int, data: bytes) -> bool:
    """Write register n from its raw bytes; False when it cannot be written."""
    if not 0 <= n < len(LAYOUT):
        return False
    _, size, src, _, _ = LAYOUT[n]
    if src is None or len(data) != size:
        return src is None          # FP writes are accepted and ignored
    value = int.from_bytes(data, "little")
    if size == 4:                   # segment and flag registers keep their upper half
        value |= getattr(regs, src) & ~0xFFFFFFFF
    setattr(regs, src, value)
    return True


def decode_all(regs, hexdata: bytes) -> None:
    pos = 0
    for n, (_, size, _, _, _) in enumerate(LAYOUT):
        chunk = hexdata[pos:pos + 2 * size]
        pos += 2 * size
        if len(chunk) == 2 * size and b"x" not in chunk:
            set_one(regs, n, bytes.fromhex(chunk.decode()))
