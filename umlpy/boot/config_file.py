"""coLinux-style boot configuration files, turned into boot options.

    # The root file system
    cobd0="/srv/vm/Debian-3.0r0.ext3.1gb"   # a trailing comment
    root=/dev/cobd0
    ro
    mem=64
    eth0=slirp

One option a line, ``name=value`` or a bare word (``ro``). Blank lines and comments
are skipped: a ``#`` at the start of a line or after white space, outside quotes
(``ubd0=disk#2`` keeps its ``#``). White space around ``=`` is allowed; a value with
spaces must be quoted, in "double" or 'single' quotes, which are removed; there are
no escapes, so Windows-style backslashes stay as written.

coLinux spellings are translated, each with a note for the user:
  cobd<N>=<file>    -> ubd<N>=<file>   (coLinux's block devices are our ubd devices)
  root=/dev/cobd<N> -> root=/dev/ubd<a+N>
  mem=<n>           -> mem=<n>M        (coLinux counts megabytes; a suffix is kept)
  kernel=<file>     dropped            (umlpy is the kernel)
Every other line is a boot option as on the command line and is checked on the spot,
so errors read ``colinux.conf:7: mem=12Q: expected a size like 256M``. A device given
twice in one file is an error; a scalar given twice keeps the last value.

The command line overrides the file option by option (``merge_options``);
``load_boot_config`` does it all from argv, with ``-c FILE`` / ``--config FILE`` as
colinux-daemon spells it.
"""
from __future__ import annotations

import os
import re
from typing import Dict, List, Optional, Sequence, Tuple

from umlpy.block.options import MAX_DEVICES, device_name

from .errors import BootOptionError
from .options import (BootConfig, INIT_SEPARATOR, check_option, option_key,
                      parse_boot_args, split_init_args)

_QUOTES = "\"'"
_COBD_ROOT = re.compile(r"/dev/cobd(\d+)\Z")
_DEVICE_KEY = re.compile(r"(ubd|eth)\d+\Z")
CONFIG_SWITCHES = ("-c", "--config")


def read_config_file(path: str) -> Tuple[List[str], List[str]]:
    """(options, notes) of the file at ``path``; BootOptionError if it cannot be read
    or a line is wrong."""
    try:
        with open(path, "rb") as f:
            data = f.read()
    except OSError as err:
        raise BootOptionError(f"{path}: cannot read the configuration file: "
                              f"{err.strerror}") from None
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError:
        raise BootOptionError(f"{path}: not a UTF-8 text file") from None
    return parse_config_text(text, path)


def parse_config_text(text: str, source: str = "<config>") -> Tuple[List[str], List[str]]:
    """The same as read_config_file for text already read; ``source`` names it in
    messages."""
    options: List[str] = []
    notes: List[str] = []
    device_lines: Dict[str, int] = {}
    text = text.lstrip("\ufeff")            # a BOM left by Windows editors
    for number, raw in enumerate(text.splitlines(), 1):
        where = f"{source}:{number}"
        try:
            written = _read_line(raw)
            if written is None:
                continue
            option, note = _translate(written)
            if note:
                notes.append(f"{where}: {note}")
            if option is None:
                continue
            _check_in_file(option, written)
        except BootOptionError as err:
            raise err.prefixed(where) from None
        key = option_key(option)
        if _DEVICE_KEY.match(key):
            if key in device_lines:
                raise BootOptionError(f"{where}: {written}: {key} is already configured "
                                      f"at line {device_lines[key]}")
            device_lines[key] = number
        options.append(option)
    return options, notes


def _read_line(raw: str) -> Optional[str]:
    """The option on one line, comment and quotes removed; None for nothing."""
    line = _strip_comment(raw).strip()
    if not line:
        return None
    name, eq, value = line.partition("=")
    name, value = name.strip(), value.strip()
    if any(ch.isspace() for ch in name):
        raise BootOptionError(f"{line}: one option a line")
    if not eq:
        return name
    if value and value[0] in _QUOTES:
        quote = value[0]
        if len(value) < 2 or not value.endswith(quote) or quote in value[1:-1]:
            raise BootOptionError(f"{line}: unterminated or misplaced {quote} quote")
        value = value[1:-1]
    elif any(ch.isspace() for ch in value):
        raise BootOptionError(f"{line}: one option a line (quote a value with spaces)")
    return f"{name}={value}"


def _strip_comment(line: str) -> str:
    """Cut at a '#' that starts the line or follows white space, outside quotes."""
    quote = None
    for pos, ch in enumerate(line):
        if quote:
            if ch == quote:
                quote = None
        elif ch in _QUOTES:
            quote = ch
        elif ch == "#" and (pos == 0 or line[pos - 1].isspace()):
            return line[:pos]
    return line


def _translate(option: str) -> Tuple[Optional[str], Optional[str]]:
    """(umlpy option or None to drop it, a note for the user or None)."""
    name, eq, value = option.partition("=")
    if name == "kernel" and eq:
        return None, f"{option} ignored: umlpy is the kernel"
    if name.startswith("cobd"):
        return f"ubd{name[4:]}{eq}{value}", None
    if name == "root":
        match = _COBD_ROOT.match(value)
        if match:
            index = int(match.group(1))
            if index >= MAX_DEVICES:
                raise BootOptionError(f"{option}: device number out of range "
                                      f"(0-{MAX_DEVICES - 1})")
            root = f"/dev/{device_name(index)}"
            return f"root={root}", f"{option} read as root={root}"
    if name == "mem" and value.isascii() and value.isdigit():
        return f"mem={value}M", f"{option} read as mem={value}M (coLinux counts megabytes)"
    return option, None


def _check_in_file(option: str, written: str) -> None:
    """check_option, naming the option as the file spells it (cobd0=, not ubd0=)."""
    if option.startswith("-"):
        raise BootOptionError(f"{option}: switches and init arguments go on the "
                              "command line")
    try:
        check_option(option)
    except BootOptionError as err:
        message = str(err)
        if message.startswith(option + ":"):
            message = written + message[len(option):]
        raise BootOptionError(message) from None


def split_config_switch(argv: Sequence[str]) -> Tuple[Optional[str], List[str]]:
    """(the file named by -c FILE / --config FILE / --config=FILE, the other words).
    Only words before "--" are looked at; at most one file."""
    options, init_args = split_init_args(argv)
    path: Optional[str] = None
    rest: List[str] = []
    words = iter(options)
    for word in words:
        if word in CONFIG_SWITCHES:
            value = next(words, None)
            if value is None:
                raise BootOptionError(f"{word}: missing file name")
        elif word.startswith("--config="):
            value = word.partition("=")[2]
        else:
            rest.append(word)
            continue
        if not value:
            raise BootOptionError(f"{word}: missing file name")
        if path is not None:
            raise BootOptionError(f"{word}: only one configuration file")
        path = value
    if init_args is not None:
        rest += [INIT_SEPARATOR] + init_args
    return path, rest


def load_boot_config(argv: Sequence[str]) -> Tuple[BootConfig, List[str]]:
    """(BootConfig, notes) for a whole command line, reading the configuration file it
    names with -c/--config; the command line overrides the file."""
    path, rest = split_config_switch(argv)
    options, _ = split_init_args(rest)
    if path is None or "--help" in options or "--version" in options:
        return parse_boot_args(rest), []      # help needs no (maybe broken) file
    file_options, notes = read_config_file(os.path.expanduser(path))
    return parse_boot_args(rest, file_options), notes
