"""umlpy-mconsole: an mconsole client with uml_mconsole's command line and output.

    umlpy-mconsole [--uml-dir DIR] [--timeout SECONDS] UMID|SOCKET [COMMAND...]

One-shot with a command (the words are joined with spaces), interactive
without one. Each answer is printed as "OK <text>" or "ERR <text>" and the
exit status is the answer's error code (0 for OK), as uml_mconsole does.
Like uml_mconsole it looks for ~/.uml/<name>/mconsole, then
/tmp/uml/<name>/mconsole, then takes the name as a socket path; it makes
the file names of "config ubd<N>=..." absolute (the kernel does not share
our working directory), and sends "log <text>" in pieces followed by the
newline that ends the log line.

Local commands: quit, help (also lists these), switch <name>,
log -f <file>, mconsole-version, int (SIGINT to the kernel's pid).
"""
from __future__ import annotations

import importlib
import os
import signal
import socket
import sys
from dataclasses import dataclass
from typing import BinaryIO, Iterator, List, Optional, Sequence, Tuple

from umlpy.drivers.mconsole_proto import (
    CHUNK_TEXT_MAX, MCONSOLE_VERSION, RECV_BUFFER_SIZE, decode_reply, encode_request,
)

PROGRAM = "umlpy-mconsole"
SEARCH_DIRS = ("~/.uml", "/tmp/uml")
LOG_PIECE_MAX = 506                 # text per "log " request, as uml_mconsole cuts it
LOCAL_HELP = f"""\
Commands handled by {PROGRAM} itself:
    quit - Leave {PROGRAM}
    switch <umid|socket> - Talk to another kernel from now on
    log -f <file> - Send the contents of <file> to the kernel log
    mconsole-version - Print this client's protocol version
    int - Send SIGINT to the kernel
"""


class ClientError(Exception):
    """A problem to report on stderr (one line); the exit status is 1."""


@dataclass(frozen=True)
class Answer:
    err: int
    text: bytes
    raw: bool = False       # a bare-text answer (the server took us for a version 0 client)

    def render(self) -> bytes:
        if self.raw:
            return self.text + b"\n"
        return (b"ERR " if self.err else b"OK ") + self.text + b"\n"


def resolve_socket(name: str, uml_dir: Optional[str] = None) -> str:
    """The socket path for a umid or a path, searched like uml_mconsole does."""
    dirs = (uml_dir,) if uml_dir else SEARCH_DIRS
    candidates = [os.path.join(os.path.expanduser(d), name, "mconsole") for d in dirs]
    candidates.append(name)
    for candidate in candidates:
        if os.path.exists(candidate):
            return candidate
    raise ClientError(f"no mconsole socket for {name!r} (looked for {', '.join(candidates)})")


def absolutize_config(command: str) -> str:
    """Make the COW and backing file names of "config ubd<N>=..." absolute."""
    if not command.startswith("config"):
        return command
    rest = command[len("config"):]
    spec = rest.lstrip(" \t")
    if not spec.startswith("ubd") or "=" not in spec:
        return command
    device, _, value = spec.partition("=")
    files = value.split(",")
    for index in range(min(2, len(files))):     # a third field is the serial, not a file
        files[index] = _absolute(files[index])
    return command[:len(command) - len(spec)] + device + "=" + ",".join(files)


def _absolute(path: str) -> str:
    if path.startswith("/"):
        return path
    directory, name = os.path.split(path)
    directory = directory or "."
    if not os.path.isdir(directory):
        print(f"{PROGRAM}: {directory}: no such directory; sending {path!r} as it is",
              file=sys.stderr)
        return path
    return os.path.join(os.path.realpath(directory), name)


class MconsoleClient:
    """One client socket talking to one mconsole."""

    def __init__(self, socket_path: str, timeout: Optional[float] = None) -> None:
        self.socket_path = socket_path
        self._sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self._sock.bind("")            # autobind: a unique abstract address to be answered at
        self._sock.settimeout(timeout)

    def close(self) -> None:
        self._sock.close()

    def __enter__(self) -> "MconsoleClient":
        return self

    def __exit__(self, *_exc: object) -> None:
        self.close()

    def request(self, command: bytes) -> Answer:
        """Send one command and collect every chunk of its answer."""
        try:
            self._sock.sendto(encode_request(command), self.socket_path)
        except OSError as exc:
            raise ClientError(f"sending to {self.socket_path}: {exc.strerror or exc}") from None
        parts: List[bytes] = []
        err = 0
        while True:
            try:
                datagram = self._sock.recv(RECV_BUFFER_SIZE)
            except socket.timeout:
                raise ClientError(f"no answer from {self.socket_path}") from None
            except OSError as exc:
                raise ClientError(f"reading from {self.socket_path}: {exc.strerror}") from None
            try:
                reply = decode_reply(datagram)
            except ValueError:
                return Answer(1, datagram.rstrip(b"\0"), raw=True)
            parts.append(reply.data)
            # UML flags an error on the first chunk, umlpy on every chunk
            err = err or reply.err
            if not reply.more:
                return Answer(err, b"".join(parts))


def log_requests(text: bytes) -> Iterator[bytes]:
    """The "log" requests for text: pieces that fit, then the newline ending the line."""
    for start in range(0, len(text), LOG_PIECE_MAX):
        yield b"log " + text[start:start + LOG_PIECE_MAX]
    yield b"log \n"


def file_log_requests(contents: bytes) -> Iterator[bytes]:
    for start in range(0, len(contents), LOG_PIECE_MAX):
        yield b"log " + contents[start:start + LOG_PIECE_MAX]


class Session:
    """Runs command lines, local ones included, printing answers to out."""

    def __init__(self, name: str, uml_dir: Optional[str], timeout: Optional[float],
                 out: BinaryIO) -> None:
        self.uml_dir = uml_dir
        self.timeout = timeout
        self.out = out
        self.name = name
        self.socket_path = resolve_socket(name, uml_dir)
        self.quit = False

    def run(self, line: str) -> int:
        """Run one command line; its exit status."""
        line = line.rstrip()
        # like uml_mconsole, a line with leading blanks is never a local command
        word, _, rest = line.partition(" ")
        rest = rest.strip()
        if word == "quit":
            self.quit = True
            return 0
        if word == "mconsole-version":
            self._print(f"{PROGRAM} client version {MCONSOLE_VERSION}\n".encode())
            return 0
        if word == "switch":
            return self._switch(rest)
        if word == "int":
            return self._interrupt()
        if line.startswith("log"):
            return self._log(line[len("log"):].lstrip())
        if len(line.encode()) > CHUNK_TEXT_MAX:
            print(f"{PROGRAM}: command cut to {CHUNK_TEXT_MAX} bytes", file=sys.stderr)
        status = self._send([absolutize_config(line).encode("utf-8", "surrogateescape")])
        if word == "help":
            self._print(LOCAL_HELP.encode())
        return status

    def _send(self, commands: Sequence[bytes]) -> int:
        status = 0
        with MconsoleClient(self.socket_path, self.timeout) as client:
            for command in commands:
                answer = client.request(command)
                self._print(answer.render())
                status = answer.err if answer.err else status
        return status

    def _log(self, text: str) -> int:
        if text.startswith("-f"):
            file_name = text[2:].strip()
            try:
                with open(file_name, "rb") as log_file:
                    contents = log_file.read()
            except OSError as exc:
                raise ClientError(f"log -f {file_name}: {exc.strerror}") from None
            return self._send(list(file_log_requests(contents)))
        return self._send(list(log_requests(text.encode("utf-8", "surrogateescape"))))

    def _switch(self, name: str) -> int:
        if not name:
            raise ClientError("switch needs a umid or a socket path")
        self.socket_path = resolve_socket(name, self.uml_dir)
        self.name = name
        self._print(f"Switched to '{self.socket_path}'\n".encode())
        return 0

    def _interrupt(self) -> int:
        pid_file = os.path.join(os.path.dirname(self.socket_path), "pid")
        try:
            with open(pid_file) as f:
                pid = int(f.read(32).strip())
        except (OSError, ValueError):
            raise ClientError(f"cannot read the kernel's pid from {pid_file}; "
                              "no SIGINT sent") from None
        try:
            os.kill(pid, signal.SIGINT)
        except OSError as exc:
            raise ClientError(f"SIGINT to pid {pid}: {exc.strerror}") from None
        return 0

    def _print(self, data: bytes) -> None:
        self.out.write(data)
        self.out.flush()

    @property
    def prompt(self) -> str:
        return f"({self.name}) "


def _interactive(session: Session) -> int:
    tty = sys.stdin.isatty()
    if tty:
        try:                            # line editing and history for input()
            importlib.import_module("readline")
        except ImportError:
            pass
    while not session.quit:
        try:
            if tty:
                line = input(session.prompt)
            else:
                # echo like a terminal would, so a piped session reads as a transcript
                session._print(session.prompt.encode())
                line = sys.stdin.readline()
                if not line:
                    raise EOFError
                session._print(line.encode() if line.endswith("\n") else line.encode() + b"\n")
        except EOFError:
            if tty:
                session._print(b"\n")
            return 0
        except KeyboardInterrupt:
            session._print(b"\n")
            continue
        try:
            session.run(line)
        except ClientError as exc:
            print(f"{PROGRAM}: {exc}", file=sys.stderr)
    return 0


def _parse_options(argv: List[str]) -> Tuple[Optional[str], Optional[float], List[str]]:
    uml_dir: Optional[str] = None
    timeout: Optional[float] = None
    while argv and argv[0].startswith("--"):
        option = argv.pop(0)
        name, has_value, value = option.partition("=")
        if name in ("--uml-dir", "--timeout"):
            if not has_value:
                if not argv:
                    raise ClientError(f"{name} needs a value")
                value = argv.pop(0)
            if name == "--uml-dir":
                uml_dir = value
            else:
                try:
                    timeout = float(value)
                except ValueError:
                    raise ClientError(f"--timeout {value!r} is not a number") from None
        elif option == "--":
            break
        else:
            raise ClientError(f"unknown option {option}")
    return uml_dir, timeout, argv


USAGE = f"usage: {PROGRAM} [--uml-dir DIR] [--timeout SECONDS] UMID|SOCKET [COMMAND...]"


def main(argv: Optional[Sequence[str]] = None) -> int:
    args = list(sys.argv[1:] if argv is None else argv)
    if args and args[0] in ("-h", "--help"):
        print(USAGE)
        print()
        print(__doc__.split("\n\n", 2)[2].rstrip())
        return 0
    try:
        uml_dir, timeout, args = _parse_options(args)
        if not args:
            print(USAGE, file=sys.stderr)
            return 1
        session = Session(args[0], uml_dir, timeout, sys.stdout.buffer)
        if len(args) == 1:
            return _interactive(session)
        return session.run(" ".join(args[1:]))
    except ClientError as exc:
        print(f"{PROGRAM}: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 130
