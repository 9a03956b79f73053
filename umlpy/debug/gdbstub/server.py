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
from umlpy.debug.gdbstub.packets import Reader, frame, hexint, hexstr
from umlpy.host import tracer as host

MAX_READ = 0x4000
PASS_DEFAULT = {signal.SIGCHLD, signal.SIGWINCH, signal.SIGALRM, signal.SIGURG}


class GdbServer:
    def __init__(self, kernel, port: int, host_addr: str = "127.0.0.1") -> None:
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
        self.waiting = False            # gdb waits for a stop reply
        self.step_task = None
        self.gtask = None               # Hg
        self.pass_signals = set(PASS_DEFAULT)
        self.wait_first = True          # hold the first process at its first instruction

    @classmethod
    def from_spec(cls, kernel, spec: str) -> "GdbServer":
        try:
            port = int(spec)
        except ValueError:
            raise ValueError(f"--gdb: expected a TCP port, got {spec!r}") from None
        if not 0 <= port < 65536:
            raise ValueError(f"--gdb: port {port} out of range")
        return cls(kernel, port)

    # ---- threads ----
    def start(self) -> None:
        sys.stderr.write(f"umlpy: gdb stub listening on 127.0.0.1:{self.port} "
                         f"(gdb PROGRAM -ex 'target remote :{self.port}')\n")
        sys.stderr.flush()
        self.thread = threading.Thread(target=self._serve, name="umlpy-gdb", daemon=True)
        self.thread.start()

    def close(self) -> None:
        host.set_wake_fd(self.k.tracer, -1)
        for s in (self.conn, self.sock):
            if s is not None:
                try:
                    s.close()
                except OSError:
                    pass
        os.close(self.wake)

    def _serve(self) -> None:
        try:
            conn, _ = self.sock.accept()
        except OSError:
            return
        conn.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.conn = conn
        reader = Reader(conn)
        try:
            while True:
                pkt = reader.next()
                if pkt is None:
                    break
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
        self.on_loop(self.detach)       # gdb went away: let the guest run on

    def on_loop(self, fn):
        """Run fn on the kernel's loop thread and return its result."""
        fut: Future = Future()
        self.jobs.put((fn, fut))
        os.eventfd_write(self.wake, 1)
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
        t = self.gtask
        if t is None or t not in self.held:
            t = self.stop[0] if self.stop else None
        if t is None or t not in self.held:
            t = next(iter(self.held), None)
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
            self.stopping = True
            for t in missing:
                self.k.tracer.interrupt(t.host_tid)
        if not missing:
            self.stopping = False
            if self.waiting:
                self.waiting = False
                self.send(self.stop_reply())

    def stop_reply(self) -> bytes:
        if self.group is None or self.stop is None:
            return b"W00"
        task, sig = self.stop
        return b"T%02xthread:%x;" % (sig or signal.SIGTRAP, task.tid)

    def interrupt(self):
        """Ctrl-C from gdb: stop the process."""
        if self.group is None or self.stop is not None:
            return None
        leader = self.threads()[0] if self.threads() else None
        if leader is not None:
            self.stop = (leader, signal.SIGINT)
            self.stopping = True
            for t in self.threads():
                self.k.tracer.interrupt(t.host_tid)
        return None

    def resume(self, step_tid: Optional[int], sig: int, others: bool = True) -> None:
        """Step one thread (step_tid) or none, and let the other held threads run
        too unless `others` is False (vCont;s:TID alone: they stay stopped)."""
        stopped_task = self.stop[0] if self.stop else None
        step = self.task_by_tid(step_tid) if step_tid else None
        held = self.held
        self.held = {} if others else {t: s for t, s in held.items() if t is not step}
        self.stop, self.stopping, self.waiting = None, False, True
        for task, own in held.items():
            if not others and task is not step:
                continue
            give = sig if task is stopped_task or task is step else \
                (own if own not in (0, signal.SIGTRAP) else 0)
            if task is step:
                host.singlestep(task.host_tid, give)
            else:
                self.k.resume(task, give)

    def detach(self):
        self.conn = None
        if self.group is not None:
            held, self.held = self.held, {}
            for task, own in held.items():
                self.k.resume(task, own if own not in (0, signal.SIGTRAP) else 0)
        self.group, self.stop, self.waiting = None, None, False
        return b"OK"

    # ---- packets (loop thread) ----
    def handle(self, pkt: bytes) -> Optional[bytes]:
        head = pkt[:1]
        try:
            if pkt.startswith(b"qSupported"):
                return (b"PacketSize=%x;qXfer:features:read+;qXfer:exec-file:read+;"
                        b"QPassSignals+;vContSupported+;QStartNoAckMode+" % MAX_READ)
            if pkt == b"?":
                return self.stop_reply() if self.stop else b"W00"
            if pkt.startswith(b"qXfer:features:read:target.xml:"):
                return self.xfer(R.target_xml().encode(), pkt.rsplit(b":", 1)[1])
            if pkt.startswith(b"qXfer:exec-file:read:"):
                path = (self.group.exe if self.group is not None else "").encode()
                return self.xfer(path, pkt.rsplit(b":", 1)[1])
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
            if pkt == b"qAttached":
                return b"0"
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
                t = self.current()
                r = self.k.tracer.get_regs(t.host_tid)
                R.decode_all(r, pkt[1:])
                self.k.tracer.set_regs(t.host_tid, r)
                return b"OK"
            if head == b"p":
                t = self.current()
                return R.encode_one(self.k.tracer.get_regs(t.host_tid), hexint(pkt[1:]))
            if head == b"P":
                n, val = pkt[1:].split(b"=")
                t = self.current()
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
                return self.detach()
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

    @staticmethod
    def xfer(data: bytes, span: bytes) -> bytes:
        off, length = (hexint(x) for x in span.split(b","))
        chunk = data[off:off + length]
        return (b"l" if off + len(chunk) >= len(data) else b"m") + chunk


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
