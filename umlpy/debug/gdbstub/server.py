"""The gdb stub: a socket thread speaks RSP, the kernel's loop thread does the ptrace work.

ptrace requests must come from the tracing thread, so every packet is handed
to the loop thread (a queue and an eventfd in the accelerator's poll) and
answered from there. The debugged process runs all-stop: when one of its
threads stops for gdb (a breakpoint, a step, a signal, Ctrl-C) the others are
interrupted, and the stop is reported once all are held; the rest of the guest
runs on. Thread ids and pids on the wire are the guest's.
"""
from __future__ import annotations

import os
import queue
import signal
import socket
import sys
import threading
from concurrent.futures import Future
from typing import Dict, Optional, Tuple

from umlpy.debug.gdbstub import regs as R
from umlpy.debug.gdbstub import solib
from umlpy.debug.gdbstub.packets import Reader, frame, hexint, hexstr
from umlpy.debug.gdbstub.vfile import FsView, HostIO
from umlpy.host import procinfo
from umlpy.host import tracer as host

MAX_READ = 0x4000
# A thread the kernel keeps stopped while it serves its syscall (a wait4, say)
# never answers an interrupt: an all-stop reports without it after this long.
STOP_GRACE = 0.3
FIRST = 0           # attach target meaning "the first process"
PASS_DEFAULT = {signal.SIGCHLD, signal.SIGWINCH, signal.SIGALRM, signal.SIGURG}


class GdbServer:
    """attach: None to hold the first process at its first instruction (--gdb);
    else the guest pid (FIRST: the first process) stopped when gdb connects.
    once: serve one gdb session, then close and leave the kernel (mconsole)."""

    def __init__(self, kernel, port: int, host_addr: str = "127.0.0.1",
                 attach: Optional[int] = None, once: bool = False) -> None:
        self.k = kernel
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.sock.bind((host_addr, port))
        self.sock.listen(1)
        self.port = self.sock.getsockname()[1]
        self.wake = os.eventfd(0, os.EFD_CLOEXEC | os.EFD_NONBLOCK)
        host.set_wake_fd(kernel.tracer, self.wake)
        self.jobs: "queue.Queue[Tuple[object, Future]]" = queue.Queue()
        self.conn: Optional[socket.socket] = None
        self.send_lock = threading.Lock()
        self.thread: Optional[threading.Thread] = None
        self.hooks = Hooks(self)
        # loop-thread state
        self.group = None               # the ThreadGroup under the debugger
        self.held: Dict[object, int] = {}   # stopped task -> signal it stopped with (0: none)
        self.stop: Optional[Tuple[object, int]] = None  # (task, sig) gdb is told about
        self.stopping = False           # all-stop under way: waiting for the others
        self.stop_gen = 0               # which all-stop a grace timer belongs to
        self.parked: set = set()        # threads the kernel itself holds in a syscall
        self.waiting = False            # gdb waits for a stop reply
        self.step_task = None
        self.gtask = None               # Hg
        self.pass_signals = set(PASS_DEFAULT)
        self.wait_first = attach is None    # hold the first process at its first instruction
        self.attach_pid = attach
        self.attached = False           # the process was running when gdb came (qAttached)
        self.once = once
        self.closed = False
        self.hostio = HostIO(kernel.vfs, self.fs_view, MAX_READ)

    @classmethod
    def from_spec(cls, kernel, spec: str, attach: Optional[int] = None) -> "GdbServer":
        return cls(kernel, parse_port(spec), attach=attach)

    # ---- threads ----
    def start(self, announce: bool = True) -> None:
        if announce:
            sys.stderr.write(f"umlpy: gdb stub listening on 127.0.0.1:{self.port} "
                             f"(gdb PROGRAM -ex 'target remote 127.0.0.1:{self.port}')\n")
            sys.stderr.flush()
        self.thread = threading.Thread(target=self._serve, name="umlpy-gdb", daemon=True)
        self.thread.start()

    def close(self) -> None:
        """On the loop thread, or once the loop has ended."""
        if self.closed:
            return
        self.closed = True
        host.set_wake_fd(self.k.tracer, -1)
        if self.k.debugger is self.hooks:
            self.k.debugger = None
        self.hostio.close_all()
        for s in (self.conn, self.sock):
            if s is not None:
                try:
                    s.close()
                except OSError:
                    pass
        os.close(self.wake)

    def _serve(self) -> None:
        """One gdb session after another (one only for a `once` stub)."""
        while not self.closed:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            conn.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            self.conn = conn
            if self.attach_pid is not None:
                self.on_loop(lambda: self.attach(self.attach_pid))
            self._session(Reader(conn))
            self.on_loop(self.hang_up)
            if self.once:
                return
            self.attach_pid = FIRST     # a later gdb finds the first process running

    def _session(self, reader: Reader) -> None:
        try:
            while True:
                pkt = reader.next()
                if pkt is None:
                    return
                if pkt == b"\x03":
                    self.on_loop(self.interrupt)
                    continue
                if pkt == b"QStartNoAckMode":
                    self.send(b"OK")
                    reader.ack = False
                    continue
                reply = self.on_loop(lambda p=pkt: self.handle(p))
                if reply is not None:
                    self.send(reply)
        except OSError:
            pass

    def hang_up(self) -> None:
        """gdb went away: let the guest run on (and leave, for a one-session stub)."""
        conn, self.conn = self.conn, None
        if conn is not None:
            conn.close()
        self.detach()
        self.hostio.close_all()
        self.hostio.pid = 0
        if self.once:
            self.close()

    def on_loop(self, fn):
        """Run fn on the kernel's loop thread and return its result."""
        fut: Future = Future()
        self.jobs.put((fn, fut))
        try:
            os.eventfd_write(self.wake, 1)
        except (OSError, ValueError):
            return None             # the kernel has gone (closed the stub)
        return fut.result()

    def service(self) -> None:
        """On the loop thread (EV_INTR): run the queued requests."""
        while True:
            try:
                fn, fut = self.jobs.get_nowait()
            except queue.Empty:
                return
            try:
                fut.set_result(fn())
            except Exception as e:          # a stub bug must not take the kernel down
                self.k.klog(f"gdb stub: {type(e).__name__}: {e}")
                fut.set_result(b"E01")

    def send(self, data: bytes) -> None:
        conn = self.conn
        if conn is None:
            return
        with self.send_lock:
            try:
                conn.sendall(frame(data))
            except OSError:
                pass

    # ---- tasks ----
    def threads(self) -> list:
        g = self.group
        if g is None or g.zombie:
            return []
        live = self.k.pids.tasks      # a dying thread leaves it before its group's list
        return sorted((t for t in g.threads.values() if live.get(t.host_tid) is t),
                      key=lambda t: t.tid)

    def task_by_tid(self, tid: int):
        for t in self.threads():
            if t.tid == tid:
                return t
        return None

    def current(self):
        """The thread gdb's register packets are about: held for gdb, or parked in
        the kernel (readable; its registers belong to the syscall under way)."""
        stopped = lambda t: t is not None and (t in self.held or t in self.parked)  # noqa: E731
        t = self.gtask
        if not stopped(t):
            t = self.stop[0] if self.stop else None
        if not stopped(t):
            t = next(iter(self.held), None)
        return t

    def writable(self):
        t = self.current()
        if t is None or t in self.parked:
            raise ValueError("a thread the kernel holds")
        return t

    def mem(self):
        return host.ProcMem(self.group.host_tgid)

    # ---- stops (loop thread, from the hooks) ----
    def hold(self, task, sig: int, reason: bool) -> None:
        self.held[task] = sig
        if reason and self.stop is None:
            self.stop = (task, sig)
        if self.stop is None:
            return
        missing = [t for t in self.threads() if t not in self.held]
        if not self.stopping:
            self.stop_all(missing)
        if not missing:
            self.stopped()

    def stop_all(self, tasks: list) -> None:
        """Interrupt tasks for an all-stop, with a grace timer for those that cannot stop."""
        self.stopping, self.parked = True, set()
        for t in tasks:
            self.k.tracer.interrupt(t.host_tid)
        self.stop_gen += 1
        gen = self.stop_gen
        timer = threading.Timer(STOP_GRACE, lambda: self.on_loop(lambda: self.settle(gen)))
        timer.daemon = True
        timer.start()

    def settle(self, gen: int) -> None:
        """The grace time is over: the threads not held yet are parked by the kernel."""
        if gen == self.stop_gen and self.stopping and self.stop is not None:
            self.parked = {t for t in self.threads() if t not in self.held}
            self.stopped()

    def stopped(self) -> None:
        self.stopping = False
        if self.waiting:
            self.waiting = False
            self.send(self.stop_reply())

    def stop_reply(self) -> bytes:
        if self.group is None or self.stop is None:
            return b"W00"
        task, sig = self.stop
        # sig 0 is an attach: T00, no signal for gdb to pass on when it continues
        return b"T%02xthread:%x;" % (sig, task.tid)

    def question(self) -> Optional[bytes]:
        """'?': the stop, once every thread is held (an attach may still be under way)."""
        if self.wait_first or (self.stop is not None and self.stopping):
            self.waiting = True     # the first exec, or the other threads, still to come
            return None
        return self.stop_reply() if self.stop else b"W00"

    def interrupt(self):
        """Ctrl-C from gdb: stop the process."""
        if self.group is None or self.stop is not None:
            return None
        leader = self.threads()[0] if self.threads() else None
        if leader is not None:
            self.stop = (leader, signal.SIGINT)
            self.stop_all(self.threads())
        return None

    def resume(self, step_tid: Optional[int], sig: int, others: bool = True) -> None:
        """Step one thread (step_tid) or none, and let the other held threads run
        too unless `others` is False (vCont;s:TID alone: they stay stopped)."""
        stopped_task = self.stop[0] if self.stop else None
        step = self.task_by_tid(step_tid) if step_tid else None
        held = self.held
        self.held = {} if others else {t: s for t, s in held.items() if t is not step}
        self.stop, self.stopping, self.waiting, self.parked = None, False, True, set()
        for task, own in held.items():
            if not others and task is not step:
                continue
            give = sig if task is stopped_task or task is step else \
                (own if own not in (0, signal.SIGTRAP) else 0)
            if task is step:
                host.singlestep(task.host_tid, give)
            else:
                self.k.resume(task, give)

    def detach(self) -> bytes:
        """Let the process go on as if gdb had never been there: the signals the
        threads stopped with are delivered, gdb's own stops (traps) are not."""
        if self.group is not None:
            held, self.held = self.held, {}
            for task, own in held.items():
                self.k.resume(task, own if own not in (0, signal.SIGTRAP) else 0)
        self.group, self.stop, self.waiting, self.stopping = None, None, False, False
        self.parked = set()
        self.attached = False
        return b"OK"

    def attach(self, pid: int) -> Optional[bytes]:
        """Stop guest process pid (FIRST: the first one) for gdb; the stop is
        reported once all its threads are held (to '?' or vAttach)."""
        group = self.k.init if pid == FIRST else self.k.pids.groups.get(pid)
        if self.group is not None or group is None or group.zombie:
            return b"E01"
        self.group, self.attached, self.wait_first = group, True, False
        threads = self.threads()
        if not threads:
            self.group = None
            return b"E01"
        self.stop, self.held = (threads[0], 0), {}
        self.stop_all(threads)
        return None

    def fs_view(self, pid: int) -> Optional[FsView]:
        """The files vFile reads: as the debugged process (pid 0) or guest pid sees them."""
        group = self.group if pid == 0 else self.k.pids.groups.get(pid)
        if group is None and pid == 0:
            group = self.k.init
        if group is None or group.zombie:
            return None
        task = next(iter(group.threads.values()), None)
        if task is None:
            return None
        return task.fs.root, task.fs.cwd, task.creds

    # ---- packets (loop thread) ----
    def handle(self, pkt: bytes) -> Optional[bytes]:
        head = pkt[:1]
        try:
            if pkt.startswith(b"qSupported"):
                return (b"PacketSize=%x;qXfer:features:read+;qXfer:exec-file:read+;"
                        b"qXfer:auxv:read+;qXfer:libraries-svr4:read+;"
                        b"QPassSignals+;vContSupported+;QStartNoAckMode+" % MAX_READ)
            if pkt == b"?":
                return self.question()
            if pkt.startswith(b"qXfer:"):
                obj, _, rest = pkt[6:].partition(b":read:")
                annex, _, span = rest.rpartition(b":")
                return self.qxfer(obj, annex, span)
            if pkt.startswith(b"vFile:"):
                return self.hostio.handle(pkt[6:])
            if pkt.startswith(b"vAttach;"):
                reply = self.attach(hexint(pkt[8:]))
                self.waiting = reply is None
                return reply
            if pkt == b"!":
                return b"OK"            # extended-remote: vAttach; vRun is not offered
            if pkt.startswith(b"QPassSignals:"):
                self.pass_signals = {hexint(s) for s in pkt[13:].split(b";") if s}
                return b"OK"
            if pkt == b"qfThreadInfo":
                return b"m" + b",".join(b"%x" % t.tid for t in self.threads()) \
                    if self.threads() else b"l"
            if pkt == b"qsThreadInfo":
                return b"l"
            if pkt == b"qC":
                t = self.current()
                return b"QC%x" % t.tid if t is not None else b""
            if pkt.startswith(b"qAttached"):
                return b"1" if self.attached else b"0"     # 1: gdb detaches on quit
            if pkt.startswith(b"qSymbol"):
                return b"OK"
            if head == b"H":
                tid = int(pkt[2:], 16) if pkt[2:] not in (b"-1", b"") else 0
                if pkt[1:2] == b"g":
                    self.gtask = self.task_by_tid(tid) if tid > 0 else None
                return b"OK"
            if head == b"T":
                return b"OK" if self.task_by_tid(hexint(pkt[1:])) is not None else b"E01"
            if head == b"g":
                t = self.current()
                return R.encode(self.k.tracer.get_regs(t.host_tid)) if t else b"E01"
            if head == b"G":
                t = self.writable()
                r = self.k.tracer.get_regs(t.host_tid)
                R.decode_all(r, pkt[1:])
                self.k.tracer.set_regs(t.host_tid, r)
                return b"OK"
            if head == b"p":
                t = self.current()
                return R.encode_one(self.k.tracer.get_regs(t.host_tid), hexint(pkt[1:]))
            if head == b"P":
                n, val = pkt[1:].split(b"=")
                t = self.writable()
                r = self.k.tracer.get_regs(t.host_tid)
                if not R.set_one(r, hexint(n), bytes.fromhex(val.decode())):
                    return b"E01"
                self.k.tracer.set_regs(t.host_tid, r)
                return b"OK"
            if head == b"m":
                addr, length = (hexint(x) for x in pkt[1:].split(b","))
                data = self.mem().read(addr, min(length, MAX_READ))
                return hexstr(data) if data else b"E14"
            if head in (b"M", b"X"):
                where, data = pkt[1:].split(b":", 1)
                addr, length = (hexint(x) for x in where.split(b","))
                raw = bytes.fromhex(data.decode()) if head == b"M" else data
                if length and self.mem().write(addr, raw[:length]) != length:
                    return b"E14"
                return b"OK"
            if pkt == b"vCont?":
                return b"vCont;c;C;s;S"
            if pkt.startswith(b"vCont;"):
                return self.vcont(pkt[6:])
            if head in (b"c", b"s", b"C", b"S"):
                sig = hexint(pkt[1:].split(b";")[0]) if head in (b"C", b"S") and pkt[1:] else 0
                step = self.current().tid if head in (b"s", b"S") and self.current() else None
                self.resume(step, sig)
                return None
            if pkt.startswith(b"vKill") or head == b"k":
                if head == b"v":
                    self.send(b"OK")    # before the death that may end umlpy
                self.kill()
                return None
            if head == b"D":
                self.send(b"OK")        # before the process runs on, and maybe ends umlpy
                self.detach()
                return None
        except (OSError, ValueError, IndexError, AttributeError):
            return b"E01"
        return b""

    def vcont(self, actions: bytes) -> Optional[bytes]:
        step_tid, sig, others = None, 0, False
        for act in actions.split(b";"):
            verb, _, tid = act.partition(b":")
            kind = verb[:1]
            if not tid or tid == b"-1":
                others = True           # a default action: every other thread runs
            if kind in (b"C", b"S"):
                sig = hexint(verb[1:])
            if kind in (b"s", b"S"):
                t = hexint(tid) if tid and tid != b"-1" else (self.current().tid if self.current() else 0)
                step_tid = t
        self.resume(step_tid, sig, others or step_tid is None)
        return None

    def kill(self) -> None:
        if self.group is not None:
            try:
                os.kill(self.group.host_tgid, signal.SIGKILL)
            except OSError:
                pass
            held, self.held = self.held, {}
            for task in held:
                self.k.tracer.cont(task.host_tid)
            self.waiting = False

    def qxfer(self, obj: bytes, annex: bytes, span: bytes) -> bytes:
        if obj == b"features" and annex == b"target.xml":
            return self.xfer(R.target_xml().encode(), span)
        group = self.group
        if obj == b"exec-file" and annex:
            group = self.k.pids.groups.get(hexint(annex))
        if group is None or group.zombie:
            return b"E01"
        if obj == b"exec-file":
            return self.xfer(os.fsencode(group.exe), span)
        if obj == b"auxv" and not annex:
            return self.xfer(procinfo.read_proc_file(group.host_tgid, "auxv"), span)
        if obj == b"libraries-svr4" and not annex:
            return self.xfer(solib.for_process(group), span)
        return b""

    @staticmethod
    def xfer(data: bytes, span: bytes) -> bytes:
        off, length = (hexint(x) for x in span.split(b","))
        chunk = data[off:off + length]
        return (b"l" if off + len(chunk) >= len(data) else b"m") + chunk


def parse_port(spec: str) -> int:
    try:
        port = int(spec)
    except ValueError:
        raise ValueError(f"--gdb: expected a TCP port, got {spec!r}") from None
    if not 0 <= port < 65536:
        raise ValueError(f"--gdb: port {port} out of range")
    return port


class Hooks:
    """What the kernel calls (loop thread): True means "gdb keeps this task stopped"."""

    def __init__(self, server: GdbServer) -> None:
        self.s = server

    def service(self) -> None:
        self.s.service()

    def on_exec(self, task) -> bool:
        s = self.s
        if s.wait_first and task.group is s.k.init:
            s.wait_first = False
            s.group = task.group
            s.hold(task, signal.SIGTRAP, True)
            return True
        return False

    def on_signal(self, task, sig: int) -> bool:
        s = self.s
        if s.group is None or task.group is not s.group:
            return False
        if s.stop is None and sig in s.pass_signals and sig != signal.SIGTRAP:
            return False
        s.hold(task, sig, True)
        return True

    def on_trapstop(self, task) -> bool:
        s = self.s
        if s.group is None or task.group is not s.group or s.stop is None:
            return False
        s.hold(task, 0, False)
        return True

    def on_death(self, task, status: int) -> None:
        s = self.s
        if s.wait_first and task.group is s.k.init and task.is_leader:
            s.wait_first = False        # it died before its first exec completed
            s.group = task.group
        if s.group is None or task.group is not s.group:
            return
        s.held.pop(task, None)
        if task.is_leader:
            if s.waiting or s.stop is None:
                code = (b"W%02x" % os.WEXITSTATUS(status)) if os.WIFEXITED(status) else \
                    (b"X%02x" % os.WTERMSIG(status))
                s.send(code)
            s.group, s.stop, s.waiting = None, None, False
        elif s.stop is not None and s.stop[0] in s.held:
            s.hold(s.stop[0], s.stop[1], False)     # the others may all be held now
