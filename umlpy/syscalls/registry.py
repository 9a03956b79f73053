"""The syscall table: for every number, how it is caught and who serves it.

Like gVisor's table, each entry carries a support level and a note, so the
compatibility page can be generated from it (`python -m umlpy.syscalls`).

Modes:
  native  runs on the host untouched (seccomp ALLOW): fd I/O, memory, time...
  fast    answered by the accelerator from the mirrored task table
  notif   served by a Python handler through seccomp user notification;
          the handler may install a host fd in the guest (ADDFD)
  trace   served by a Python handler at a ptrace seccomp stop; the handler may
          rewrite arguments, let the host run the call and fix up its result
  errno   refused with a fixed errno by the filter itself (never logged)
Anything not listed is refused with ENOSYS and logged once by name.
"""
from __future__ import annotations

import errno
from typing import Callable, Optional

from umlpy.host import seccomp as bpf
from umlpy.record import Record
from umlpy.syscalls.numbers import MAX_NR, NR, name_of

NATIVE, FAST, NOTIF, TRACE, ERRNO = "native", "fast", "notif", "trace", "errno"


class Entry(Record):
    __slots__ = _fields = ("nr", "name", "mode", "handler", "support", "note",
                           "native_if", "trap_if", "trap_bits", "err")

    def __init__(self, nr: int, name: str, mode: str, handler: Optional[Callable] = None,
                 support: str = "full", note: str = "", native_if: Optional[tuple] = None,
                 trap_if: Optional[tuple] = None, err: int = 0,
                 trap_bits: Optional[tuple] = None) -> None:
        self.nr = nr
        self.name = name
        self.mode = mode
        self.handler = handler
        self.support = support
        self.note = note
        # native only when args[arg] is one of `values` (else served by handler)
        self.native_if = native_if
        # trapped only when args[arg] is one of `values` (else native)
        self.trap_if = trap_if
        # trapped only when args[arg] has a bit of `mask` (else native)
        self.trap_bits = trap_bits
        self.err = err


TABLE: dict = {}


def _put(entry: Entry) -> None:
    if entry.nr in TABLE and TABLE[entry.nr].mode != entry.mode:
        raise ValueError(f"{entry.name} registered twice")
    TABLE[entry.nr] = entry


def native(*names: str, note: str = "") -> None:
    for n in names:
        _put(Entry(NR[n], n, NATIVE, note=note))


def fast(*names: str) -> None:
    for n in names:
        if NR[n] not in TABLE:      # keep a handler for when the accelerator does not answer
            _put(Entry(NR[n], n, FAST, note="answered by the accelerator"))


def refuse(name: str, err: int, note: str) -> None:
    _put(Entry(NR[name], name, ERRNO, err=err, support="none", note=note))


def syscall(*names: str, mode: str = NOTIF, support: str = "full", note: str = "",
            native_if: Optional[tuple] = None, trap_if: Optional[tuple] = None,
            trap_bits: Optional[tuple] = None):
    """Decorator: register a handler for one or more syscall names."""
    def wrap(fn: Callable) -> Callable:
        for n in names:
            _put(Entry(NR[n], n, mode, fn, support, note, native_if, trap_if,
                       trap_bits=trap_bits))
        return fn
    return wrap


def _handled_action(e: Entry):
    return bpf.NOTIF if e.mode in (NOTIF, FAST) else bpf.TRACE


def filter_actions() -> dict:
    """Map each number to its seccomp action."""
    out = {}
    for nr, e in TABLE.items():
        if e.mode == NATIVE:
            out[nr] = bpf.ALLOW
        elif e.mode == ERRNO:
            out[nr] = bpf.errno_ret(e.err)
        elif e.native_if is not None:
            arg, values = e.native_if
            out[nr] = bpf.ArgIn(arg, tuple(values), bpf.ALLOW, _handled_action(e))
        elif e.trap_if is not None:
            arg, values = e.trap_if
            out[nr] = bpf.ArgIn(arg, tuple(values), _handled_action(e), bpf.ALLOW)
        elif e.trap_bits is not None:
            arg, mask = e.trap_bits
            out[nr] = bpf.ArgBits(arg, mask, _handled_action(e), bpf.ALLOW)
        else:
            out[nr] = _handled_action(e)
    return out


def build_filter() -> bytes:
    # Unlisted numbers go to the kernel, which answers ENOSYS and logs the name once.
    return bpf.build_filter(filter_actions(), bpf.NOTIF, MAX_NR)


def lookup(nr: int) -> Optional[Entry]:
    return TABLE.get(nr)


# exit handlers for calls whose entry the accelerator let run (csrc/faststops.c)
EXIT_ONLY: dict = {}


def exit_only_handler(*names: str):
    """Decorator: fn(call, ret) fixes the result of these calls at their exit
    when their entry never reached Python."""
    def wrap(fn: Callable) -> Callable:
        for n in names:
            EXIT_ONLY[NR[n]] = fn
        return fn
    return wrap


def exit_only(nr: int) -> Optional[Callable]:
    return EXIT_ONLY.get(nr)


def describe(nr: int) -> str:
    e = TABLE.get(nr)
    return f"{name_of(nr)}: {e.mode if e else 'unimplemented'}"


ENOSYS = errno.ENOSYS
