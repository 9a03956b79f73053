"""Console and serial lines: the guest's /dev/console, /dev/ttyN and /dev/ttySN.

Every line the guest has is a host pseudo-terminal: the guest holds the
slave, so the host kernel's line discipline gives it echo, editing, job
control and ^C/^Z/^\\ signals to its foreground process group for free. The
kernel pumps the master to the line's channel (boot option con=/ssl=):

  fd:N[,fd:M]  a host descriptor; a terminal is put in raw mode while the guest
               runs (so ^C reaches the guest's line discipline) and its window
               size follows the host's. Without a terminal on fd:0 there is no
               pty at all for the console: the guest gets the descriptors
               themselves, as a pipe or file (so scripted use sees no echo).
  port:N       a telnet server on 127.0.0.1:N; the boot waits for the first
               client of the console, as UML does; one client at a time.
  pts          a host pty the user attaches to (its name goes to the log).
  null         output vanishes, reads wait forever.   none: no such line.

Lines other than the console come to life the first time the guest opens them.
"""
from __future__ import annotations

import errno
import fcntl
import os
import select
import signal
import socket
import stat
import struct
import termios
import threading
import tty
from typing import Dict, List, Optional

from umlpy.drivers import chardev

TTY_MAJOR, TTYAUX_MAJOR = 4, 5
SERIAL_MINOR_BASE = 64
TTY_GID = 5
IAC, WILL, DO, SB, SE = 255, 251, 253, 250, 240
TELOPT_ECHO, TELOPT_SGA, TELOPT_NAWS = 1, 3, 31
_WINSZ = struct.Struct("HHHH")


class ConsoleError(Exception):
    """A channel that cannot be set up: one line."""


def _winsize(fd: int) -> Optional[bytes]:
    try:
        return fcntl.ioctl(fd, termios.TIOCGWINSZ, bytes(_WINSZ.size))
    except OSError:
        return None


class Line:
    """One console or serial line: a pty pair and the pump to its channel."""

    def __init__(self, name: str, channels, log) -> None:
        self.name = name            # "tty0", "ttyS0"
        self.channels = channels    # boot.channels.LineChannels
        self.log = log
        self.master = -1
        self.slave = -1
        self.threads: List[threading.Thread] = []
        self.stop = threading.Event()
        self.saved_termios = None
        self.raw_fd = -1
        self.server: Optional[socket.socket] = None
        self.peer: Optional[socket.socket] = None
        self.host_pty: Optional[tuple] = None

    # ---- set-up ----
    def open(self, wait_for_client: bool = False) -> None:
        self.master, self.slave = os.openpty()
        for fd in (self.master, self.slave):
            os.set_inheritable(fd, False)
        kind_in = self.channels.input.kind if self.channels.input else "none"
        if kind_in == "fd" or (self.channels.output and self.channels.output.kind == "fd"):
            self._start_fd()
        elif kind_in == "port":
            self._start_port(self.channels.input.port, wait_for_client)
        elif kind_in == "pts":
            self._start_pts()
        elif kind_in == "null":
            self._spawn(self._drain)
        else:
            raise ConsoleError(f"{self.name}: channel {kind_in} is not supported")

    def _spawn(self, target, *args) -> None:
        t = threading.Thread(target=target, args=args, name=f"umlpy-{self.name}", daemon=True)
        t.start()
        self.threads.append(t)

    def _start_fd(self) -> None:
        fin = self.channels.input.fd if self.channels.input else None
        fout = self.channels.output.fd if self.channels.output else None
        if fin is not None and os.isatty(fin):
            size = _winsize(fin)
            if size is not None:
                fcntl.ioctl(self.slave, termios.TIOCSWINSZ, size)
            self.saved_termios = termios.tcgetattr(fin)
            self.raw_fd = fin
            tty.setraw(fin)
            signal.signal(signal.SIGWINCH, self._follow_window)
        if fin is not None:
            self._spawn(self._copy, fin, self.master)
        self._spawn(self._copy, self.master, fout if fout is not None else -1)

    def _follow_window(self, signum, frame) -> None:
        size = _winsize(self.raw_fd)
        if size is not None:
            try:
                fcntl.ioctl(self.slave, termios.TIOCSWINSZ, size)
            except OSError:
                pass

    def _start_port(self, port: int, wait: bool) -> None:
        srv = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        srv.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            srv.bind(("127.0.0.1", port))
        except OSError as e:
            srv.close()
            raise ConsoleError(f"{self.name}: port {port}: {e.strerror}") from None
        srv.listen(1)
        self.server = srv
        self.log(f"{self.name}: waiting for a telnet client on 127.0.0.1:{port}")
        if wait:
            self._accept()
        self._spawn(self._serve_port)

    def _accept(self) -> None:
        peer, _addr = self.server.accept()
        # character mode: the guest's line discipline echoes and edits
        peer.sendall(bytes((IAC, WILL, TELOPT_ECHO, IAC, WILL, TELOPT_SGA, IAC, DO, TELOPT_NAWS)))
        self.peer = peer

    def _serve_port(self) -> None:
        while not self.stop.is_set():
            if self.peer is None:
                try:
                    self._accept()
                except OSError:
                    return
            out = threading.Thread(target=self._copy, args=(self.master, self.peer.fileno()),
                                   daemon=True)
            out.start()
            self._telnet_in(self.peer)
            try:
                self.peer.close()
            except OSError:
                pass
            self.peer = None

    def _telnet_in(self, peer: socket.socket) -> None:
        """Client bytes to the guest, telnet commands taken out (window size kept)."""
        state, sub = 0, bytearray()
        while not self.stop.is_set():
            try:
                data = peer.recv(4096)
            except OSError:
                return
            if not data:
                return
            plain = bytearray()
            for b in data:
                if state == 0:
                    if b == IAC:
                        state = 1
                    elif b != 0:
                        plain.append(b)
                elif state == 1:                    # after IAC
                    if b == IAC:
                        plain.append(b)
                        state = 0
                    elif b == SB:
                        state, sub = 3, bytearray()
                    else:
                        state = 2 if b in (WILL, 252, DO, 254) else 0
                elif state == 2:                    # the option byte of WILL/DO...
                    state = 0
                elif state == 3:                    # subnegotiation
                    if b == IAC:
                        state = 4
                    else:
                        sub.append(b)
                elif state == 4:
                    if b == SE:
                        self._subnegotiation(bytes(sub))
                        state = 0
                    else:
                        sub.append(b)
                        state = 3
            if plain:
                try:
                    os.write(self.master, bytes(plain))
                except OSError:
                    return

    def _subnegotiation(self, sub: bytes) -> None:
        if len(sub) == 5 and sub[0] == TELOPT_NAWS:
            cols, rows = struct.unpack(">HH", sub[1:5])
            try:
                fcntl.ioctl(self.slave, termios.TIOCSWINSZ, _WINSZ.pack(rows, cols, 0, 0))
            except OSError:
                pass

    def _start_pts(self) -> None:
        user_master, user_slave = os.openpty()
        os.set_inheritable(user_master, False)
        self.host_pty = (user_master, user_slave)
        self.log(f"{self.name}: assigned device {os.ttyname(user_slave)}")
        self._spawn(self._copy, user_master, self.master)
        self._spawn(self._copy, self.master, user_master)

    def _drain(self) -> None:
        self._copy(self.master, -1)

    # ---- pumping ----
    def _copy(self, src: int, dst: int) -> None:
        while not self.stop.is_set():
            try:
                r, _w, _x = select.select([src], [], [], 0.2)
                if not r:
                    continue
                data = os.read(src, 65536)
            except OSError:
                return          # EIO: the other side of the pty is gone
            if not data:
                return
            if dst < 0:
                continue
            try:
                while data:
                    n = os.write(dst, data)
                    data = data[n:]
            except OSError:
                return

    def close(self) -> None:
        self.stop.set()
        if self.saved_termios is not None:
            try:
                termios.tcsetattr(self.raw_fd, termios.TCSADRAIN, self.saved_termios)
            except termios.error:
                pass
            signal.signal(signal.SIGWINCH, signal.SIG_DFL)
        for t in self.threads:
            t.join(timeout=0.5)
        for s in (self.peer, self.server):
            if s is not None:
                try:
                    s.close()
                except OSError:
                    pass
        fds = [self.master, self.slave] + list(self.host_pty or ())
        for fd in fds:
            if fd >= 0:
                try:
                    os.close(fd)
                except OSError:
                    pass


class Consoles:
    """The lines of one machine (the kernel's `consoles`)."""

    def __init__(self, config, log) -> None:
        self.config = config        # boot.channels.ChannelConfig
        self.log = log
        self.lines: Dict[str, Line] = {}
        self.lock = threading.Lock()

    def console_fd(self) -> int:
        """The slave of the console line (con0) for init, or -1 when the console is
        the host's own descriptors (fd: channels that are not terminals)."""
        chans = self.config.console(0)
        if not chans.exists:
            return -1
        if chans.input is not None and chans.input.kind == "fd" and not os.isatty(chans.input.fd):
            return -1
        port = chans.input is not None and chans.input.kind == "port"
        line = self._line("tty0", chans, wait=port)
        return line.slave

    def _line(self, name: str, chans, wait: bool = False) -> Line:
        with self.lock:
            line = self.lines.get(name)
            if line is None:
                line = Line(name, chans, self.log)
                line.open(wait_for_client=wait)
                self.lines[name] = line
            return line

    def open_line(self, serial: bool, index: int, flags: int) -> int:
        chans = self.config.serial(index) if serial else self.config.console(index)
        if not chans.exists:
            raise OSError(errno.ENODEV, "no such line")
        if not serial and index == 0 and self.console_fd() < 0:
            return chardev.open_console(None, 1, flags)    # umlpy's own descriptors
        line = self._line(f"ttyS{index}" if serial else f"tty{index}", chans)
        return os.open(f"/proc/self/fd/{line.slave}", flags)

    def add_nodes(self, devdir) -> None:
        """/dev/ttyN and /dev/ttySN for the lines that exist."""
        from umlpy.boot.channels import MAX_CONSOLES, MAX_SERIAL_LINES
        for serial, count, base, prefix in ((False, MAX_CONSOLES, 0, "tty"),
                                            (True, MAX_SERIAL_LINES, SERIAL_MINOR_BASE, "ttyS")):
            for i in range(count):
                chans = self.config.serial(i) if serial else self.config.console(i)
                if chans.exists:
                    try:
                        devdir.mknod(f"{prefix}{i}", stat.S_IFCHR | 0o620,
                                     os.makedev(TTY_MAJOR, base + i), 0, TTY_GID)
                    except FileExistsError:
                        pass

    def close(self) -> None:
        for line in list(self.lines.values()):
            line.close()
        self.lines.clear()


def _open_tty(kernel, minor: int, flags: int) -> int:
    consoles = getattr(kernel, "consoles", None)
    if consoles is None:
        raise OSError(errno.ENXIO, "no such device")
    if minor >= SERIAL_MINOR_BASE:
        return consoles.open_line(True, minor - SERIAL_MINOR_BASE, flags)
    return consoles.open_line(False, minor, flags)


def _open_console(kernel, minor: int, flags: int) -> int:
    consoles = getattr(kernel, "consoles", None)
    if consoles is None:
        return chardev.open_console(kernel, minor, flags)
    return consoles.open_line(False, 0, flags)


chardev.register_char(TTY_MAJOR, range(256), _open_tty)
chardev.register_char(TTYAUX_MAJOR, range(1, 2), _open_console)
