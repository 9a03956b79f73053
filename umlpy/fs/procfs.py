"""procfs: the guest's /proc.

Only guest processes appear, under their guest pids (procfs_pid.py); the
system-wide files are the host's counters with the guest's own process
counts, names and limits (procfs_text.py). Every file is a snapshot taken
at open (umlpy/fs/synthetic.py). Host data comes only through
umlpy/host/procinfo.py.

Uptime, btime and process start times are the host's: the guest reads
CLOCK_BOOTTIME and CLOCK_MONOTONIC natively through the vDSO, so a /proc
uptime of the guest's own would disagree with its clocks.
"""
from __future__ import annotations

import errno
import os
import weakref
from typing import Iterable, Optional, Tuple

import umlpy
from umlpy.fs import procfs_net
from umlpy.fs import procfs_text as text
from umlpy.fs.procfs_pid import CLK_TCK, SCOPE_PID, PidDir, ProcTarget, leader, pid_dir
from umlpy.fs.synthetic import StaticDir, SynthFs, fail, read_text
from umlpy.host import procinfo
from umlpy.kernel.task import PID_MAX
from umlpy.vfs.inode import Inode
from umlpy.vfs.namei import path_string

PROC_SUPER_MAGIC = 0x9FA0
NGROUPS_MAX = 65536
OVERFLOW_ID = 65534
PAGE_SIZE = os.sysconf("SC_PAGE_SIZE")
# what /proc/filesystems lists unless the VFS says otherwise (kernel.vfs.fs_types):
# (name, needs a block device)
DEFAULT_FS_TYPES: Tuple[Tuple[str, bool], ...] = (
    ("sysfs", False), ("tmpfs", False), ("proc", False), ("devtmpfs", False),
    ("devpts", False), ("overlay", False), ("hostfs", False), ("ext2", True))
# host sysctls shown as they are: limits a program sizes itself by
HOST_SYSCTLS = ("fs/file-max", "fs/nr_open", "vm/overcommit_memory", "vm/max_map_count")


def random_uuid() -> str:
    """A version-4 UUID as /proc/sys/kernel/random/uuid prints it (the uuid
    module would load libuuid at every start)."""
    b = bytearray(os.urandom(16))
    b[6] = b[6] & 0x0F | 0x40
    b[8] = b[8] & 0x3F | 0x80
    h = b.hex()
    return f"{h[:8]}-{h[8:12]}-{h[12:16]}-{h[16:20]}-{h[20:]}"


def uts_version() -> str:
    """uname's version field, as umlpy/syscalls/system.py reports it."""
    return f"#1 SMP umlpy {umlpy.__version__}"


class StartTimes:
    """Process start times, read once from the host and kept per group."""

    def __init__(self) -> None:
        self._cache: "weakref.WeakKeyDictionary" = weakref.WeakKeyDictionary()

    def get(self, fs, group, task) -> int:
        t = getattr(group, "start_time_ns", None)
        if t:
            return t
        t = self._cache.get(group)
        if t is not None:
            return t
        t = fs.boot_ns
        if task is not None and not group.zombie:
            try:
                raw = procinfo.read_proc_file(task.host_tid, "stat").decode()
                ticks = int(text.stat_field(raw, text.F_STARTTIME))
                t = fs.host_boot_ns() + ticks * 10**9 // CLK_TCK
            except (OSError, ValueError, IndexError):
                return t
        self._cache[group] = t
        return t


class ProcRoot(StaticDir):
    """/proc: the fixed entries, then one directory per guest process."""

    def child(self, name: str) -> Optional[Inode]:
        found = self.entries.get(name)
        if found is not None:
            return found
        return pid_dir(self.fs, self.fs.kernel, name)

    def children(self) -> Iterable[Tuple[str, Inode]]:
        out = list(self.entries.items())
        groups = sorted(self.fs.kernel.pids.groups.values(), key=lambda g: g.tgid)
        for g in groups:
            out.append((str(g.tgid), PidDir(ProcTarget(self.fs, g, leader(g), SCOPE_PID))))
        return out

    def nlink(self) -> int:
        return super().nlink() + len(self.fs.kernel.pids.groups)


class ProcFs(SynthFs):
    type_name = "proc"
    magic = PROC_SUPER_MAGIC

    def __init__(self, kernel) -> None:
        super().__init__(kernel)
        self.starts = StartTimes()
        self._host_boot_ns: Optional[int] = None
        self.boot_id = getattr(kernel, "boot_id", None) or random_uuid()
        self.root = ProcRoot(self, ino=1)
        self._build(self.root)

    # ---- the fixed tree ----
    def _build(self, r: StaticDir) -> None:
        r.add_link("self", self._self_link)
        r.add_link("thread-self", self._thread_self_link)
        r.add_link("mounts", "self/mounts")
        for name, gen in (("cpuinfo", self.gen_cpuinfo), ("meminfo", self.gen_meminfo),
                          ("uptime", self.gen_uptime), ("loadavg", self.gen_loadavg),
                          ("version", self.gen_version), ("stat", self.gen_stat),
                          ("filesystems", self.gen_filesystems), ("cmdline", self.gen_cmdline)):
            r.add_file(name, gen)
        k = self.kernel
        kern = r.makedirs("sys/kernel")
        for name, gen in (
                ("hostname", lambda: k.hostname + "\n"),
                ("domainname", lambda: k.domainname + "\n"),
                ("osrelease", lambda: umlpy.RELEASE + "\n"),
                ("ostype", lambda: "Linux\n"),
                ("version", lambda: uts_version() + "\n"),
                ("pid_max", lambda: f"{PID_MAX}\n"),
                ("ngroups_max", lambda: f"{NGROUPS_MAX}\n"),
                ("cap_last_cap", lambda: f"{text.CAP_LAST_CAP}\n"),
                ("overflowuid", lambda: f"{OVERFLOW_ID}\n"),
                ("overflowgid", lambda: f"{OVERFLOW_ID}\n")):
            kern.add_file(name, gen)
        procfs_net.add_net(self, r)
        rnd = kern.add_dir("random")
        rnd.add_file("boot_id", lambda: self.boot_id + "\n")
        rnd.add_file("uuid", lambda: random_uuid() + "\n")
        for name in HOST_SYSCTLS:
            d, _, leaf = name.rpartition("/")
            r.makedirs("sys/" + d).add_file(
                leaf, lambda n=name: read_text(lambda: procinfo.read_host_proc("sys/" + n)))

    def _self_link(self) -> str:
        cur = self.kernel.current
        if cur is None:
            raise fail(errno.ENOENT)        # no guest task asking: no "self"
        return str(cur.group.tgid)

    def _thread_self_link(self) -> str:
        cur = self.kernel.current
        if cur is None:
            raise fail(errno.ENOENT)
        return f"{cur.group.tgid}/task/{cur.tid}"

    # ---- helpers for the per-process files ----
    def path_text(self, p) -> str:
        """A Path as the calling task sees it (from its root); from the
        namespace's root when outside it, as Linux's d_path does."""
        cur = self.kernel.current
        table = self.kernel.vfs.mounts
        root = cur.fs.root if cur is not None else table.root_path()
        s = path_string(p, root)
        if s is None:
            s = path_string(p, table.root_path())
        return s or ""

    def host_boot_ns(self) -> int:
        if self._host_boot_ns is None:
            btime = 0
            for line in read_text(lambda: procinfo.read_host_proc("stat")).splitlines():
                if line.startswith("btime "):
                    btime = int(line.split()[1])
            self._host_boot_ns = btime * 10**9
        return self._host_boot_ns

    def start_ns(self, group, task) -> int:
        return self.starts.get(self, group, task)

    # ---- guest-wide counts ----
    def _states(self) -> Iterable[str]:
        """The host state letter of every live guest task (the caller is running)."""
        cur = self.kernel.current
        for t in list(self.kernel.pids.tasks.values()):
            if t is cur:
                yield "R"
                continue
            try:
                raw = procinfo.read_proc_file(t.host_tid, "stat").decode()
                yield text.split_stat(raw)[2][0]
            except (OSError, ValueError):
                continue

    def _resident_bytes(self) -> int:
        from umlpy.kernel.memory import resident_total
        return resident_total(self.kernel)

    def _last_pid(self) -> int:
        return max(self.kernel.pids.by_guest, default=0)

    # ---- system-wide files ----
    def gen_cpuinfo(self) -> str:
        return read_text(lambda: procinfo.read_host_proc("cpuinfo"))

    def gen_meminfo(self) -> str:
        limit = getattr(self.kernel, "mem_limit", None)
        host = read_text(lambda: procinfo.read_host_proc("meminfo"))
        return text.meminfo_text(host, limit, self._resident_bytes() if limit else 0)

    def gen_uptime(self) -> str:
        return read_text(lambda: procinfo.read_host_proc("uptime"))

    def gen_loadavg(self) -> str:
        states = list(self._states())
        return text.loadavg_text(read_text(lambda: procinfo.read_host_proc("loadavg")),
                                 sum(1 for s in states if s == "R"), len(states),
                                 self._last_pid())

    def gen_stat(self) -> str:
        states = list(self._states())
        forks = getattr(self.kernel, "nr_forks", None)
        return text.stat_text(read_text(lambda: procinfo.read_host_proc("stat")),
                              forks if forks is not None else self._last_pid(),
                              sum(1 for s in states if s == "R"),
                              sum(1 for s in states if s == "D"))

    def gen_version(self) -> str:
        return text.version_text(umlpy.RELEASE, uts_version())

    def gen_filesystems(self) -> str:
        types = getattr(self.kernel.vfs, "fs_types", None) or DEFAULT_FS_TYPES
        return text.filesystems_text(types)

    def gen_cmdline(self) -> str:
        return getattr(self.kernel, "cmdline", "") + "\n"
