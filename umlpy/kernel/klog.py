"""The kernel log: printk() lines in a ring buffer, as dmesg and syslog(2) read
them, and echoed to the boot console (unless `quiet`) the way Linux prints
messages of its console log level."""
from __future__ import annotations

import threading
import time
from collections import deque
from typing import Deque, Optional, TextIO, Tuple

KERN_EMERG, KERN_ALERT, KERN_CRIT, KERN_ERR, KERN_WARNING, KERN_NOTICE, KERN_INFO, \
    KERN_DEBUG = range(8)
LOG_BUF_LEN = 1 << 17               # bytes of formatted text kept, as CONFIG_LOG_BUF_SHIFT=17
DEFAULT_CONSOLE_LEVEL = 7           # print levels below this on the console


class KernelLog:
    def __init__(self, console: Optional[TextIO] = None, quiet: bool = False,
                 prefix: Optional[str] = None) -> None:
        """prefix: console lines start with it instead of a time stamp."""
        self.start = time.monotonic()
        self.records: Deque[Tuple[int, float, str]] = deque()
        self.size = 0
        self.read_pos = 0               # records consumed by syslog(SYSLOG_ACTION_READ)
        self.console = console
        # `quiet` is Linux's loglevel=4: only warnings and worse reach the console
        self.console_level = KERN_WARNING if quiet else DEFAULT_CONSOLE_LEVEL
        self.lock = threading.Lock()    # printk may come from the mconsole thread
        self.prefix = prefix

    def printk(self, text: str, level: int = KERN_INFO) -> None:
        stamp = time.monotonic() - self.start
        with self.lock:
            for line in text.splitlines() or [""]:
                self.records.append((level, stamp, line))
                self.size += len(line) + 16
            while self.size > LOG_BUF_LEN and self.records:
                _lvl, _t, old = self.records.popleft()
                self.size -= len(old) + 16
                self.read_pos = max(0, self.read_pos - 1)
        if self.console is not None and level < self.console_level:
            try:
                head = self.prefix if self.prefix is not None else f"[{stamp:12.6f}] "
                self.console.write("".join(f"{head}{line}\n" for line in text.splitlines() or [""]))
                self.console.flush()
            except (OSError, ValueError):
                pass

    def text(self, with_levels: bool = True, start: int = 0) -> str:
        """The buffer as syslog(2) gives it: "<6>[    0.000000] line\n" per record."""
        with self.lock:
            recs = list(self.records)[start:]
        return "".join((f"<{lvl}>" if with_levels else "") + f"[{t:12.6f}] {line}\n"
                       for lvl, t, line in recs)

    def unread(self) -> int:
        with self.lock:
            return len(self.records) - self.read_pos

    def clear(self) -> None:
        with self.lock:
            self.records.clear()
            self.size = 0
            self.read_pos = 0

