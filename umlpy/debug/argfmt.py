"""strace-style text for one syscall's arguments and result.

Argument names and C types come from python-ptrace's prototype table; the
rendering (strings, flags, errors) follows what `strace` prints, so a trace of
umlpy reads like a trace of the host.
"""
from __future__ import annotations

import errno
import os
import resource
import signal
from typing import Callable, List, Optional

from ptrace.syscall.prototypes import FILENAME_ARGUMENTS, SYSCALL_PROTOTYPES

STR_LIMIT = 32          # strace's default -s
PATH_LIMIT = 4096
AT_FDCWD = -100
MASK64 = (1 << 64) - 1

RESTART_NAMES = {512: ("ERESTARTSYS", "To be restarted if SA_RESTART is set"),
                 513: ("ERESTARTNOINTR", "To be restarted"),
                 514: ("ERESTARTNOHAND", "To be restarted if no handler"),
                 516: ("ERESTART_RESTARTBLOCK", "Interrupted by signal")}

# names whose prototypes python-ptrace lacks or spells differently
EXTRA_PROTOTYPES = {
    "arch_prctl": ("long", (("int", "option"), ("unsigned long", "addr"))),
    "rseq": ("long", (("struct rseq *", "rseq"), ("u32", "rseq_len"), ("int", "flags"),
                      ("u32", "sig"))),
    "newfstatat": ("long", (("int", "dfd"), ("const char *", "filename"),
                            ("struct stat *", "statbuf"), ("int", "flag"))),
}

OPEN_FLAGS = ((os.O_APPEND, "O_APPEND"), (os.O_ASYNC, "O_ASYNC"), (os.O_CLOEXEC, "O_CLOEXEC"),
              (os.O_CREAT, "O_CREAT"), (os.O_DIRECT, "O_DIRECT"),
              (os.O_DIRECTORY, "O_DIRECTORY"), (os.O_DSYNC, "O_DSYNC"), (os.O_EXCL, "O_EXCL"),
              (os.O_LARGEFILE, "O_LARGEFILE"), (os.O_NOATIME, "O_NOATIME"),
              (os.O_NOCTTY, "O_NOCTTY"), (os.O_NOFOLLOW, "O_NOFOLLOW"),
              (os.O_NONBLOCK, "O_NONBLOCK"), (os.O_PATH, "O_PATH"), (os.O_TRUNC, "O_TRUNC"))
O_TMPFILE = 0o20000000 | os.O_DIRECTORY
PROT_FLAGS = ((1, "PROT_READ"), (2, "PROT_WRITE"), (4, "PROT_EXEC"))
MAP_FLAGS = ((0x01, "MAP_SHARED"), (0x02, "MAP_PRIVATE"), (0x10, "MAP_FIXED"),
             (0x20, "MAP_ANONYMOUS"), (0x100, "MAP_GROWSDOWN"), (0x800, "MAP_DENYWRITE"),
             (0x2000, "MAP_LOCKED"), (0x4000, "MAP_NORESERVE"), (0x8000, "MAP_POPULATE"),
             (0x20000, "MAP_STACK"), (0x100000, "MAP_FIXED_NOREPLACE"))
ACCESS_FLAGS = ((4, "R_OK"), (2, "W_OK"), (1, "X_OK"))
GRND_FLAGS = ((1, "GRND_NONBLOCK"), (2, "GRND_RANDOM"), (4, "GRND_INSECURE"))
ARCH_PRCTL = {0x1001: "ARCH_SET_GS", 0x1002: "ARCH_SET_FS", 0x1003: "ARCH_GET_FS",
              0x1004: "ARCH_GET_GS", 0x3001: "ARCH_CET_STATUS"}
RLIMITS = {getattr(resource, n): n for n in dir(resource) if n.startswith("RLIMIT_")}
ADDRESS_ARGS = {"addr", "brk", "start", "new_addr", "old_addr"}


def prototype(name: str) -> Optional[tuple]:
    return EXTRA_PROTOTYPES.get(name) or SYSCALL_PROTOTYPES.get(name)


def s64(v: int) -> int:
    v &= MASK64
    return v - (1 << 64) if v >> 63 else v


def s32(v: int) -> int:
    v &= 0xFFFFFFFF
    return v - (1 << 32) if v >> 31 else v


def quote(data: bytes, limit: int = STR_LIMIT, more: bool = False) -> str:
    """A C string literal the way strace writes one; "..." marks a cut."""
    cut = len(data) > limit
    out = ['"']
    for b in data[:limit]:
        ch = chr(b)
        if ch in '"\\':
            out.append("\\" + ch)
        elif ch == "\n":
            out.append("\\n")
        elif ch == "\t":
            out.append("\\t")
        elif ch == "\r":
            out.append("\\r")
        elif ch == "\v":
            out.append("\\v")
        elif ch == "\f":
            out.append("\\f")
        elif 0x20 <= b < 0x7F:
            out.append(ch)
        else:
            out.append(f"\\{b:o}")
    out.append('"')
    if cut or more:
        out.append("...")
    return "".join(out)


def bits(value: int, table: tuple, zero: str = "0") -> str:
    names = []
    for bit, name in table:
        if value & bit == bit and bit:
            names.append(name)
            value &= ~bit
    if value:
        names.append(hex(value))
    return "|".join(names) if names else zero


def open_flags(value: int) -> str:
    value &= 0xFFFFFFFF
    acc = value & os.O_ACCMODE
    head = {os.O_RDONLY: "O_RDONLY", os.O_WRONLY: "O_WRONLY", os.O_RDWR: "O_RDWR"}.get(acc, "3")
    rest = value & ~os.O_ACCMODE
    if rest & O_TMPFILE == O_TMPFILE:
        head += "|O_TMPFILE"
        rest &= ~O_TMPFILE
    tail = bits(rest, OPEN_FLAGS, "")
    return head + ("|" + tail if tail else "")


def pointer(v: int) -> str:
    return "NULL" if v == 0 else hex(v & MASK64)


def signame(sig: int) -> str:
    try:
        return signal.Signals(sig).name
    except ValueError:
        return str(sig)


def errname(code: int) -> str:
    return errno.errorcode.get(code, str(code))


def result(name: str, ret: Optional[int]) -> str:
    """The part after '= ' of a trace line."""
    if ret is None:
        return "?"
    ret = s64(ret)
    if -4095 <= ret < 0:
        code = -ret
        if code in RESTART_NAMES:
            sym, text = RESTART_NAMES[code]
            return f"? {sym} ({text})"
        return f"-1 {errname(code)} ({os.strerror(code)})"
    if name in ("mmap", "brk", "mremap", "shmat"):
        return hex(ret & MASK64)
    return str(ret)


class Formatter:
    """Renders a call's arguments. `read_str(addr, max)` and `read(addr, n)`
    read guest memory and raise OSError on a bad address."""

    def __init__(self, read: Callable[[int, int], bytes],
                 read_str: Callable[[int, int], bytes]) -> None:
        self.read = read
        self.read_str = read_str

    # ---- memory ----
    def string(self, addr: int, limit: int = PATH_LIMIT) -> str:
        if addr == 0:
            return "NULL"
        try:
            raw = self.read_str(addr, limit)
        except OSError:
            return hex(addr)
        return quote(raw, limit)

    def buffer(self, addr: int, length: int) -> str:
        if addr == 0:
            return "NULL"
        length = max(0, min(length, 1 << 20))
        try:
            data = self.read(addr, min(length, STR_LIMIT))
        except OSError:
            return hex(addr)
        return quote(data, STR_LIMIT, more=length > STR_LIMIT)

    def argv(self, addr: int) -> str:
        if addr == 0:
            return "NULL"
        items: List[str] = []
        try:
            for i in range(4096):
                p = int.from_bytes(self.read(addr + 8 * i, 8), "little")
                if p == 0:
                    break
                items.append(self.string(p))
        except OSError:
            return hex(addr)
        return "[" + ", ".join(items) + "]"

    def env_count(self, addr: int) -> str:
        if addr == 0:
            return "NULL"
        n = 0
        try:
            while n < 4096 and int.from_bytes(self.read(addr + 8 * n, 8), "little"):
                n += 1
        except OSError:
            return hex(addr)
        return f"{hex(addr)} /* {n} vars */"

    # ---- arguments ----
    def args_at_entry(self, name: str, args: list) -> List[Optional[str]]:
        """Text of each argument known at entry; None where it is only known at exit."""
        proto = prototype(name)
        if proto is None:
            return [hex(a & MASK64) for a in args[:6]]
        params = proto[1]
        out: List[Optional[str]] = []
        for i, (ctype, pname) in enumerate(params):
            out.append(self.one(name, i, ctype, pname, args))
        return out[: self._shown(name, args, len(out))]

    @staticmethod
    def _shown(name: str, args: list, count: int) -> int:
        """strace leaves out the mode of an open without O_CREAT."""
        if name in ("open", "openat"):
            flags = args[1 if name == "open" else 2]
            if not flags & os.O_CREAT and flags & O_TMPFILE != O_TMPFILE:
                return count - 1
        return count

    def one(self, name: str, i: int, ctype: str, pname: str, args: list) -> Optional[str]:
        v = args[i] & MASK64
        if name in ("read", "pread64", "readlink", "readlinkat", "getcwd", "recvfrom",
                    "getrandom") and ctype in ("char *", "void *"):
            return None                         # filled at exit, when we know the length
        if ctype == "const char *" and pname == "buf":
            return self.buffer(v, args[i + 1] & 0xFFFFFFFF)
        if "char *const" in ctype or "const char *const" in ctype:
            return self.env_count(v) if pname == "envp" else self.argv(v)
        if "char *" in ctype and (pname in FILENAME_ARGUMENTS or pname in ("pathname", "name")):
            return self.string(v)
        if pname in ("dirfd", "dfd", "olddfd", "newdfd", "fromfd", "todfd") and s32(v) == AT_FDCWD:
            return "AT_FDCWD"
        if pname == "flags" and name in ("open", "openat"):
            return open_flags(v)
        if ctype == "umode_t" or pname == "mode" and name in ("mkdir", "mkdirat", "chmod",
                                                               "fchmod", "fchmodat", "creat"):
            return "0%o" % (v & 0o7777) if v & 0o7777 else "000"
        if name in ("mmap", "mprotect") and pname == "prot":
            return bits(v, PROT_FLAGS, "PROT_NONE")
        if name == "mmap" and pname == "flags":
            return bits(v, MAP_FLAGS)
        if name == "mmap" and pname == "fd":
            return str(s32(v))
        if name == "arch_prctl":
            return ARCH_PRCTL.get(v, str(v)) if i == 0 else pointer(v)
        if name in ("prlimit64", "getrlimit", "setrlimit") and pname == "resource":
            return RLIMITS.get(v, str(v))
        if name == "getrandom" and pname == "flags":
            return bits(v, GRND_FLAGS)
        if name in ("access", "faccessat", "faccessat2") and pname == "mode":
            return bits(v, ACCESS_FLAGS, "F_OK")
        if name in ("kill", "tkill", "tgkill") and pname == "sig":
            return signame(v)
        if "*" in ctype or pname in ADDRESS_ARGS and ctype == "unsigned long":
            return pointer(v)
        if ctype.startswith("unsigned") or ctype in ("size_t", "u32", "u64"):
            return str(v & 0xFFFFFFFF) if ctype in ("unsigned int", "u32") else str(v)
        if ctype in ("int", "pid_t", "uid_t", "gid_t", "key_serial_t", "clockid_t"):
            return str(s32(v))
        return str(s64(v))

    def args_at_exit(self, name: str, args: list, early: List[Optional[str]],
                     ret: Optional[int]) -> List[str]:
        out = []
        for i, text in enumerate(early):
            if text is None:
                v = args[i] & MASK64
                n = s64(ret) if ret is not None else -1
                text = self.buffer(v, n) if n >= 0 else pointer(v)
            out.append(text)
        return out
