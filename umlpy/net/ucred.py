"""Credentials carried by unix sockets (SO_PEERCRED, SCM_CREDENTIALS), as
the guest must see them: guest pids and the kernel's guest uids and gids.

The host stamps host ids: the pid of the guest process that called
(listen, socketpair, a native send), or the kernel's own pid when the kernel
connected or sent for a guest. For the latter the kernel keeps a ledger of
the guest credentials it acted with, by the socket it acted on (its inode,
and its host name for datagrams).
"""
from __future__ import annotations

import errno
import os
from collections import OrderedDict
from typing import Callable, Optional

from umlpy.record import FrozenRecord

OVERFLOW_ID = 65534             # /proc/sys/kernel/overflowuid: an id the guest has no name for
INVALID_ID = 0xFFFFFFFF
LEDGER_MAX = 4096               # sockets remembered (the oldest go first)


class Ucred(FrozenRecord):
    __slots__ = _fields = ("pid", "uid", "gid")
    pid: int
    uid: int
    gid: int

    def __init__(self, pid: int, uid: int, gid: int) -> None:
        object.__setattr__(self, "pid", pid)
        object.__setattr__(self, "uid", uid)
        object.__setattr__(self, "gid", gid)


UNKNOWN = Ucred(0, OVERFLOW_ID, OVERFLOW_ID)


def check_claim(creds, own_tgid: int, claim: Ucred, pid_exists: Callable[[int], bool]) -> None:
    """Linux's test of an SCM_CREDENTIALS a process sends: its own pid, any of
    its uids and gids; guest root (CAP_SYS_ADMIN, CAP_SETUID, CAP_SETGID) any."""
    root = creds.euid == 0
    if not (claim.pid == own_tgid or root) \
            or not (claim.uid in (creds.ruid, creds.euid, creds.suid) or root) \
            or not (claim.gid in (creds.rgid, creds.egid, creds.sgid) or root):
        raise OSError(errno.EPERM, "credentials not owned")
    if not pid_exists(claim.pid):
        raise OSError(errno.ESRCH, "no such process")
    if claim.uid == INVALID_ID or claim.gid == INVALID_ID:
        raise OSError(errno.EINVAL, "invalid id")


def of_task(task, effective: bool) -> Ucred:
    """What Linux stamps for a task: SO_PEERCRED the effective ids, a
    message the real ones."""
    c = task.creds
    return Ucred(task.group.tgid, c.euid if effective else c.ruid,
                 c.egid if effective else c.rgid)


class Ledger:
    """Guest credentials of the sockets the kernel connected or sent on."""

    def __init__(self) -> None:
        self._by_key: "OrderedDict[object, Ucred]" = OrderedDict()

    def record(self, key: object, cred: Ucred) -> None:
        self._by_key.pop(key, None)
        self._by_key[key] = cred
        while len(self._by_key) > LEDGER_MAX:
            self._by_key.popitem(last=False)

    def get(self, key: object) -> Optional[Ucred]:
        return self._by_key.get(key)


def to_guest(kernel, ledger: Ledger, host: Ucred, effective: bool,
             peer_keys: Callable[[], list]) -> Ucred:
    """A host-stamped ucred as the guest sees it. peer_keys() names the
    sending socket (ledger keys), asked only when the kernel itself sent."""
    if host.pid == 0:               # no peer (unconnected), or one outside every namespace
        return Ucred(0, _hidden(host.uid), _hidden(host.gid))
    if host.pid == os.getpid():
        for key in peer_keys():
            found = ledger.get(key)
            if found is not None:
                return found
        return UNKNOWN
    task = kernel.pids.tasks.get(host.pid)
    if task is None:
        tgid = kernel.pids.to_guest(host.pid)
        group = kernel.pids.groups.get(tgid) if tgid else None
        task = next(iter(group.threads.values()), None) if group is not None else None
    if task is None:                # a host process outside the instance
        return UNKNOWN
    return of_task(task, effective)


def _hidden(host_id: int) -> int:
    return host_id if host_id == INVALID_ID else OVERFLOW_ID
