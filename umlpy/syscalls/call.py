"""One trapped system call, as a handler sees it.

Handlers read like the man page: they take a Call, read its arguments, and
return the result (an int), an Fd to install, or PASS (let the host run the
call, possibly with rewritten arguments). Errors are raised as OSError(errno).
"""
from __future__ import annotations

import errno
import os
from typing import Callable, Optional

from umlpy.record import Record

AT_FDCWD = -100


class _Pass:
    def __repr__(self) -> str:
        return "PASS"


PASS = _Pass()


class Fd(Record):
    """A host descriptor to install in the guest at its lowest free number;
    `undo` runs when the guest cannot take it (EMFILE): Linux takes the
    number first, so what the call did must not stay."""
    __slots__ = _fields = ("host_fd", "cloexec", "undo")

    def __init__(self, host_fd: int, cloexec: bool = False,
                 undo: Optional[Callable[[], None]] = None) -> None:
        self.host_fd = host_fd
        self.cloexec = cloexec
        self.undo = undo


class Deferred:
    """A result that takes long to come (a FIFO open waiting for its other end):
    `work()` runs on a kernel worker thread and returns a host fd to install
    (or raises OSError); the guest waits meanwhile, the kernel does not."""

    def __init__(self, work: Callable[[], int], cloexec: bool = False,
                 value: bool = False, cancel: Optional[Callable[[], None]] = None) -> None:
        self.work = work
        self.cloexec = cloexec
        self.value = value      # work() returns the call's result, not an fd to install
        # makes work() return soon once nobody waits for it (its caller died);
        # None when work() watches for that itself
        self.cancel = cancel


def s32(v: int) -> int:
    """An argument register as a C int."""
    v &= 0xFFFFFFFF
    return v - (1 << 32) if v & 0x80000000 else v


def s64(v: int) -> int:
    v &= 0xFFFFFFFFFFFFFFFF
    return v - (1 << 64) if v & (1 << 63) else v


class Call:
    __slots__ = ("kernel", "task", "nr", "args", "notif_id", "mem", "regs",
                 "exit_handler", "orig_args", "traced", "sp", "dir_stat")

    def __init__(self, kernel, task, nr: int, args: tuple, mem, notif_id: int = 0,
                 traced: bool = False) -> None:
        self.kernel = kernel
        self.task = task
        self.nr = nr
        self.args = list(args)
        self.mem = mem
        self.notif_id = notif_id
        self.traced = traced
        self.regs = None
        self.exit_handler: Optional[Callable] = None
        self.orig_args: Optional[list] = None
        self.sp = 0                     # stack pointer at a ptrace stop
        self.dir_stat = None            # host stat of the dirfd a walk started from (statcache)

    # ---- arguments ----
    def int(self, i: int) -> int:
        return s32(self.args[i])

    def long(self, i: int) -> int:
        return s64(self.args[i])

    def ptr(self, i: int) -> int:
        return self.args[i] & 0xFFFFFFFFFFFFFFFF

    def fd(self, i: int) -> int:
        return s32(self.args[i])

    def owner(self, i: int) -> int:
        """A uid_t/gid_t argument of chown: 32 bits, (uid_t)-1 means "leave it"."""
        value = self.args[i] & 0xFFFFFFFF
        return -1 if value == 0xFFFFFFFF else value

    def bytes_arg(self, i: int, max_len: int = 4096) -> bytes:
        return self.mem.read_str(self.ptr(i), max_len)

    def path(self, i: int) -> str:
        """A path argument: EFAULT for a bad pointer, ENAMETOOLONG past PATH_MAX."""
        raw = self.mem.read_str(self.ptr(i), 4095)
        return os.fsdecode(raw)

    def path_or_none(self, i: int) -> Optional[str]:
        return None if self.ptr(i) == 0 else self.path(i)

    # ---- results written to guest memory ----
    def write(self, addr: int, data: bytes) -> None:
        if addr == 0:
            raise OSError(errno.EFAULT, "bad address")
        self.mem.write(addr, data)

    # ---- ptrace-stop only: rewrite and observe ----
    def set_arg(self, i: int, value: int) -> None:
        """Rewrite an argument register; the original is restored at syscall
        exit, since the x86-64 syscall ABI preserves argument registers."""
        if not self.traced:
            raise RuntimeError("set_arg outside a ptrace stop")
        if self.orig_args is None:
            self.orig_args = list(self.args)
        self.args[i] = value & 0xFFFFFFFFFFFFFFFF

    def set_nr(self, nr: int) -> None:
        """Turn the call into another syscall (e.g. execveat into execve)."""
        if not self.traced:
            raise RuntimeError("set_nr outside a ptrace stop")
        if self.orig_args is None:
            self.orig_args = list(self.args)
        self.nr = nr

    def on_exit(self, fn: Callable) -> None:
        """fn(call, ret) -> new return value or None, called at syscall exit."""
        if not self.traced:
            raise RuntimeError("on_exit outside a ptrace stop")
        self.exit_handler = fn
