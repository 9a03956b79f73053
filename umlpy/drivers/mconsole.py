"""UML's management console (mconsole), the server side.

    server = MconsoleServer(umid, uml_dir, host)   # claims <uml_dir>/<umid>/, binds the socket
    server.notify(path)                            # for mconsole=notify:<path>
    server.start()                                 # serve from a daemon thread
    ...
    server.close()                                 # clean halt: socket, pid file, directory gone

Threading: start() runs a daemon thread "mconsole-<umid>" that waits on the
socket and calls the MconsoleHost methods itself, one request at a time;
the kernel must make those methods safe to call from that thread (post to
its event loop and wait, or take its lock). A kernel that prefers its own
loop does not call start(): it watches fileno() and calls poll_once() when
it is readable; poll_once() never blocks unless given a timeout. Either
way the kernel is never blocked by a client: a request is read with
MSG_DONTWAIT and a reply waits at most SEND_TIMEOUT for a slow reader.

stop/go: "stop" calls host.stop() (freeze the guest) and the mconsole goes
on answering until "go" calls host.go(); "go" when not stopped is
"ERR Not stopped", a second "stop" is "ERR Already stopped".

Malformed datagrams are answered with an error (or a bare-text answer for
datagrams without the magic, as UML does) or dropped; nothing a client
sends raises out of the server.
"""
from __future__ import annotations

import errno
import logging
import os
import select
import socket
import struct
import threading
from typing import Optional, Union

from umlpy.drivers.mconsole_commands import (
    Answer, Dispatcher, MconsoleCommandError, MconsoleError, MconsoleHost, format_version,
)
from umlpy.drivers.mconsole_proto import (
    RECV_BUFFER_SIZE, REPLY_MAX_SIZE, MalformedRequest, NotifyKind, decode_request,
    encode_notify, encode_reply,
)
from umlpy.drivers.mconsole_umid import DEFAULT_UML_DIR, UmidDirectory, random_umid

__all__ = [
    "MconsoleServer", "MconsoleHost", "MconsoleError", "MconsoleCommandError", "NotifyKind",
    "format_version", "send_notify", "random_umid", "DEFAULT_UML_DIR",
]

log = logging.getLogger("umlpy.mconsole")

SEND_TIMEOUT = 2.0          # seconds a reply chunk may wait for a client that does not read
MAX_REQUESTS_PER_POLL = 64  # poll_once() returns to its caller after this many

Address = Union[str, bytes]


def send_notify(target: str, kind: NotifyKind, data: bytes) -> None:
    """Send one notify datagram to target (an AF_UNIX datagram socket path)."""
    sender = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    try:
        sender.settimeout(SEND_TIMEOUT)
        sender.sendto(encode_notify(kind, data), target)
    except OSError as exc:
        raise MconsoleError(f"mconsole notify to {target} failed: "
                            f"{exc.strerror or exc}") from None
    finally:
        sender.close()


class MconsoleServer:
    """The mconsole socket of one kernel instance, and the loop that serves it."""

    def __init__(self, umid: str, uml_dir: Optional[str], host: MconsoleHost) -> None:
        """Claim <uml_dir>/<umid>/ (uml_dir None or "": ~/.uml/; umid "": a random one).

        Raises MconsoleError if a live instance holds the umid or the
        directory or socket cannot be made.
        """
        self.dispatcher = Dispatcher(host)
        self.directory = UmidDirectory.claim(umid, uml_dir)
        self._sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        try:
            self._sock.bind(self.directory.socket_path)
            # a blocking socket with a send timeout: a reply waits for a slow
            # client's queue, but never forever (recv uses MSG_DONTWAIT)
            seconds = int(SEND_TIMEOUT)
            micros = int((SEND_TIMEOUT - seconds) * 1e6)
            self._sock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDTIMEO,
                                  struct.pack("@ll", seconds, micros))
        except OSError as exc:
            self._sock.close()
            self.directory.remove()
            raise MconsoleError(f"cannot bind {self.directory.socket_path}: "
                                f"{exc.strerror or exc}") from None
        self._wake_read, self._wake_write = os.pipe2(os.O_CLOEXEC | os.O_NONBLOCK)
        self._thread: Optional[threading.Thread] = None
        self._closed = False
        self._close_lock = threading.Lock()

    # --- what the kernel reads -------------------------------------------------

    @property
    def umid(self) -> str:
        return self.directory.umid

    @property
    def socket_path(self) -> str:
        return self.directory.socket_path

    @property
    def stopped(self) -> bool:
        """True between an answered "stop" and "go"."""
        return self.dispatcher.stopped

    @property
    def closed(self) -> bool:
        return self._closed

    def fileno(self) -> int:
        """The socket's descriptor, readable when poll_once() has work (no start() then)."""
        return self._sock.fileno()

    # --- life cycle ------------------------------------------------------------

    def start(self) -> None:
        """Serve from a daemon thread until close()."""
        if self._closed:
            raise MconsoleError("mconsole is closed")
        if self._thread is not None:
            return
        self._thread = threading.Thread(target=self._serve_forever, daemon=True,
                                        name=f"mconsole-{self.umid}")
        self._thread.start()

    def close(self) -> None:
        """Stop serving and remove the socket, the pid file and the directory.

        Safe to call twice and from the mconsole thread itself (e.g. from
        host.halt()); from another thread it waits for the current request.
        """
        with self._close_lock:
            if self._closed:
                return
            self._closed = True
        thread = self._thread
        if thread is not None and thread is not threading.current_thread():
            try:
                os.write(self._wake_write, b"x")
            except OSError:
                pass
            thread.join(SEND_TIMEOUT * 2)
        self._sock.close()
        for fd in (self._wake_read, self._wake_write):
            os.close(fd)
        try:
            self.directory.remove()
        except MconsoleError as exc:
            log.warning("%s", exc)

    def __enter__(self) -> "MconsoleServer":
        return self

    def __exit__(self, *_exc: object) -> None:
        self.close()

    def notify(self, target: str, kind: NotifyKind = NotifyKind.SOCKET,
               text: Optional[str] = None) -> None:
        """mconsole=notify:<target>: tell target our socket is ready (data = its path).

        Other kinds (PANIC, HANG, USER_NOTIFY) carry text. Raises MconsoleError.
        """
        message = self.socket_path if text is None else text
        send_notify(target, kind, os.fsencode(message) + b"\0")

    # --- serving ---------------------------------------------------------------

    def poll_once(self, timeout: float = 0.0) -> int:
        """Answer the requests waiting on the socket; the number answered.

        Waits up to timeout seconds for the first one (0: do not wait).
        Never raises for anything a client sent.
        """
        if self._thread is not None and threading.current_thread() is not self._thread:
            raise RuntimeError("poll_once() and start() cannot be mixed")
        if self._closed:
            return 0
        if timeout > 0:
            try:
                readable, _, _ = select.select([self._sock], [], [], timeout)
            except (OSError, ValueError):
                return 0
            if not readable:
                return 0
        handled = 0
        while handled < MAX_REQUESTS_PER_POLL and not self._closed:
            try:
                datagram, address = self._sock.recvfrom(RECV_BUFFER_SIZE, socket.MSG_DONTWAIT)
            except (BlockingIOError, InterruptedError):
                break
            except OSError as exc:
                if not self._closed:
                    log.warning("mconsole: recvfrom failed: %s", exc)
                break
            handled += 1
            try:
                self._handle(datagram, address)
            except Exception:           # belt and braces: the server outlives any request
                log.exception("mconsole: request failed")
        return handled

    def _serve_forever(self) -> None:
        while not self._closed:
            try:
                readable, _, _ = select.select([self._sock, self._wake_read], [], [])
            except InterruptedError:
                continue
            except (OSError, ValueError):   # closed under us
                break
            if self._wake_read in readable or self._closed:
                break
            self.poll_once()

    def _handle(self, datagram: bytes, address: Optional[Address]) -> None:
        if not address:
            return                      # an unbound client cannot be answered
        try:
            command = decode_request(datagram)
        except MalformedRequest as bad:
            if bad.answer is None:
                return
            if bad.legacy:
                self._send(bad.answer.encode(), address)
            else:
                self._reply(Answer.error(bad.answer), address)
            return
        answer = self.dispatcher.dispatch(command)
        self._reply(answer, address)
        if answer.after_reply is not None:
            try:
                answer.after_reply()
            except Exception:
                log.exception("mconsole: %r failed after its answer", command)

    def _reply(self, answer: Answer, address: Address) -> None:
        for chunk in encode_reply(answer.segments, answer.err):
            assert len(chunk) <= REPLY_MAX_SIZE
            if not self._send(chunk, address):
                return

    def _send(self, datagram: bytes, address: Address) -> bool:
        try:
            self._sock.sendto(datagram, address)
            return True
        except OSError as exc:
            # the client went away (ECONNREFUSED, ENOENT) or stopped reading (EAGAIN)
            level = logging.DEBUG if exc.errno in (errno.ECONNREFUSED, errno.ENOENT) \
                else logging.WARNING
            log.log(level, "mconsole: reply to %r dropped: %s", address, exc)
            return False
