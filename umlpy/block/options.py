"""The ubd command-line option, as UML spells it.

    ubd<N><flags>=<file>[,|:<backing>][,|:<serial>]

N is 0-15 or a letter a-p (``ubd0=`` and ``ubda=`` name the same device). Flags, in
any order and repeatable (at most six, as UML): r read-only, s synchronous (O_SYNC),
d data only (never a COW file; no second file allowed), c shared (no host file lock),
t no TRIM. With two files the first is the COW file and the second its backing file.
Either ',' or ':' separates the fields, so ``ubd0=root.cow:root_fs`` works too.

Every malformed option raises BlockError with one line naming the option.
"""
from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Dict, Iterable, Optional, Tuple

from .errors import BlockError

UBD_MAJOR = 98
MINORS_PER_DEVICE = 16          # ubda = 98:0, ubda1 = 98:1, ubdb = 98:16 ...
MAX_DEVICES = 16
MAX_FLAGS = 6                   # UML reads at most len("rscdt") + 1 flag characters
DEFAULT_ROOT_FILE = "root_fs"   # what UML opens as ubd0 when none is given
_FLAG_LETTERS = "rsdct"
_SEPARATORS = ",:"


@dataclass(frozen=True)
class UbdSpec:
    """One parsed ``ubd<N>`` option."""
    index: int
    file: str
    backing: Optional[str] = None
    serial: Optional[str] = None
    read_only: bool = False
    sync: bool = False
    data_only: bool = False
    shared: bool = False
    no_trim: bool = False

    @property
    def label(self) -> str:
        """The name UML's messages use: "ubd0"."""
        return f"ubd{self.index}"

    def config_string(self) -> str:
        """What mconsole ``config ubd<N>`` answers: "file" or "cow,backing"."""
        return f"{self.file},{self.backing}" if self.backing else self.file


def device_name(index: int) -> str:
    """0 -> "ubda" (the guest's /dev name)."""
    _check_index(index)
    return "ubd" + chr(ord("a") + index)


def device_numbers(index: int) -> Tuple[int, int]:
    """(major, minor) of the whole-disk node: 0 -> (98, 0), 1 -> (98, 16)."""
    _check_index(index)
    return UBD_MAJOR, MINORS_PER_DEVICE * index


def _check_index(index: int) -> None:
    if not 0 <= index < MAX_DEVICES:
        raise BlockError(f"ubd device number {index} out of range (0-{MAX_DEVICES - 1})")


def is_ubd_option(text: str) -> bool:
    """True for anything the ubd parser should see ("ubd0=...", "ubdbr=...")."""
    return text.startswith("ubd") and "=" in text


def _parse_unit(option: str, rest: str) -> Tuple[int, str]:
    """The device number at the front of `rest` and what follows it."""
    digits = len(rest) - len(rest.lstrip("0123456789"))
    if digits:
        index, rest = int(rest[:digits]), rest[digits:]
    elif rest[:1].isascii() and rest[:1].islower():
        index, rest = ord(rest[0]) - ord("a"), rest[1:]
    else:
        raise BlockError(f"{option}: missing device number after 'ubd' (0-15 or a-p)")
    if index >= MAX_DEVICES:
        raise BlockError(f"{option}: device number out of range (0-15 or a-p)")
    return index, rest


def parse_ubd_option(option: str) -> UbdSpec:
    """Parse one whole option, e.g. ``ubd1rc=cow.img,base.img``."""
    if not option.startswith("ubd"):
        raise BlockError(f"{option}: not a ubd option")
    index, rest = _parse_unit(option, option[3:])
    flags, eq, value = rest.partition("=")
    if not eq:
        raise BlockError(f"{option}: missing '='")
    for letter in flags:
        if letter not in _FLAG_LETTERS:
            raise BlockError(f"{option}: unknown flag {letter!r} "
                             "(expected '=' or one of r, s, d, c, t)")
    if len(flags) > MAX_FLAGS:
        raise BlockError(f"{option}: too many flags")
    fields = _split_fields(value)
    if len(fields) > 3:
        raise BlockError(f"{option}: too many fields (file, backing file, serial)")
    fields += [""] * (3 - len(fields))
    file, backing, serial = fields
    if not file:
        raise BlockError(f"{option}: empty file name")
    if "d" in flags and backing:
        raise BlockError(f"{option}: flag 'd' (data only) does not allow a backing file")
    return UbdSpec(index=index, file=file, backing=backing or None, serial=serial or None,
                   read_only="r" in flags, sync="s" in flags, data_only="d" in flags,
                   shared="c" in flags, no_trim="t" in flags)


def _split_fields(value: str) -> list:
    """Split at every ',' or ':' (UML's strsep with both separators)."""
    fields, start = [], 0
    for pos, ch in enumerate(value):
        if ch in _SEPARATORS:
            fields.append(value[start:pos])
            start = pos + 1
    fields.append(value[start:])
    return fields


def default_root_spec(cwd: Optional[str] = None) -> UbdSpec:
    """ubd0 when the command line names none: ``root_fs`` in the current directory
    (left relative when cwd is None, so it is opened where the kernel runs)."""
    path = os.path.join(cwd, DEFAULT_ROOT_FILE) if cwd else DEFAULT_ROOT_FILE
    return UbdSpec(index=0, file=path)


def collect_ubd_specs(options: Iterable[str], cwd: Optional[str] = None,
                      default_root: bool = True) -> Dict[int, UbdSpec]:
    """Every ubd option of a command line, by device index; a device given twice is an
    error (UML: "already configured"); ubd0 defaults to root_fs unless default_root
    is False."""
    specs: Dict[int, UbdSpec] = {}
    for option in options:
        if not is_ubd_option(option):
            continue
        spec = parse_ubd_option(option)
        if spec.index in specs:
            raise BlockError(f"{option}: {spec.label} is already configured")
        specs[spec.index] = spec
    if default_root and 0 not in specs:
        specs[0] = default_root_spec(cwd)
    return dict(sorted(specs.items()))
