"""sysfs: the few files of /sys that guest tools read.

CPU topology (glibc's sysconf(_SC_NPROCESSORS_*) reads cpu/online and counts
cpu[0-9]* directories; nproc, python's os.cpu_count do the same), the
transparent hugepage mode (allocators read it), and the empty directories
tools expect to exist. Drivers add their entries with add_file()/add_dir()
(the ubd driver will fill /sys/block and /sys/class).
"""
from __future__ import annotations

from typing import Callable, List

from umlpy.fs.synthetic import StaticDir, SynthFs, Text, cpu_list, parse_cpu_list, read_text
from umlpy.host import procinfo

SYSFS_MAGIC = 0x62656572
CPU_DIR = "devices/system/cpu"


def _host_cpus(name: str) -> List[int]:
    """A host cpu list (online, possible, present); [0] when the host has none to show."""
    return parse_cpu_list(read_text(lambda: procinfo.read_host_sys(f"{CPU_DIR}/{name}"))) or [0]


class SysFs(SynthFs):
    type_name = "sysfs"
    magic = SYSFS_MAGIC

    def __init__(self, kernel) -> None:
        super().__init__(kernel)
        self.root = StaticDir(self, ino=1)
        self._build()

    def _build(self) -> None:
        cpu = self.root.makedirs(CPU_DIR)
        for name in ("online", "possible", "present"):
            cpu.add_file(name, lambda n=name: cpu_list(_host_cpus(n)) + "\n")
        cpu.add_file("kernel_max", lambda: read_text(
            lambda: procinfo.read_host_sys(f"{CPU_DIR}/kernel_max"), "8191\n"))
        online = set(_host_cpus("online"))
        for n in _host_cpus("possible"):
            d = cpu.add_dir(f"cpu{n}")
            if n != 0:                  # Linux has no online file for the boot cpu
                d.add_file("online", lambda n=n: "1\n" if n in online else "0\n")
        thp = self.root.makedirs("kernel/mm/transparent_hugepage")
        for name in ("enabled", "defrag"):
            thp.add_file(name, lambda n=name: read_text(
                lambda: procinfo.read_host_sys(f"kernel/mm/transparent_hugepage/{n}"),
                "always madvise [never]\n"))
        for path in ("fs/cgroup", "class", "block", "bus", "dev/char", "dev/block", "module",
                     "firmware", "power"):
            self.root.makedirs(path)

    # ---- for drivers ----
    def add_dir(self, path: str) -> StaticDir:
        """Create (or find) the directory at `path` (relative to /sys)."""
        return self.root.makedirs(path)

    def add_file(self, path: str, gen: Callable[[], Text], perm: int = 0o444) -> None:
        d, _, leaf = path.strip("/").rpartition("/")
        self.root.makedirs(d).add_file(leaf, gen, perm)

    def add_link(self, path: str, target: str) -> None:
        d, _, leaf = path.strip("/").rpartition("/")
        self.root.makedirs(d).add_link(leaf, target)

    def remove(self, path: str) -> None:
        d, _, leaf = path.strip("/").rpartition("/")
        self.root.makedirs(d).entries.pop(leaf, None)
