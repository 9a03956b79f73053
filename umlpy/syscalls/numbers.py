"""x86-64 syscall numbers: the one place they live.

Names come from python-ptrace; its table mixes in the x32 numbers (512+), which
are dropped here, and stops at 440, so newer syscalls are listed by hand.
"""
from __future__ import annotations

import importlib.util
import os


def _python_ptrace_names() -> dict:
    """python-ptrace's x86-64 table, loaded on its own: importing it through
    `ptrace.syscall` runs that package's whole decoder (20 ms of every
    umlpy start-up) for a dict of names."""
    spec = importlib.util.find_spec("ptrace")
    if spec is None or not spec.submodule_search_locations:
        raise ImportError("python-ptrace is not installed (pip install python-ptrace)")
    path = os.path.join(list(spec.submodule_search_locations)[0], "syscall", "linux", "x86_64.py")
    table_spec = importlib.util.spec_from_file_location("_umlpy_ptrace_x86_64", path)
    module = importlib.util.module_from_spec(table_spec)
    table_spec.loader.exec_module(module)
    return module.SYSCALL_NAMES


SYSCALL_NAMES = _python_ptrace_names()

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
