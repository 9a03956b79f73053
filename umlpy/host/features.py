"""Check, before anything starts, that this host can run guests; say what is missing."""
from __future__ import annotations

import os
from typing import List

MIN_KERNEL = (5, 14)    # SECCOMP_ADDFD_FLAG_SEND


def _kernel_version() -> tuple:
    parts = os.uname().release.split(".")
    try:
        return int(parts[0]), int("".join(ch for ch in parts[1] if ch.isdigit()) or 0)
    except (IndexError, ValueError):
        return (0, 0)


def problems() -> List[str]:
    """Human-readable reasons this host cannot run umlpy (empty when it can)."""
    out = []
    if os.uname().machine != "x86_64":
        out.append(f"umlpy runs on x86-64 hosts only (this is {os.uname().machine})")
    if _kernel_version() < MIN_KERNEL:
        out.append(f"Linux {MIN_KERNEL[0]}.{MIN_KERNEL[1]} or newer is needed "
                   f"(seccomp ADDFD_FLAG_SEND); this is {os.uname().release}")
    try:
        with open("/proc/sys/kernel/seccomp/actions_avail") as f:
            actions = f.read().split()
        for need in ("user_notif", "trace", "errno", "allow"):
            if need not in actions:
                out.append(f"the host's seccomp lacks the '{need}' action")
    except OSError:
        out.append("the host kernel has no seccomp filter support (CONFIG_SECCOMP_FILTER)")
    try:
        with open("/proc/sys/kernel/yama/ptrace_scope") as f:
            scope = int(f.read().strip() or 0)
        if scope >= 3:
            out.append("ptrace is disabled on this host (kernel.yama.ptrace_scope=3)")
    except (OSError, ValueError):
        pass
    if not hasattr(os, "memfd_create"):
        out.append("this Python lacks os.memfd_create")
    return out
