"""`--trace`: an strace-format log of the guest's syscalls, in guest pids.

In trace mode the filter sends every native syscall to a ptrace seccomp stop
(the kernel lets the host run it and stops again at its exit to learn the
result) and the accelerator's fast path is off, so every call is seen once.
The kernel calls enter() when a call arrives and done() when it completes;
nothing here is reached without --trace or --stats.
"""
from __future__ import annotations

import errno
import os
import struct
import threading
import time
from typing import Dict, Iterable, Optional, Set, TextIO

from umlpy.debug import argfmt
from umlpy.debug.stats import SyscallStats
from umlpy.host import seccomp as bpf
from umlpy.syscalls import registry
from umlpy.syscalls.call import PASS
from umlpy.syscalls.numbers import MAX_NR, NAMES, NR, name_of

SECCOMP_SET_MODE_FILTER = 1
SYSCALL_INSN_LEN = 2        # `syscall` is 0f 05
RED_ZONE = 128

# strace's classes for -e trace=%class (a useful subset)
CLASSES = {
    "process": {"clone", "clone3", "fork", "vfork", "execve", "execveat", "exit", "exit_group",
                "wait4", "waitid", "kill", "tkill", "tgkill"},
    "signal": {"rt_sigaction", "rt_sigprocmask", "rt_sigreturn", "rt_sigsuspend", "rt_sigpending",
               "rt_sigtimedwait", "rt_sigqueueinfo", "kill", "tkill", "tgkill", "sigaltstack",
               "pause", "signalfd", "signalfd4"},
    "memory": {"brk", "mmap", "munmap", "mprotect", "mremap", "madvise", "msync", "mlock",
               "munlock", "mincore"},
    "network": {"socket", "socketpair", "bind", "connect", "listen", "accept", "accept4",
                "sendto", "recvfrom", "sendmsg", "recvmsg", "shutdown", "getsockname",
                "getpeername", "setsockopt", "getsockopt", "sendmmsg", "recvmmsg"},
}


def _file_calls() -> Set[str]:
    out = set()
    for name in NR:
        proto = argfmt.prototype(name)
        if proto and any(p in argfmt.FILENAME_ARGUMENTS or p == "pathname" for _, p in proto[1]):
            out.add(name)
    return out


def parse_filter(spec: str) -> Set[int]:
    """`-e trace=` syntax: names and %classes, comma separated, '!' in front negates."""
    negate = spec.startswith("!")
    names: Set[str] = set()
    for word in filter(None, spec.lstrip("!").split(",")):
        if word.startswith("%"):
            cls = word[1:]
            if cls == "file":
                names |= _file_calls()
            elif cls in CLASSES:
                names |= CLASSES[cls]
            else:
                raise ValueError(f"unknown syscall class {word!r}")
        elif word in NR:
            names.add(word)
        elif word != "all":
            raise ValueError(f"unknown syscall {word!r}")
        else:
            names |= set(NR)
    nrs = {NR[n] for n in names if n in NR}
    return set(NAMES) - nrs if negate else nrs


def trace_filter(only: Optional[Set[int]] = None) -> bytes:
    """A second seccomp filter stacked on the guest's: native calls (those in
    `only`) become ptrace stops, everything else is left to the first filter
    (ALLOW has the lowest precedence, so notif, trace and errno verdicts win)."""
    acts = {}
    for nr, e in registry.TABLE.items():
        if only is not None and nr not in only:
            continue
        if e.mode == registry.NATIVE:
            acts[nr] = bpf.TRACE
        elif e.native_if is not None:
            acts[nr] = bpf.ArgIn(e.native_if[0], tuple(e.native_if[1]), bpf.TRACE, bpf.ALLOW)
        elif e.trap_if is not None:
            acts[nr] = bpf.ArgIn(e.trap_if[0], tuple(e.trap_if[1]), bpf.ALLOW, bpf.TRACE)
        elif e.trap_bits is not None:
            acts[nr] = bpf.ArgBits(e.trap_bits[0], e.trap_bits[1], bpf.ALLOW, bpf.TRACE)
    return bpf.build_filter(acts, bpf.ALLOW, MAX_NR)


class _Arm:
    """The first process gets the trace filter by an injected seccomp(2): at its
    first syscall stop (the execve that starts the guest) the call becomes
    seccomp(SET_MODE_FILTER, 0, prog); at its exit the registers are put back
    one instruction earlier, so the execve runs again, now under both filters.
    (The spawn handshake runs before the tracer attaches, so the filter cannot
    be there from the start.)"""

    def __init__(self, tracer, prog: bytes) -> None:
        self.tracer = tracer
        self.prog = prog
        self.saved = None

    def inject(self, call) -> None:
        tid = call.task.host_tid
        regs = self.tracer.get_regs(tid)
        self.saved = self.tracer.get_regs(tid)
        code = (regs.rsp - RED_ZONE - len(self.prog)) & ~15
        head = code - 16
        call.mem.write(code, self.prog)
        call.mem.write(head, struct.pack("<H6xQ", len(self.prog) // 8, code))
        regs.orig_rax = NR["seccomp"]
        regs.rdi, regs.rsi, regs.rdx = SECCOMP_SET_MODE_FILTER, 0, head
        self.tracer.set_regs(tid, regs)
        call.on_exit(self.restore)

    def restore(self, call, ret: int):
        if ret != 0:
            call.kernel.klog(f"--trace: cannot stack the trace filter ({argfmt.result('', ret)})")
        regs = self.saved
        regs.rip = regs.rip - SYSCALL_INSN_LEN
        regs.rax = regs.orig_rax
        self.tracer.set_regs(call.task.host_tid, regs)
        return None


class _Pending:
    __slots__ = ("call", "t0", "early")

    def __init__(self, call, t0: int, early) -> None:
        self.call = call
        self.t0 = t0
        self.early = early


class SyscallTrace:
    """Hooks the kernel calls; writes lines to `out` (if any), counts into `stats` (if any)."""

    def __init__(self, out: Optional[TextIO] = None, stats: Optional[SyscallStats] = None,
                 only: Optional[Iterable[int]] = None) -> None:
        self.out = out
        self.stats = stats
        self.only = set(only) if only is not None else None
        self.pending: Dict[object, _Pending] = {}   # task -> the call under way
        self.armed = False
        self.lock = threading.Lock()                # deferred calls complete on worker threads

    def wanted(self, nr: int) -> bool:
        return self.only is None or nr in self.only

    # ---- calls ----
    def enter(self, call) -> None:
        if not self.wanted(call.nr):
            return
        early = None
        if self.out is not None:
            fmt = argfmt.Formatter(call.mem.read, call.mem.read_str)
            try:
                early = fmt.args_at_entry(name_of(call.nr), call.args)
            except Exception:                           # never let a log line hurt the guest
                early = [hex(a) for a in call.args]
        with self.lock:
            self.pending[call.task] = _Pending(call, time.perf_counter_ns(), early)

    def handle(self, kernel, call):
        """At a seccomp stop in trace mode: native calls run on the host as usual."""
        if not self.armed:
            self.armed = True
            with self.lock:
                self.pending.pop(call.task, None)   # logged when it runs again
            _Arm(kernel.tracer, trace_filter(self.only)).inject(call)
            return PASS
        e = registry.lookup(call.nr)
        if e is not None and (e.mode == registry.NATIVE or self._native_branch(e, call)):
            return PASS
        return kernel._handle(call)

    @staticmethod
    def _native_branch(e, call) -> bool:
        cond, native_when_in = (e.native_if, True) if e.native_if else (e.trap_if, False)
        if cond is None:
            return False
        arg, values = cond
        v = call.args[arg] & argfmt.MASK64
        hit = v >> 32 == 0 and v in values
        return hit == native_when_in

    def done(self, call, ret: Optional[int]) -> None:
        with self.lock:
            p = self.pending.pop(call.task, None)
        if p is not None:
            self._finish(p, ret)

    def _finish(self, p: _Pending, ret: Optional[int]) -> None:
        call = p.call
        ns = time.perf_counter_ns() - p.t0
        name = name_of(call.nr)
        failed = ret is not None and -4095 <= argfmt.s64(ret) < 0
        if self.stats is not None:
            with self.lock:
                self.stats.add(name, ns, failed)
        if self.out is not None:
            fmt = argfmt.Formatter(call.mem.read, call.mem.read_str)
            try:
                args = fmt.args_at_exit(name, call.args, p.early, ret)
            except Exception:
                args = [a or "?" for a in p.early]
            self._line(call.task, f"{name}({', '.join(args)})", argfmt.result(name, ret))

    def _line(self, task, text: str, res: str) -> None:
        line = f"{task.tid} {text}"
        with self.lock:
            self.out.write(f"{line:<39} = {res}\n" if len(line) < 39 else f"{line} = {res}\n")

    # ---- lifecycle ----
    def death(self, task, status: int) -> None:
        """A task is gone: its call under way never returns (exit, exit_group, a kill)."""
        with self.lock:
            p = self.pending.pop(task, None)
        if p is not None:
            self._finish(p, None)           # exit_group(0) = ?
        if self.out is None:
            return
        if os.WIFEXITED(status):
            msg = f"+++ exited with {os.WEXITSTATUS(status)} +++"
        elif os.WIFSIGNALED(status):
            msg = f"+++ killed by {argfmt.signame(os.WTERMSIG(status))}"
            msg += " (core dumped) +++" if os.WCOREDUMP(status) else " +++"
        else:
            return
        with self.lock:
            self.out.write(f"{task.tid} {msg}\n")

    def signal(self, task, sig: int, info: Optional[bytes]) -> None:
        if self.out is None or task is None:
            return
        text = f"si_signo={argfmt.signame(sig)}"
        if info is not None:
            code, pid = struct.unpack_from("<i", info, 8)[0], struct.unpack_from("<i", info, 16)[0]
            text += f", si_code={code}, si_pid={pid}"
        with self.lock:
            self.out.write(f"{task.tid} --- {argfmt.signame(sig)} {{{text}}} ---\n")

    def close(self) -> None:
        if self.out is not None:
            self.out.flush()

    def deferred(self, call, work) -> None:
        """A call finishing on a worker thread: log it when its work is done. The
        descriptor number it installs is not known here, so an open shows '= ?'."""
        inner = work.work

        def logged():
            try:
                value = inner()
            except OSError as e:
                self.done(call, -(e.errno or errno.EIO))
                raise
            self.done(call, value if getattr(work, "value", False) else None)
            return value
        work.work = logged
