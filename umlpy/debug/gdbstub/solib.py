"""Shared libraries for gdb: the process's auxv and its dynamic linker's list
(qXfer:auxv:read, qXfer:libraries-svr4:read).

The list is walked in guest memory the way a debugger does: AT_PHDR gives
the program headers, PT_DYNAMIC its dynamic section, DT_DEBUG the r_debug
the dynamic linker fills, r_map the chain of link_maps. Every pointer comes
from the guest, so each read is bounded and may fail (an empty list then).

One name needs translating: exec hands the host a copy of the program whose
PT_INTERP names the kernel's copy of ld.so (a /proc/<pid>/fd/<n> host path),
and ld.so's link_map carries that name. The entry loaded at AT_BASE (ld.so)
is given the program's own PT_INTERP instead, a guest path.
"""
from __future__ import annotations

import os
import struct
from typing import Callable, Dict, List, Optional, Tuple
from xml.sax.saxutils import quoteattr

AT_PHDR, AT_PHENT, AT_PHNUM, AT_BASE = 3, 4, 5, 7
PT_DYNAMIC, PT_PHDR = 2, 6
DT_NULL, DT_DEBUG = 0, 21
PHDR = struct.Struct("<IIQQQQQQ")
DYN = struct.Struct("<qQ")
MAX_DYN = 1024              # entries of a dynamic section we look at
MAX_LIBS = 4096             # link_maps followed before giving up (a guest may loop them)
MAX_NAME = 4096

Read = Callable[[int, int], bytes]      # (address, length) -> bytes, short or OSError


def auxv_dict(raw: bytes) -> Dict[int, int]:
    out: Dict[int, int] = {}
    for i in range(0, len(raw) - 15, 16):
        key, val = struct.unpack_from("<QQ", raw, i)
        if key == 0:
            break
        out.setdefault(key, val)
    return out


def _u64(read: Read, addr: int) -> int:
    data = read(addr, 8)
    if len(data) != 8:
        raise OSError("short read")
    return struct.unpack("<Q", data)[0]


def _string(read: Read, addr: int) -> bytes:
    out = b""
    while len(out) < MAX_NAME:
        chunk = read(addr + len(out), 256)
        if not chunk:
            break
        end = chunk.find(b"\0")
        if end >= 0:
            return out + chunk[:end]
        out += chunk
    return out


def r_debug_address(read: Read, auxv: Dict[int, int]) -> int:
    """The program's r_debug (0 when static, or before ld.so filled DT_DEBUG)."""
    phdr, phnum = auxv.get(AT_PHDR, 0), min(auxv.get(AT_PHNUM, 0), 256)
    if auxv.get(AT_PHENT, PHDR.size) != PHDR.size or not phdr:
        return 0
    headers = read(phdr, phnum * PHDR.size)
    progs = [PHDR.unpack_from(headers, i * PHDR.size) for i in range(len(headers) // PHDR.size)]
    bias = next((phdr - p[3] for p in progs if p[0] == PT_PHDR), None)
    dyn = next((p for p in progs if p[0] == PT_DYNAMIC), None)
    if bias is None or dyn is None:
        return 0
    table = read(bias + dyn[3], min(dyn[5], MAX_DYN * DYN.size))
    for i in range(len(table) // DYN.size):
        tag, val = DYN.unpack_from(table, i * DYN.size)
        if tag == DT_NULL:
            break
        if tag == DT_DEBUG:
            return val
    return 0


def link_maps(read: Read, r_debug: int) -> List[Tuple[int, bytes, int, int]]:
    """(lm, name, l_addr, l_ld) for each link_map, the program's first."""
    out, seen = [], set()
    lm = _u64(read, r_debug + 8)                # r_map
    while lm and lm not in seen and len(out) < MAX_LIBS:
        seen.add(lm)
        l_addr, l_name, l_ld, l_next = struct.unpack("<QQQQ", _exact(read, lm, 32))
        out.append((lm, _string(read, l_name) if l_name else b"", l_addr, l_ld))
        lm = l_next
    return out


def _exact(read: Read, addr: int, n: int) -> bytes:
    data = read(addr, n)
    if len(data) != n:
        raise OSError("short read")
    return data


def vdso_range(maps: bytes) -> Tuple[int, int]:
    """[start, end) of the [vdso] mapping in a /proc/PID/maps text, (0, 0) if none."""
    for line in maps.splitlines():
        if line.endswith(b"[vdso]"):
            lo, _, hi = line.split(b" ", 1)[0].partition(b"-")
            return int(lo, 16), int(hi, 16)
    return 0, 0


def library_list(read: Read, auxv: Dict[int, int], interp: Optional[bytes] = None,
                 vdso: Tuple[int, int] = (0, 0)) -> bytes:
    """The qXfer:libraries-svr4 document; an empty list when it cannot be walked.
    interp: ld.so's name for gdb. The vDSO is left out (gdb reads it from memory)."""
    try:
        r_debug = r_debug_address(read, auxv)
        maps = link_maps(read, r_debug) if r_debug else []
    except (OSError, OverflowError, struct.error):     # guest pointers: anything goes
        maps = []
    if not maps:
        return b'<library-list-svr4 version="1.0"/>'
    parts = ['<library-list-svr4 version="1.0" main-lm="0x%x">' % maps[0][0]]
    for lm, name, l_addr, l_ld in maps[1:]:
        if not name or vdso[0] <= l_ld < vdso[1]:
            continue
        if interp and l_addr == auxv.get(AT_BASE):
            name = interp
        text = os.fsdecode(name)
        parts.append('<library name=%s lm="0x%x" l_addr="0x%x" l_ld="0x%x" lmid="0x0"/>'
                     % (quoteattr(text), lm, l_addr, l_ld))
    parts.append("</library-list-svr4>")
    return "".join(parts).encode("utf-8", "surrogateescape")


def guest_interp(group) -> Optional[bytes]:
    """The PT_INTERP of the program's file, as the guest has it."""
    from umlpy.kernel.loader import parse_elf
    try:
        fd = group.exe_path.inode.open(os.O_RDONLY)
    except (OSError, AttributeError):
        return None
    try:
        return parse_elf(os.pread(fd, 1 << 16, 0)).interp
    except OSError:
        return None
    finally:
        os.close(fd)


def for_process(group) -> bytes:
    """The library list of a guest process (a ThreadGroup), names as the guest has them."""
    from umlpy.host import procinfo
    from umlpy.host.tracer import ProcMem
    auxv = auxv_dict(procinfo.read_proc_file(group.host_tgid, "auxv"))
    vdso = vdso_range(procinfo.read_proc_file(group.host_tgid, "maps"))
    return library_list(ProcMem(group.host_tgid).read, auxv, guest_interp(group), vdso)
