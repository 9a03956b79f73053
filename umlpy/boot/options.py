"""The UML boot command line: ``umlpy ubd0=root_fs mem=256M init=/bin/sh ...``.

Pure parsing, no I/O: ``parse_boot_args(argv)`` returns a BootConfig or raises
BootOptionError with one line naming the option.

Which word goes where (our rule; Linux would hand every unknown word to init):

1. Everything after the first ``--`` is init's argv (after init's own name), verbatim.
2. Before ``--``, each word is one of:
   - a known option (see HELP); ``ubd*`` goes to umlpy.block's parser, ``con*`` and
     ``ssl*`` to channels.py;
   - a runlevel word for init (``single``, ``s``, ``S``, ``1``-``5``, ``emergency``,
     ``rescue``): appended to init's argv, as Linux does;
   - ``NAME=value`` with NAME an environment variable name in capitals
     (``[A-Z][A-Z0-9_]*``, e.g. ``TERM=vt100``): put in init's environment;
   - anything else (unknown lower-case ``key=value``, dotted module parameters,
     unknown bare words, unknown ``-switches``) is an error, so a typo such as
     ``quite`` or ``mem =256M`` never boots silently.
3. ``--help`` or ``--version`` anywhere before ``--`` wins: the rest is not checked.

Repeats: the last of a scalar option wins (``mem=``, ``root=``, ``rw``/``ro``...,
Linux's rule); a device given twice (``ubd0``, ``eth0``) is an error, as in UML;
con/ssl lines keep their last setting. ``merge_options`` lets a later source (the
command line) replace an earlier one (a configuration file) option by option.

Root: ``root=`` defaults to /dev/ubda, or /dev/root with ``rootfstype=hostfs``.
UML's implicit ``ubd0=root_fs`` (relative: opened where umlpy runs) is added only
when the root is ubd0; a root on another ubd device must have it configured.
The root is read-only unless ``rw`` (Linux's rule). ``mem=`` defaults to 64M, UML
6.1's default.
"""
from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Dict, List, Optional, Sequence, Tuple

from umlpy.block.errors import BlockError
from umlpy.block.options import UbdSpec, collect_ubd_specs, parse_ubd_option

from .channels import ChannelConfig, is_line_option, parse_line_option, resolve_channels
from .errors import BootOptionError

MiB = 1024 * 1024
DEFAULT_MEM = 64 * MiB          # UML 6.1's default physical memory
MIN_MEM = 16 * MiB
DEFAULT_ROOT = "/dev/ubda"
HOSTFS_ROOT = "/dev/root"       # root= when rootfstype=hostfs names no device
DEFAULT_UML_DIR = "~/.uml/"
MAX_UMID = 63                   # UML's limit, so <uml_dir>/<umid>/mconsole stays short
MAX_HOSTNAME = 64               # the kernel's __NEW_UTS_LEN
MAX_NET_DEVICES = 16
NET_TRANSPORTS = ("daemon", "ethertap", "mcast", "pcap", "slip", "slirp", "tuntap", "vde")
INIT_WORDS = frozenset({"single", "s", "S", "1", "2", "3", "4", "5", "emergency", "rescue"})
INIT_SEPARATOR = "--"

_SIZE = re.compile(r"(\d+)([KMGTkmgt]?)\Z")
_SIZE_SHIFT = {"": 0, "k": 10, "m": 20, "g": 30, "t": 40}
_ENV_NAME = re.compile(r"[A-Z][A-Z0-9_]*\Z")
_ETH = re.compile(r"eth(\d+)(=|\Z)")
_UBD_ROOT = re.compile(r"/dev/ubd([a-p])\d*\Z|/dev/ubd(\d+)\Z|(98):(\d+)\Z")

HELP = """\
umlpy [OPTION...] [-- INIT-ARGS...]   boot options, UML style
  ubd<N>[rsdct]=<file>[,<backing>]  block device N (0-15 or a-p); ubd0 defaults to root_fs
  mem=<n>[K|M|G|T]         guest memory (default 64M, at least 16M)
  root=<dev>               root device (default /dev/ubda)
  rootfstype=<fs>          root file system type (hostfs: root=/dev/root)
  rootflags=<opts>         root mount options (for hostfs: the host directory)
  ro | rw                  mount the root read-only (default) or read-write
  hostfs=<dir>             confine every hostfs mount to <dir>
  init=<path>              the first program (arguments after --)
  initrd=<file>            initial ramdisk image
  con[N]=<ch>[,<ch>]       console channels: fd:N null none port:N pty pts tty:<dev> xterm
  ssl[N]=<ch>[,<ch>]       serial line channels (same channels)
  eth<N>=<transport>,...   network device: slirp (the host's network, outbound); without
                           one the machine has only its own loopback (needs root)
  hostfwd=tcp::8080-:80    forward a host port into a machine without eth0 (also udp:)
  umid=<name>              instance name (mconsole socket <uml_dir>/<umid>/mconsole)
  uml_dir=<dir>            instance directory root (default ~/.uml/)
  mconsole=notify:<sock>   tell <sock> the mconsole path once ready
  hostname=<name>          the guest's host name
  quiet | noreboot         fewer boot messages | halt instead of rebooting
  NAME=value               environment variable for init (NAME in capitals)
  single | 1-5 | emergency | rescue   passed to init
  --help | --version
"""


@dataclass
class BootConfig:
    """Everything the boot command line says. Defaults are what an empty line means."""
    ubd: Dict[int, UbdSpec] = field(default_factory=dict)
    mem: int = DEFAULT_MEM                          # bytes
    root: str = DEFAULT_ROOT
    rootfstype: Optional[str] = None
    rootflags: Optional[str] = None
    read_only_root: bool = True                     # Linux: ro unless rw
    hostfs: Optional[str] = None
    init: Optional[str] = None                      # None: the usual /sbin/init search
    init_args: List[str] = field(default_factory=list)      # argv after argv[0]
    init_env: Dict[str, str] = field(
        default_factory=lambda: {"HOME": "/", "TERM": "linux"})   # Linux's initial env
    initrd: Optional[str] = None
    umid: Optional[str] = None                      # None: the boot picks a random one
    uml_dir: str = DEFAULT_UML_DIR                  # unexpanded, as given
    consoles: ChannelConfig = field(default_factory=ChannelConfig)
    net: Dict[int, str] = field(default_factory=dict)   # index -> "slirp", "tuntap,,,10.0.0.1"
    hostfwd: List[str] = field(default_factory=list)    # qemu-style port forwards, as given
    quiet: bool = False
    noreboot: bool = False
    mconsole_notify: Optional[str] = None           # socket path from mconsole=notify:<path>
    hostname: Optional[str] = None
    show_help: bool = False
    show_version: bool = False
    # The words as given, for the guest's /proc/cmdline; not part of the configuration.
    command_line: List[str] = field(default_factory=list, compare=False)

    @property
    def root_ubd_index(self) -> Optional[int]:
        """The ubd device holding the root, or None when the root is not on ubd."""
        return ubd_index_of_root(self.root) if self.rootfstype != "hostfs" else None

    def net_transport(self, index: int) -> str:
        """"slirp" for eth0=slirp."""
        return self.net[index].split(",", 1)[0]


def ubd_index_of_root(root: str) -> Optional[int]:
    """/dev/ubda, /dev/ubdb1, /dev/ubd0 or 98:16 -> the device index; else None."""
    match = _UBD_ROOT.match(root)
    if not match:
        return None
    letter, number, _major, minor = match.groups()
    if letter:
        return ord(letter) - ord("a")
    return int(number) if number is not None else int(minor) // 16


def parse_size(option: str, text: str) -> int:
    """"256M" -> bytes: decimal with an optional K/M/G/T suffix (powers of 1024); a bare
    number is bytes, as in Linux."""
    match = _SIZE.match(text)
    if not match:
        raise BootOptionError(f"{option}: expected a size like 256M")
    digits, suffix = match.groups()
    return int(digits) << _SIZE_SHIFT[suffix.lower()]


def split_init_args(argv: Sequence[str]) -> Tuple[List[str], Optional[List[str]]]:
    """(kernel options, init's arguments after "--" or None when there is no "--")."""
    words = list(argv)
    if INIT_SEPARATOR not in words:
        return words, None
    cut = words.index(INIT_SEPARATOR)
    return words[:cut], words[cut + 1:]


def option_key(option: str) -> str:
    """What an option sets: options with equal keys replace one another when merging
    ("ubd0=a" and "ubdar=b" -> "ubd0"; "rw" and "ro" -> "ro/rw"; "mem=1G" -> "mem")."""
    if option in ("ro", "rw"):
        return "ro/rw"
    if option.startswith("ubd"):
        try:
            return parse_ubd_option(option).label
        except BlockError:
            return option           # malformed: the parser reports it later
    if is_line_option(option):
        try:
            return parse_line_option(option).key
        except BootOptionError:
            return option
    eth = _ETH.match(option)
    if eth:
        return f"eth{int(eth.group(1))}"
    return option.partition("=")[0]


def merge_options(base: Sequence[str], override: Sequence[str]) -> List[str]:
    """``base`` (a configuration file) with every option that ``override`` (the command
    line) also sets removed, then ``override``; init arguments after "--" come from
    ``override`` when it has any, else from ``base``."""
    base_options, base_init = split_init_args(base)
    over_options, over_init = split_init_args(override)
    replaced = {option_key(option) for option in over_options}
    merged = [option for option in base_options if option_key(option) not in replaced]
    merged += over_options
    init_args = over_init if over_init is not None else base_init
    if init_args is not None:
        merged += [INIT_SEPARATOR] + init_args
    return merged


def parse_boot_args(argv: Sequence[str], file_options: Sequence[str] = ()) -> BootConfig:
    """The BootConfig for a command line (``argv`` without the program name), on top
    of ``file_options`` from a configuration file, which ``argv`` overrides."""
    words = merge_options(file_options, argv) if file_options else list(argv)
    options, after_separator = split_init_args(words)
    if "--help" in options or "--version" in options:
        return BootConfig(show_help="--help" in options, show_version="--version" in options,
                          command_line=words)
    config = BootConfig(command_line=words)
    ubd_options: List[str] = []
    line_options: List[str] = []
    for option in options:
        if option.startswith("ubd"):
            _check_ubd(option)
            ubd_options.append(option)
        elif is_line_option(option):
            parse_line_option(option)       # errors now, in command-line order
            line_options.append(option)
        else:
            _apply_option(config, option)
    config.init_args += after_separator or []
    _finish(config, ubd_options, line_options)
    return config


def check_option(option: str) -> None:
    """Raise BootOptionError if one option, alone, is unknown or malformed (a
    configuration file checks each line with it, to report file:line)."""
    if option == INIT_SEPARATOR:
        raise BootOptionError(f"{option}: init arguments go on the command line")
    if option.startswith("ubd"):
        _check_ubd(option)
    elif is_line_option(option):
        parse_line_option(option)
    elif option not in ("--help", "--version"):
        _apply_option(BootConfig(), option)


def _check_ubd(option: str) -> None:
    try:
        parse_ubd_option(option)
    except BlockError as err:
        raise BootOptionError(str(err)) from None


def _finish(config: BootConfig, ubd_options: List[str], line_options: List[str]) -> None:
    """The checks and defaults that need the whole line."""
    if config.rootfstype == "hostfs" and config.root == DEFAULT_ROOT:
        config.root = HOSTFS_ROOT
    root_index = config.root_ubd_index
    try:
        # UML's implicit ubd0=root_fs, only when it would be the root: a hostfs or
        # /dev/ubdb root must not depend on a stray root_fs file.
        config.ubd = collect_ubd_specs(ubd_options, default_root=root_index == 0)
    except BlockError as err:
        raise BootOptionError(str(err)) from None
    if root_index is not None and root_index not in config.ubd:
        raise BootOptionError(f"root={config.root}: ubd{root_index} is not configured "
                              f"(add ubd{root_index}=<file>)")
    config.consoles = resolve_channels(line_options)


def _apply_option(config: BootConfig, option: str) -> None:
    """Store one non-device option in config, or raise naming it."""
    key, eq, value = option.partition("=")
    if not eq:
        _apply_word(config, option)
        return
    handler = _VALUE_OPTIONS.get(key)
    if handler is not None:
        handler(config, option, value)
    elif _ETH.match(option):
        _apply_net(config, option, value)
    elif key in _FLAGS:
        raise BootOptionError(f"{option}: '{key}' takes no value")
    elif _ENV_NAME.match(key):
        config.init_env[key] = value
    else:
        raise BootOptionError(f"{option}: unknown option (init arguments go after '--', "
                              "init's environment as NAME=value)")


def _apply_word(config: BootConfig, word: str) -> None:
    flag = _FLAGS.get(word)
    if flag is not None:
        attribute, value = flag
        setattr(config, attribute, value)
    elif word in INIT_WORDS:
        config.init_args.append(word)
    elif word in _VALUE_OPTIONS:
        raise BootOptionError(f"{word}: missing '=<value>'")
    elif _ETH.match(word):
        raise BootOptionError(f"{word}: missing '=<transport>,...'")
    elif word.startswith("-"):
        raise BootOptionError(f"{word}: unknown switch (init arguments go after '--')")
    else:
        raise BootOptionError(f"{word}: unknown option (init arguments go after '--')")


_FLAGS = {
    "ro": ("read_only_root", True),
    "rw": ("read_only_root", False),
    "quiet": ("quiet", True),
    "noreboot": ("noreboot", True),
}


def _set_mem(config: BootConfig, option: str, value: str) -> None:
    size = parse_size(option, value)
    if size < MIN_MEM:
        hint = f" (did you mean {value}M?)" if value.isdigit() else ""
        raise BootOptionError(f"{option}: at least {MIN_MEM // MiB}M is needed{hint}")
    config.mem = size


def _nonempty(option: str, value: str) -> str:
    if not value:
        raise BootOptionError(f"{option}: empty value")
    if "\0" in value:          # only a config file can smuggle one in
        raise BootOptionError(f"{option}: NUL character in the value")
    return value


def _setter(attribute: str):
    def apply(config: BootConfig, option: str, value: str) -> None:
        setattr(config, attribute, _nonempty(option, value))
    return apply


def _set_umid(config: BootConfig, option: str, value: str) -> None:
    _nonempty(option, value)
    if "/" in value or value in (".", ".."):
        raise BootOptionError(f"{option}: a umid is a single directory name (no '/')")
    if len(value) > MAX_UMID:
        raise BootOptionError(f"{option}: longer than {MAX_UMID} characters")
    if not value.isprintable():
        raise BootOptionError(f"{option}: unprintable character")
    config.umid = value


def _set_hostname(config: BootConfig, option: str, value: str) -> None:
    _nonempty(option, value)
    if len(value) > MAX_HOSTNAME or "/" in value or not value.isprintable():
        raise BootOptionError(f"{option}: expected a host name of at most "
                              f"{MAX_HOSTNAME} printable characters")
    config.hostname = value


def _set_mconsole(config: BootConfig, option: str, value: str) -> None:
    kind, colon, path = value.partition(":")
    if kind != "notify" or not colon:
        raise BootOptionError(f"{option}: expected mconsole=notify:<socket path>")
    config.mconsole_notify = _nonempty(option, path)


def _apply_net(config: BootConfig, option: str, value: str) -> None:
    index = int(_ETH.match(option).group(1))    # type: ignore[union-attr]
    if index >= MAX_NET_DEVICES:
        raise BootOptionError(f"{option}: device number out of range "
                              f"(0-{MAX_NET_DEVICES - 1})")
    transport = value.split(",", 1)[0]
    if transport not in NET_TRANSPORTS:
        raise BootOptionError(f"{option}: unknown transport {transport!r} "
                              f"(expected one of {', '.join(NET_TRANSPORTS)})")
    if index in config.net:
        raise BootOptionError(f"{option}: eth{index} is already configured")
    config.net[index] = value


def _set_hostfwd(config: BootConfig, option: str, value: str) -> None:
    from umlpy.net.policy import NetError, parse_hostfwd
    try:
        parse_hostfwd(value)
    except NetError as e:
        raise BootOptionError(str(e)) from None
    config.hostfwd.append(value)


_VALUE_OPTIONS = {
    "hostfwd": _set_hostfwd,
    "mem": _set_mem,
    "root": _setter("root"),
    "rootfstype": _setter("rootfstype"),
    "rootflags": _setter("rootflags"),
    "hostfs": _setter("hostfs"),
    "init": _setter("init"),
    "initrd": _setter("initrd"),
    "umid": _set_umid,
    "uml_dir": _setter("uml_dir"),
    "mconsole": _set_mconsole,
    "hostname": _set_hostname,
}

__all__ = [
    "BootConfig", "DEFAULT_MEM", "HELP", "INIT_WORDS", "MIN_MEM",
    "NET_TRANSPORTS", "check_option", "merge_options", "option_key", "parse_boot_args",
    "parse_size", "split_init_args", "ubd_index_of_root",
]
