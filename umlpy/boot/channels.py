"""Console and serial line channels: ``con[N]=`` and ``ssl[N]=``.

    con[N]=<channel>[,<channel>]      ssl[N]=<channel>[,<channel>]

One channel serves both directions; two are input then output
(``con0=fd:0,fd:1``). Channels: ``fd:N``, ``null`` (reads block, writes vanish),
``none`` (the line does not exist), ``port:N`` (telnet server), ``pty``, ``pts``,
``tty:/dev/X`` and ``xterm``. There is no ``file:`` channel.

Without N an option sets every line of its kind; a numbered option overrides it
for that line whatever their order on the command line. A line given twice keeps
its last setting (UML overwrites the line's configuration).

Lines: 16 consoles (con0-con15, the guest's tty0-tty15) and 64 serial lines
(ssl0-ssl63, ttyS0-ttyS63), UML's own counts.

Defaults, when nothing overrides them:
  con0      fd:0,fd:1   the boot console stays on umlpy's stdin/stdout, as in UML;
  con1-15   pts         UML's default is xterm, which opens windows and fails on a
                        headless host; pts keeps every console reachable
                        (``screen /dev/pts/N``, announced in the boot log) and
                        costs nothing until the guest opens the line;
  ssl0-63   pts         UML's default is the legacy BSD pty, absent from modern
                        hosts; pts is its working equivalent.
"""
from __future__ import annotations

import enum
import re
from dataclasses import dataclass, field
from typing import Dict, Iterable, List, Optional, Tuple

from .errors import BootOptionError

MAX_CONSOLES = 16
MAX_SERIAL_LINES = 64
MAX_PORT = 65535
MAX_FD = 2**31 - 1

_LINE_OPTION = re.compile(r"(con|ssl)(\d*)=(.*)\Z", re.DOTALL)
_LINE_PREFIX = re.compile(r"(con|ssl)\d*(=|\Z)")


class ChannelKind(str, enum.Enum):
    """What a line is attached to on the host (the value is the spelling)."""
    FD = "fd"
    NULL = "null"
    NONE = "none"
    PORT = "port"
    PTY = "pty"
    PTS = "pts"
    TTY = "tty"
    XTERM = "xterm"


_NEEDS_ARGUMENT = {ChannelKind.FD, ChannelKind.PORT, ChannelKind.TTY}


@dataclass(frozen=True)
class Channel:
    """One host channel; fd, port and path are set only for their own kind."""
    kind: ChannelKind
    fd: Optional[int] = None
    port: Optional[int] = None
    path: Optional[str] = None

    def spec(self) -> str:
        """The command-line spelling: "fd:0", "port:9000", "tty:/dev/tty3", "pts"."""
        if self.kind is ChannelKind.FD:
            return f"fd:{self.fd}"
        if self.kind is ChannelKind.PORT:
            return f"port:{self.port}"
        if self.kind is ChannelKind.TTY:
            return f"tty:{self.path}"
        return self.kind.value

    def __str__(self) -> str:
        return self.spec()


@dataclass(frozen=True, repr=False)
class LineChannels:
    """The channels of one line: where its input comes from, where output goes."""
    input: Channel
    output: Channel

    @property
    def exists(self) -> bool:
        """False for ``none``: the guest sees no such device (open gives ENODEV)."""
        return self.input.kind is not ChannelKind.NONE

    def spec(self) -> str:
        """"pts" when both directions share a channel, else "fd:0,fd:1"."""
        if self.input == self.output:
            return self.input.spec()
        return f"{self.input.spec()},{self.output.spec()}"

    def __repr__(self) -> str:
        return f"LineChannels({self.spec()!r})"


def _both(channel: Channel) -> LineChannels:
    return LineChannels(channel, channel)


DEFAULT_CONSOLE_ZERO = LineChannels(Channel(ChannelKind.FD, fd=0), Channel(ChannelKind.FD, fd=1))
DEFAULT_CONSOLE = _both(Channel(ChannelKind.PTS))
DEFAULT_SERIAL_LINE = _both(Channel(ChannelKind.PTS))


def parse_channel(text: str) -> Channel:
    """One channel, e.g. "fd:3"; BootOptionError carries the bare reason (the caller
    names the option)."""
    if not text:
        raise BootOptionError("empty channel")
    name, colon, argument = text.partition(":")
    try:
        kind = ChannelKind(name)
    except ValueError:
        known = ", ".join(k.value for k in ChannelKind)
        raise BootOptionError(f"unknown channel (expected one of {known})") from None
    if kind not in _NEEDS_ARGUMENT:
        if colon:
            raise BootOptionError(f"channel {name!r} takes no argument")
        return Channel(kind)
    if not argument:
        example = {"fd": "fd:0", "port": "port:9000", "tty": "tty:/dev/tty3"}[kind.value]
        raise BootOptionError(f"channel {name!r} needs an argument, e.g. {example}")
    if kind is ChannelKind.TTY:
        if not argument.startswith("/"):
            raise BootOptionError("expected an absolute host path, e.g. tty:/dev/tty3")
        return Channel(kind, path=argument)
    number = _number(argument)
    if kind is ChannelKind.FD:
        if number > MAX_FD:
            raise BootOptionError("file descriptor out of range")
        return Channel(kind, fd=number)
    if not 1 <= number <= MAX_PORT:
        raise BootOptionError(f"port out of range (1-{MAX_PORT})")
    return Channel(kind, port=number)


def _number(argument: str) -> int:
    if not argument.isascii() or not argument.isdigit():
        raise BootOptionError("expected a number after ':'")
    return int(argument)


def parse_line_spec(value: str) -> LineChannels:
    """The value of a con/ssl option: "pts" or "tty:/dev/tty2,xterm"."""
    parts = value.split(",")
    if len(parts) > 2:
        raise BootOptionError("at most two channels (input,output)")
    if len(parts) == 1:
        return _both(parse_channel(value))
    channels = []
    for part in parts:
        try:
            channels.append(parse_channel(part))
        except BootOptionError as err:     # say which of the two is wrong
            raise (err.prefixed(part) if part else err) from None
    line = LineChannels(*channels)
    if ChannelKind.NONE in (line.input.kind, line.output.kind) and line.input != line.output:
        # A line either exists or not; half a missing device means nothing.
        raise BootOptionError("'none' cannot be combined with another channel")
    return line


def is_line_option(option: str) -> bool:
    """True for anything the channel parser should see: "con=", "ssl3=", "con0"."""
    return _LINE_PREFIX.match(option) is not None


@dataclass(frozen=True)
class LineOption:
    """One parsed ``con[N]=`` / ``ssl[N]=`` option; index None means every line."""
    device: str                 # "con" or "ssl"
    index: Optional[int]
    channels: LineChannels

    @property
    def key(self) -> str:
        """"con" or "con3": options with the same key replace one another."""
        return self.device if self.index is None else f"{self.device}{self.index}"


def parse_line_option(option: str) -> LineOption:
    """Parse one whole option; every error names it: "con1=port:0: port out of range"."""
    match = _LINE_OPTION.match(option)
    if not match:
        raise BootOptionError(f"{option}: expected con[N]=<channel>[,<channel>] "
                              "or ssl[N]=<channel>[,<channel>]")
    device, number, value = match.groups()
    index = None
    if number:
        index = int(number)
        limit = MAX_CONSOLES if device == "con" else MAX_SERIAL_LINES
        if index >= limit:
            raise BootOptionError(f"{option}: line number out of range (0-{limit - 1})")
    if not value:
        raise BootOptionError(f"{option}: missing channel (e.g. {device}{number}=pts)")
    try:
        channels = parse_line_spec(value)
    except BootOptionError as err:
        raise err.prefixed(option) from None
    return LineOption(device, index, channels)


@dataclass(frozen=True, repr=False)
class ChannelConfig:
    """The resolved table: one LineChannels per console and per serial line."""
    consoles: Tuple[LineChannels, ...] = field(
        default=(DEFAULT_CONSOLE_ZERO,) + (DEFAULT_CONSOLE,) * (MAX_CONSOLES - 1))
    serial_lines: Tuple[LineChannels, ...] = field(
        default=(DEFAULT_SERIAL_LINE,) * MAX_SERIAL_LINES)

    def console(self, index: int) -> LineChannels:
        return self.consoles[index]

    def serial(self, index: int) -> LineChannels:
        return self.serial_lines[index]

    def __repr__(self) -> str:
        """Runs of equal lines folded: ChannelConfig(con0=fd:0,fd:1 con1-15=pts ...)."""
        runs = _runs("con", self.consoles) + _runs("ssl", self.serial_lines)
        return f"ChannelConfig({' '.join(runs)})"


def _runs(device: str, lines: Tuple[LineChannels, ...]) -> List[str]:
    runs: List[str] = []
    start = 0
    for index in range(1, len(lines) + 1):
        if index == len(lines) or lines[index] != lines[start]:
            span = f"{start}" if index - 1 == start else f"{start}-{index - 1}"
            runs.append(f"{device}{span}={lines[start].spec()}")
            start = index
    return runs


def resolve_channels(options: Iterable[str]) -> ChannelConfig:
    """Build the table from every con/ssl option, in any order (others are ignored):
    numbered options beat the general one, the last of equal keys wins."""
    settings: Dict[str, LineOption] = {}
    for option in options:
        if is_line_option(option):
            parsed = parse_line_option(option)
            settings[parsed.key] = parsed
    return ChannelConfig(
        consoles=_resolve("con", MAX_CONSOLES, settings, DEFAULT_CONSOLE_ZERO, DEFAULT_CONSOLE),
        serial_lines=_resolve("ssl", MAX_SERIAL_LINES, settings, DEFAULT_SERIAL_LINE,
                              DEFAULT_SERIAL_LINE))


def _resolve(device: str, count: int, settings: Dict[str, LineOption],
             first_default: LineChannels, default: LineChannels) -> Tuple[LineChannels, ...]:
    general = settings.get(device)
    lines = []
    for index in range(count):
        specific = settings.get(f"{device}{index}")
        if specific is not None:
            lines.append(specific.channels)
        elif general is not None:       # "Without N, all lines", line 0 included
            lines.append(general.channels)
        else:
            lines.append(first_default if index == 0 else default)
    return tuple(lines)
