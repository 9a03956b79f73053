"""procfs contents: Linux's text formats, rewritten for the guest.

Pure functions on text: the host's file in, the guest's file out. What the
guest may see (its pids, its credentials, its paths) is passed in by the
callers in procfs_pid.py and procfs.py; nothing here reads kernel or host
state, so every format is testable on a string.
"""
from __future__ import annotations

import sys
from typing import Callable, Dict, Iterable, List, Optional, Tuple

from umlpy.record import Record

STATES = {"R": "R (running)", "S": "S (sleeping)", "D": "D (disk sleep)", "T": "T (stopped)",
          "t": "t (tracing stop)", "X": "X (dead)", "Z": "Z (zombie)", "P": "P (parked)",
          "I": "I (idle)"}
CAP_LAST_CAP = 40                       # CAP_CHECKPOINT_RESTORE, Linux 5.9+
CAP_FULL = (1 << (CAP_LAST_CAP + 1)) - 1
NR_STAT_FIELDS = 52

# 1-based /proc/PID/stat fields
F_PID, F_COMM, F_STATE, F_PPID, F_PGRP, F_SESSION, F_TTY, F_TPGID = 1, 2, 3, 4, 5, 6, 7, 8
F_NUM_THREADS, F_STARTTIME = 20, 22
F_WCHAN = 35
# code/stack/data addresses Linux shows as 0 to a reader without ptrace access
ADDR_FIELDS = (26, 27, 28, 29, 30, 45, 46, 47, 48, 49, 50, 51)

# fdinfo lines after the generic four that say nothing about the host's tree
FDINFO_KEEP = ("eventfd-count", "eventfd-id", "eventfd-semaphore", "tfd", "pos", "sigmask",
               "clockid", "ticks", "settime flags", "it_value", "it_interval", "lock")


def state_text(letter: str) -> str:
    return STATES.get(letter, f"{letter} (unknown)")


def escape_comm(comm: str) -> str:
    """status's Name: Linux escapes backslash and newline."""
    return comm.replace("\\", "\\\\").replace("\n", "\\n")


# ---------------------------------------------------------------- stat
class StatView(Record):
    """What the guest is shown in a stat line instead of the host's ids."""
    __slots__ = _fields = ("pid", "comm", "state", "ppid", "pgrp", "session", "tpgid",
                           "hide_addrs")
    pid: int
    comm: str
    state: str                  # one letter
    ppid: int
    pgrp: int
    session: int
    tpgid: int
    hide_addrs: bool

    def __init__(self, pid: int, comm: str, state: str, ppid: int, pgrp: int, session: int,
                 tpgid: int = -1, hide_addrs: bool = False) -> None:
        self.pid = pid
        self.comm = comm
        self.state = state
        self.ppid = ppid
        self.pgrp = pgrp
        self.session = session
        self.tpgid = tpgid
        self.hide_addrs = hide_addrs


def split_stat(raw: str) -> Tuple[str, str, List[str]]:
    """"pid (comm) rest..." -> (pid, comm, [state, ppid, ...]); comm may hold ')' and spaces."""
    open_ = raw.index("(")
    close = raw.rindex(")")
    return raw[:open_].strip(), raw[open_ + 1:close], raw[close + 1:].split()


def rewrite_stat(raw: str, v: StatView) -> str:
    _pid, _comm, rest = split_stat(raw)
    fields = ["", ""] + rest            # fields[i-1] is field i
    fields[F_STATE - 1] = v.state
    fields[F_PPID - 1] = str(v.ppid)
    fields[F_PGRP - 1] = str(v.pgrp)
    fields[F_SESSION - 1] = str(v.session)
    fields[F_TPGID - 1] = str(v.tpgid)
    if v.hide_addrs:
        for i in ADDR_FIELDS + (F_WCHAN,):
            if i <= len(fields):
                fields[i - 1] = "0"
    return f"{v.pid} ({v.comm}) " + " ".join(fields[2:]) + "\n"


def synth_stat(v: StatView, start_ticks: int = 0, threads: int = 1) -> str:
    """A stat line made from the kernel's own knowledge (zombies, dead tasks)."""
    fields = ["0"] * NR_STAT_FIELDS
    fields[F_STATE - 1] = v.state
    fields[F_PPID - 1] = str(v.ppid)
    fields[F_PGRP - 1] = str(v.pgrp)
    fields[F_SESSION - 1] = str(v.session)
    fields[F_TPGID - 1] = str(v.tpgid)
    fields[F_NUM_THREADS - 1] = str(threads)
    fields[F_STARTTIME - 1] = str(start_ticks)
    fields[38 - 1] = "17"               # exit_signal: SIGCHLD
    return f"{v.pid} ({v.comm}) " + " ".join(fields[2:]) + "\n"


def stat_field(raw: str, n: int) -> str:
    """Field n (1-based, n >= 3) of a stat line."""
    return split_stat(raw)[2][n - 3]


# ---------------------------------------------------------------- status
class StatusView(Record):
    __slots__ = _fields = ("name", "state", "tgid", "pid", "ppid", "pgrp", "session", "umask",
                           "uids", "gids", "groups", "tracer", "cap_prm", "cap_eff", "cap_bnd",
                           "no_new_privs", "seccomp", "threads")
    name: str
    state: str                  # one letter
    tgid: int
    pid: int
    ppid: int
    pgrp: int
    session: int
    umask: int
    uids: Tuple[int, int, int, int]
    gids: Tuple[int, int, int, int]
    groups: List[int]
    tracer: int
    cap_prm: int
    cap_eff: int
    cap_bnd: int
    no_new_privs: int
    seccomp: int
    threads: int

    def __init__(self, name: str, state: str, tgid: int, pid: int, ppid: int, pgrp: int,
                 session: int, umask: int, uids: Tuple[int, int, int, int],
                 gids: Tuple[int, int, int, int], groups: Optional[List[int]] = None,
                 tracer: int = 0, cap_prm: int = 0, cap_eff: int = 0, cap_bnd: int = CAP_FULL,
                 no_new_privs: int = 0, seccomp: int = 0, threads: int = 1) -> None:
        self.name = name
        self.state = state
        self.tgid = tgid
        self.pid = pid
        self.ppid = ppid
        self.pgrp = pgrp
        self.session = session
        self.umask = umask
        self.uids = uids
        self.gids = gids
        self.groups = [] if groups is None else groups      # a fresh list per view
        self.tracer = tracer
        self.cap_prm = cap_prm
        self.cap_eff = cap_eff
        self.cap_bnd = cap_bnd
        self.no_new_privs = no_new_privs
        self.seccomp = seccomp
        self.threads = threads


def _ids(vals: Iterable[int]) -> str:
    return "\t".join(str(v) for v in vals)


def _status_ids(v: StatusView) -> Dict[str, str]:
    """The lines whose values the guest's kernel owns, keyed by name."""
    return {
        "Name": escape_comm(v.name),
        "Umask": f"{v.umask:04o}",
        "State": state_text(v.state),
        "Tgid": str(v.tgid),
        "Ngid": "0",
        "Pid": str(v.pid),
        "PPid": str(v.ppid),
        "TracerPid": str(v.tracer),
        "Uid": _ids(v.uids),
        "Gid": _ids(v.gids),
        "Groups": " ".join(str(g) for g in v.groups) + " ",
        "NStgid": str(v.tgid),
        "NSpid": str(v.pid),
        "NSpgid": str(v.pgrp),
        "NSsid": str(v.session),
        "CapInh": "0" * 16,
        "CapPrm": f"{v.cap_prm:016x}",
        "CapEff": f"{v.cap_eff:016x}",
        "CapBnd": f"{v.cap_bnd:016x}",
        "CapAmb": "0" * 16,
        "NoNewPrivs": str(v.no_new_privs),
        "Seccomp": str(v.seccomp),
        "Seccomp_filters": "1" if v.seccomp == 2 else "0",
    }


def rewrite_status(raw: str, v: StatusView) -> str:
    ours = _status_ids(v)
    out = []
    for line in raw.splitlines():
        key, sep, _val = line.partition(":")
        if sep and key in ours:
            out.append(f"{key}:\t{ours[key]}")
        else:
            out.append(line)
    return "\n".join(out) + "\n"


_SYNTH_ORDER = ("Name", "Umask", "State", "Tgid", "Ngid", "Pid", "PPid", "TracerPid", "Uid",
                "Gid", "FDSize", "Groups", "NStgid", "NSpid", "NSpgid", "NSsid", "Threads",
                "SigQ", "SigPnd", "ShdPnd", "SigBlk", "SigIgn", "SigCgt", "CapInh", "CapPrm",
                "CapEff", "CapBnd", "CapAmb", "NoNewPrivs", "Seccomp", "Seccomp_filters")


def synth_status(v: StatusView) -> str:
    """A status file from the kernel's knowledge alone (a zombie has no memory lines)."""
    ours = _status_ids(v)
    ours.update({"FDSize": "0", "Threads": str(v.threads), "SigQ": "0/0"})
    for k in ("SigPnd", "ShdPnd", "SigBlk", "SigIgn", "SigCgt"):
        ours[k] = "0" * 16
    return "".join(f"{k}:\t{ours[k]}\n" for k in _SYNTH_ORDER)


# ---------------------------------------------------------------- maps
MAPS_PATH_COLUMN = 73       # the name column of /proc/PID/maps on 64-bit Linux


def maps_line(prefix: str, name: str) -> str:
    """A maps line: the fixed fields, then the name padded to its column when there is one."""
    head = prefix + " "
    if name:
        head = head.ljust(MAPS_PATH_COLUMN) + name
    return head + "\n"


def rewrite_maps(raw: str, rename: Callable[[int, int, str], str]) -> str:
    """Each mapping's name passes through rename(st_dev, ino, host_name); the
    pseudo names ([heap], [stack], [vdso], [anon:x]...) and anonymous
    mappings stay as they are."""
    out = []
    for line in raw.splitlines():
        parts = line.split(None, 5)
        if len(parts) < 5:
            continue
        prefix = " ".join(parts[:5])
        name = parts[5] if len(parts) == 6 else ""
        if name and not name.startswith("["):
            maj, _, mnr = parts[3].partition(":")
            name = rename(_makedev(int(maj, 16), int(mnr, 16)), int(parts[4]), name)
        out.append(maps_line(prefix, name))
    return "".join(out)


def _makedev(major: int, minor: int) -> int:
    # os.makedev's encoding, written out so this module stays host-free
    return ((major & 0xfffff000) << 32) | ((major & 0xfff) << 8) | \
        ((minor & 0xffffff00) << 12) | (minor & 0xff)


# ---------------------------------------------------------------- fdinfo
def fdinfo_text(pos: int, flags: int, mnt_id: int, ino: int, host_text: str = "") -> str:
    """Linux's four generic lines, then the type-specific lines that are safe to show."""
    lines = [f"pos:\t{pos}", f"flags:\t0{flags:o}", f"mnt_id:\t{mnt_id}", f"ino:\t{ino}"]
    for line in host_text.splitlines():
        key = line.split(":", 1)[0].strip()
        if key in ("pos", "flags", "mnt_id", "ino"):
            continue
        if key in FDINFO_KEEP:
            lines.append(line)
    return "\n".join(lines) + "\n"


# ---------------------------------------------------------------- system files
def _meminfo_parse(text: str) -> List[Tuple[str, int, str]]:
    rows = []
    for line in text.splitlines():
        key, sep, rest = line.partition(":")
        if not sep:
            continue
        parts = rest.split()
        if not parts:
            continue
        rows.append((key, int(parts[0]), parts[1] if len(parts) > 1 else ""))
    return rows


_CACHE_LIKE = ("Buffers", "Cached", "SReclaimable")
_NOT_RAM = ("Swap", "Vmalloc", "Huge", "Commit", "DirectMap", "Hugetlb")


def meminfo_text(host: str, limit: Optional[int], used: int = 0) -> str:
    """The host's meminfo, or, with a mem= limit (bytes), one scaled to it:
    MemTotal is the limit, free memory what the guest's processes (`used`
    bytes resident) leave of it, and no RAM figure above the total."""
    rows = _meminfo_parse(host)
    if limit is not None:
        vals = {k: v for k, v, _u in rows}
        total = limit // 1024
        room = max(0, total - used // 1024)
        free = min(vals.get("MemFree", room), room)
        avail = min(vals.get("MemAvailable", room), room)
        budget = total - free           # what buffers and caches may claim
        new = {"MemTotal": total, "MemFree": free, "MemAvailable": avail}
        cache = {k: min(vals.get(k, 0), budget) for k in _CACHE_LIKE}
        s = sum(cache.values())
        if s > budget and s:
            cache = {k: v * budget // s for k, v in cache.items()}
        new.update(cache)
        rows = [(k, new[k] if k in new else
                 (v if k.startswith(_NOT_RAM) or u != "kB" else min(v, total)), u)
                for k, v, u in rows]
    return "".join(f"{k + ':':<15} {v:>8}{(' ' + u) if u else ''}\n" for k, v, u in rows)


def loadavg_text(host: str, running: int, total: int, last_pid: int) -> str:
    parts = host.split()
    avgs = " ".join(parts[:3]) if len(parts) >= 3 else "0.00 0.00 0.00"
    return f"{avgs} {running}/{total} {last_pid}\n"


def stat_text(host: str, processes: int, running: int, blocked: int) -> str:
    """/proc/stat: the host's cpu and interrupt counters, the guest's process counts."""
    ours = {"processes": processes, "procs_running": running, "procs_blocked": blocked}
    out = []
    for line in host.splitlines():
        key = line.split(" ", 1)[0]
        out.append(f"{key} {ours[key]}" if key in ours else line)
    return "\n".join(out) + "\n"


def version_text(release: str, version: str) -> str:
    return (f"Linux version {release} (umlpy@umlpy) "
            f"(Python {'.'.join(map(str, sys.version_info[:3]))}) {version}\n")


def filesystems_text(types: Iterable[Tuple[str, bool]]) -> str:
    """(name, needs a block device) pairs -> "nodev\\tproc" / "\\text2" lines."""
    return "".join(f"{'' if dev else 'nodev'}\t{name}\n" for name, dev in types)


def cgroup_text() -> str:
    """The unified hierarchy's root: the guest has one cgroup."""
    return "0::/\n"
