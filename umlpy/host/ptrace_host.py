"""The host side of guest ptrace: requests on the host thread of a guest tracee.

The kernel (umlpy/kernel/ptrace_*.py) decides which guest task a guest tracer
may touch and passes its host tid here; nothing in this module checks that.
Every request runs on the kernel's tracing thread (the host tracer).
"""
from __future__ import annotations

import errno
import struct

from umlpy.host.tracer import HostError, Regs, ffi, lib

PTRACE_PEEKTEXT, PTRACE_PEEKUSER = 1, 3
PTRACE_POKETEXT, PTRACE_POKEUSER = 4, 6
PTRACE_CONT, PTRACE_SINGLESTEP = 7, 9
PTRACE_SETOPTIONS = 0x4200
PTRACE_GETREGSET, PTRACE_SETREGSET = 0x4204, 0x4205
PTRACE_INTERRUPT, PTRACE_LISTEN = 0x4207, 0x4208
PTRACE_GET_SYSCALL_INFO = 0x420E
PTRACE_SYSCALL = 24

ORIG_RAX_OFF, RAX_OFF = 15 * 8, 10 * 8
SYSCALL_INFO_SIZE = 88
REGSET_MAX = 4096           # larger than any x86-64 regset (XSTATE is ~2.7 KiB with AVX-512)

# PTRACE_GET_SYSCALL_INFO ops
OP_NONE, OP_ENTRY, OP_EXIT, OP_SECCOMP = 0, 1, 2, 3


def _raw(req: int, tid: int, addr: int = 0, data: int = 0) -> int:
    r = lib.uml_pt_raw(req, tid, addr & 0xFFFFFFFFFFFFFFFF, data & 0xFFFFFFFFFFFFFFFF)
    if r < 0:
        raise HostError(-r, f"ptrace {req:#x}: {errno.errorcode.get(-r, -r)}")
    return r


def _addr(buf) -> int:
    return int(ffi.cast("uintptr_t", buf))


def peek(tid: int, addr: int, user: bool = False) -> int:
    """A word of the tracee's memory (or of its struct user): EIO/EFAULT as the host says."""
    out = ffi.new("uint64_t *")
    _raw(PTRACE_PEEKUSER if user else PTRACE_PEEKTEXT, tid, addr, _addr(out))
    return out[0]


def poke(tid: int, addr: int, word: int, user: bool = False) -> None:
    """Write a word, even into read-only text (a breakpoint), as a tracer may."""
    _raw(PTRACE_POKEUSER if user else PTRACE_POKETEXT, tid, addr, word)


def get_regset(tid: int, kind: int, size: int) -> bytes:
    buf = ffi.new("char[]", REGSET_MAX)
    iov = ffi.new("uint64_t[2]", [_addr(buf), min(size, REGSET_MAX)])
    _raw(PTRACE_GETREGSET, tid, kind, _addr(iov))
    return ffi.unpack(buf, iov[1])


def set_regset(tid: int, kind: int, data: bytes) -> None:
    buf = ffi.from_buffer(data)
    iov = ffi.new("uint64_t[2]", [_addr(buf), len(data)])
    _raw(PTRACE_SETREGSET, tid, kind, _addr(iov))


def regs_bytes(regs: Regs) -> bytes:
    return bytes(ffi.buffer(regs._c))


REGS_SIZE = ffi.sizeof("struct user_regs_struct")


def regs_from_bytes(data: bytes) -> Regs:
    r = Regs()
    ffi.memmove(r._c, data, REGS_SIZE)
    return r


def syscall_info(tid: int) -> bytes:
    """PTRACE_GET_SYSCALL_INFO of the host stop (op, arch, ip, sp, then the op's data)."""
    buf = ffi.new("char[]", SYSCALL_INFO_SIZE)
    n = _raw(PTRACE_GET_SYSCALL_INFO, tid, SYSCALL_INFO_SIZE, _addr(buf))
    return ffi.unpack(buf, min(n, SYSCALL_INFO_SIZE))


def stop_op(tid: int) -> int:
    """Which kind of syscall stop the host tracee is in (OP_NONE for any other stop)."""
    try:
        return syscall_info(tid)[0]
    except HostError:
        return OP_NONE


def set_options(tid: int, options: int) -> None:
    _raw(PTRACE_SETOPTIONS, tid, 0, options)


def resume(tid: int, req: int, sig: int = 0) -> int:
    """PTRACE_CONT, _SYSCALL, _SINGLESTEP or _LISTEN; -errno rather than raising
    (the tracee may have been killed meanwhile)."""
    return lib.uml_pt_raw(req, tid, 0, sig)


def interrupt(tid: int) -> int:
    return lib.uml_pt_raw(PTRACE_INTERRUPT, tid, 0, 0)


def skip_and_resume(tid: int, retval: int, req: int) -> int:
    """At a seccomp stop: the call is not run and returns retval; resume with req."""
    r = lib.uml_pt_raw(PTRACE_POKEUSER, tid, ORIG_RAX_OFF, 0xFFFFFFFFFFFFFFFF)
    if r == 0:
        r = lib.uml_pt_raw(PTRACE_POKEUSER, tid, RAX_OFF, retval & 0xFFFFFFFFFFFFFFFF)
    return r if r < 0 else resume(tid, req)


def pack_word(word: int) -> bytes:
    return struct.pack("<Q", word & 0xFFFFFFFFFFFFFFFF)
