"""mem=: the guest's memory size, reported and enforced.

Guest memory is host memory, so the limit is enforced the way a kernel out of
memory would: a watcher sums the resident memory of every guest process a few
times a second and, past the limit, kills the process with the most (never
init while another candidate exists), with the kernel's message on the
console. /proc/meminfo and sysinfo(2) report the limit as the total.
"""
from __future__ import annotations

import os
import signal
import threading
from typing import List, Optional, Tuple

from umlpy.host import procinfo
from umlpy.kernel.klog import KERN_ERR

PAGE_SIZE = os.sysconf("SC_PAGE_SIZE")
WATCH_INTERVAL = 0.1            # seconds between two looks


def group_memory(group) -> Tuple[int, int]:
    """(virtual, resident) bytes of a guest process (0, 0 if it is gone)."""
    try:
        fields = procinfo.read_proc_file(group.host_tgid, "statm").split()
        return int(fields[0]) * PAGE_SIZE, int(fields[1]) * PAGE_SIZE
    except (OSError, ValueError, IndexError):
        return 0, 0


def resident_total(kernel) -> int:
    return sum(group_memory(g)[1] for g in kernel.pids.live_groups())


class OomWatcher:
    def __init__(self, kernel, limit: int) -> None:
        self.kernel = kernel
        self.limit = limit
        self.kills = 0
        self._stop = threading.Event()
        self._thread: Optional[threading.Thread] = None

    def start(self) -> None:
        self._thread = threading.Thread(target=self._run, name="umlpy-oom", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=1)

    def _run(self) -> None:
        while not self._stop.wait(WATCH_INTERVAL):
            try:
                self.check()
            except Exception:           # the watcher must never take the kernel down
                continue

    def check(self) -> Optional[int]:
        """Kill the biggest guest process if the guest is over its limit; its guest pid."""
        k = self.kernel
        usage: List[tuple] = []
        for g in list(k.pids.live_groups()):
            vm, rss = group_memory(g)
            usage.append((rss, vm, g))
        if sum(u[0] for u in usage) <= self.limit:
            return None
        candidates = [u for u in usage if u[2] is not k.init] or usage
        rss, vm, victim = max(candidates, key=lambda u: u[0])
        try:
            os.kill(victim.host_tgid, signal.SIGKILL)
        except OSError:
            return None
        self.kills += 1
        k.kmsg.printk(f"Out of memory: Killed process {victim.tgid} ({victim.comm}) "
                      f"total-vm:{vm // 1024}kB, anon-rss:{rss // 1024}kB", KERN_ERR)
        return victim.tgid
