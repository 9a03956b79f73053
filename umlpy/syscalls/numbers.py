"""x86-64 syscall numbers: the one place they live.

Names come from python-ptrace; its table mixes in the x32 numbers (512+), which
are dropped here, and stops at 440, so newer syscalls are listed by hand.
"""
from __future__ import annotations

from ptrace.syscall import SYSCALL_NAMES

_NEWER = {
    441: "epoll_pwait2", 442: "mount_setattr", 443: "quotactl_fd",
    444: "landlock_create_ruleset", 445: "landlock_add_rule", 446: "landlock_restrict_self",
    447: "memfd_secret", 448: "process_mrelease", 449: "futex_waitv",
    450: "set_mempolicy_home_node", 451: "cachestat", 452: "fchmodat2",
    453: "map_shadow_stack", 454: "futex_wake", 455: "futex_wait", 456: "futex_requeue",
    457: "statmount", 458: "listmount", 459: "lsm_get_self_attr", 460: "lsm_set_self_attr",
    461: "lsm_list_modules", 462: "mseal", 463: "setxattrat", 464: "getxattrat",
    465: "listxattrat", 466: "removexattrat", 467: "open_tree_attr",
}

MAX_NR = 511    # numbers above this are x32 or unassigned: refused by the filter

NAMES: dict = {nr: n for nr, n in SYSCALL_NAMES.items() if nr < 512}
NAMES.update(_NEWER)
NAMES[283] = "timerfd_create"      # python-ptrace calls it "timerfd"
NR: dict = {name: nr for nr, name in NAMES.items()}
assert NR["read"] == 0 and NR["execveat"] == 322, "unexpected syscall table"


def name_of(nr: int) -> str:
    return NAMES.get(nr, f"syscall_{nr}")
