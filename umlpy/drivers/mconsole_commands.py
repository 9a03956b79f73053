"""mconsole commands: what the kernel must provide, and the dispatcher.

The kernel implements MconsoleHost; the dispatcher turns a command line
into calls on it and into an Answer (error flag, text segments, and an
action to run once the answer has been sent). Nothing here touches a
socket, so the command layer can be tested with a plain object.
"""
from __future__ import annotations

import logging
from dataclasses import dataclass, field
from typing import Callable, List, Optional, Protocol, Sequence, Tuple, Union

log = logging.getLogger("umlpy.mconsole")

Text = Union[str, bytes]


class MconsoleError(Exception):
    """The mconsole could not be set up or used (one line, for the user)."""


class MconsoleCommandError(Exception):
    """Raised by an MconsoleHost method: its text is sent back as "ERR <text>"."""

    def __init__(self, text: str) -> None:
        super().__init__(text)
        self.text = text


class MconsoleHost(Protocol):
    """What the kernel provides to the mconsole, one method per command.

    A method returns the answer text ("" for a bare OK) or raises
    MconsoleCommandError(text) for an ERR answer. With MconsoleServer.start()
    every call comes from the mconsole thread, one at a time; with
    poll_once() it comes from whichever thread calls poll_once().
    """

    def version(self) -> str:
        """uname fields "sysname nodename release version machine" (see format_version)."""

    def halt(self) -> None:
        """Power off cleanly. Called after "OK" has been sent; must not wait for the halt."""

    def reboot(self) -> None:
        """Reboot cleanly. Called after "OK" has been sent; must not wait for the reboot."""

    def cad(self) -> None:
        """Ctrl-Alt-Del: what the guest's init does on SIGINT (its ctrlaltdel action)."""

    def stop(self) -> None:
        """Freeze every guest task; the mconsole keeps being served until go()."""

    def go(self) -> None:
        """Thaw what stop() froze."""

    def sysrq(self, key: str) -> str:
        """Run the SysRq action for key (one character); its console output is the answer."""

    def config(self, spec: str) -> str:
        """Hot-plug "<dev>=<config>" (e.g. "ubd1=/path/img"), command-line syntax; "" if done."""

    def config_query(self, device: str) -> str:
        """A device's configuration, e.g. "ubd0" -> "cow,backing"."""

    def remove(self, device: str) -> Optional[str]:
        """Unplug a device; raise MconsoleCommandError("Device is currently open") when busy."""

    def log(self, text: str) -> None:
        """Append text to the kernel log as printk("%s") would: uml_mconsole sends the
        message and then a lone "\\n", so a line may arrive in pieces."""

    def proc(self, path: str) -> bytes:
        """The contents of the guest's /proc/<path>; MconsoleCommandError("Failed to open
        file") if it does not exist."""

    def stack(self, pid: int) -> str:
        """The kernel stack (our equivalent) of guest task pid; MconsoleCommandError
        ("Couldn't find that pid") if there is none."""

    def gdb(self, pid: int, port: int) -> str:
        """Start a gdb remote stub on 127.0.0.1:port for guest process pid (it stops
        when gdb connects); the answer says where. MconsoleCommandError if it cannot."""


def format_version(sysname: str, nodename: str, release: str, version: str, machine: str) -> str:
    """The answer to "version": the five uname fields separated by spaces, as UML prints them."""
    return " ".join((sysname, nodename, release, version, machine))


@dataclass
class Answer:
    """What to send back: err (0 = OK), text segments, and work for after the reply."""
    err: int = 0
    segments: List[bytes] = field(default_factory=list)
    after_reply: Optional[Callable[[], None]] = None

    @classmethod
    def ok(cls, text: Optional[Text] = b"",
           after_reply: Optional[Callable[[], None]] = None) -> "Answer":
        return cls(0, [_to_bytes(text)], after_reply)

    @classmethod
    def error(cls, text: Text) -> "Answer":
        return cls(1, [_to_bytes(text)])


def _to_bytes(text: Optional[Text]) -> bytes:
    if text is None:
        return b""
    if isinstance(text, str):
        return text.encode("utf-8", "surrogateescape")
    return bytes(text)


Handler = Callable[["Dispatcher", str], Answer]


@dataclass(frozen=True)
class Command:
    name: str
    usage: str          # shown by help, after the name
    summary: str
    handler: Handler


class Dispatcher:
    """Commands by name, the stop/go state, and the help text."""

    def __init__(self, host: MconsoleHost) -> None:
        self.host = host
        self.stopped = False

    def dispatch(self, line: bytes) -> Answer:
        """The answer to one command line; never raises."""
        text = line.decode("utf-8", "surrogateescape")
        # UML matches a command when the line starts with its name, with no
        # leading blanks and no word boundary ("versionx" is version)
        command = next((c for c in COMMANDS if text.startswith(c.name)), None)
        if command is None:
            return Answer.error("Unknown command")
        argument = text[len(command.name):]
        try:
            return command.handler(self, argument)
        except MconsoleCommandError as exc:
            return Answer.error(exc.text)
        except Exception as exc:            # a kernel bug answers ERR; the mconsole lives on
            log.exception("mconsole: %r failed", text)
            detail = str(exc).splitlines()[0] if str(exc) else ""
            return Answer.error(f"{command.name} failed: {type(exc).__name__}"
                                + (f": {detail}" if detail else ""))

    def help_text(self) -> str:
        lines = ["Commands:"]
        for command in COMMANDS:
            lines.extend(f"    {command.name}{u} - {s}" for u, s in _help_rows(command))
        return "\n".join(lines) + "\n"

    # handlers: (self, the text after the command name, as sent)

    def _version(self, _arg: str) -> Answer:
        return Answer.ok(self.host.version())

    def _help(self, _arg: str) -> Answer:
        return Answer.ok(self.help_text())

    def _halt(self, _arg: str) -> Answer:
        # answer first: halting may tear down the mconsole itself
        return Answer.ok("", after_reply=self.host.halt)

    def _reboot(self, _arg: str) -> Answer:
        return Answer.ok("", after_reply=self.host.reboot)

    def _config(self, arg: str) -> Answer:
        arg = arg.strip()
        if not arg:
            return Answer.error("config needs a device, or <device>=<configuration>")
        if "=" in arg:
            return Answer.ok(self.host.config(arg))
        return Answer.ok(self.host.config_query(arg))

    def _remove(self, arg: str) -> Answer:
        arg = arg.strip()
        if not arg:
            return Answer.error("remove needs a device")
        return Answer.ok(self.host.remove(arg))

    def _sysrq(self, arg: str) -> Answer:
        arg = arg.lstrip(" \t")
        if not arg:
            return Answer.error("sysrq needs a key")
        return Answer.ok(self.host.sysrq(arg[0]))

    def _cad(self, _arg: str) -> Answer:
        self.host.cad()
        return Answer.ok("")

    def _stop(self, _arg: str) -> Answer:
        if self.stopped:
            return Answer.error("Already stopped")
        self.host.stop()
        self.stopped = True
        return Answer.ok("stopped")

    def _go(self, _arg: str) -> Answer:
        if not self.stopped:
            return Answer.error("Not stopped")
        self.host.go()
        self.stopped = False
        return Answer.ok("")

    def _log(self, arg: str) -> Answer:
        # everything after "log ", blanks and newlines kept: a lone "\n"
        # ends the line uml_mconsole just sent
        self.host.log(arg[1:] if arg.startswith(" ") else arg)
        return Answer.ok("")

    def _proc(self, arg: str) -> Answer:
        path = arg.strip()
        if not path:
            return Answer.error("proc needs a file name")
        contents = _to_bytes(self.host.proc(path))
        # the "\n" chunk first, as UML sends it, so the text starts on its own line
        return Answer(0, [b"\n", contents])

    def _stack(self, arg: str) -> Answer:
        words = arg.split()
        pid = _parse_pid(words[0]) if words else None
        if pid is None:
            return Answer.error("stack needs a pid")
        return Answer.ok(self.host.stack(pid))

    def _gdb(self, arg: str) -> Answer:
        words = arg.split()
        pid = _parse_pid(words[0]) if words else None
        port = words[1] if len(words) == 2 else ""
        if pid is None or not port.isdigit() or int(port) > 65535:
            return Answer.error("gdb needs a pid and a TCP port (0: any free port)")
        return Answer.ok(self.host.gdb(pid, int(port)))


def _parse_pid(word: str) -> Optional[int]:
    try:
        pid = int(word, 0) if word.lower().startswith("0x") else int(word, 10)
    except ValueError:
        return None
    return pid if pid > 0 else None


def _help_rows(command: Command) -> Sequence[Tuple[str, str]]:
    if command.name == "config":
        return ((" <dev>=<config>", "Add a device, with the command line's syntax"),
                (" <dev>", "Show how a device is configured"))
    return ((command.usage, command.summary),)


COMMANDS: Tuple[Command, ...] = (
    Command("version", "", "Print the kernel's version", Dispatcher._version),
    Command("help", "", "Print this list", Dispatcher._help),
    Command("halt", "", "Shut the kernel down", Dispatcher._halt),
    Command("reboot", "", "Restart the kernel", Dispatcher._reboot),
    Command("config", "", "", Dispatcher._config),
    Command("remove", " <dev>", "Unplug a device", Dispatcher._remove),
    Command("sysrq", " <letter>", "Run the SysRq action for <letter>", Dispatcher._sysrq),
    Command("cad", "", "Act as if Ctrl-Alt-Del was pressed", Dispatcher._cad),
    Command("stop", "", "Freeze the guest until 'go'; only the mconsole answers", Dispatcher._stop),
    Command("go", "", "Resume the guest after 'stop'", Dispatcher._go),
    Command("log", " <text>", "Write <text> into the kernel log", Dispatcher._log),
    Command("proc", " <file>", "Print the guest's /proc/<file>", Dispatcher._proc),
    Command("stack", " <pid>", "Print the stack of guest task <pid>", Dispatcher._stack),
    Command("gdb", " <pid> <port>", "Serve gdb on 127.0.0.1:<port> for guest process <pid>",
            Dispatcher._gdb),
)
