"""Resolution contexts: which tasks resolve a path alike (csrc/statpath.c).

What the kernel publishes for C about a path (its stat, or how a read-only
open of it is made) depends on the asking task's root, cwd and credentials
only: the VFS and its mounts are one namespace. Tasks alike in all three
share a context id, so an answer one of them published serves the others,
as each child of a shell's fork+exec loop finds ld.so's opens answered in C.

Ids are never reused. The kernel gives a task its id when it mirrors the
task into C (Kernel.mirror), which it does after every change of those three
(fork, set*id, setgroups, chdir, fchdir, chroot, pivot_root).
"""
from __future__ import annotations

from typing import Dict


class Contexts:
    """Interned (root, cwd, credentials) tuples -> small ids for C."""

    LIMIT = 1024        # keys hold cwd and root dentries alive: start over past this

    def __init__(self) -> None:
        self._ids: Dict[tuple, int] = {}
        self._next = 1      # 0 means "no context" to C

    def id_of(self, task) -> int:
        fs, c = task.fs, task.creds
        key = (fs.root.mount, fs.root.dentry, fs.cwd.mount, fs.cwd.dentry,
               c.ruid, c.euid, c.suid, c.fsuid, c.rgid, c.egid, c.sgid, c.fsgid,
               tuple(c.groups))
        ctx = self._ids.get(key)
        if ctx is None:
            if self._next > 0xFFFFFFFF:
                return 0    # ids ran out (C's are 32 bits): nothing published any more
            if len(self._ids) >= self.LIMIT:
                # Forgetting only costs sharing: a task keeps its id, and a
                # fresh id never matches an older context's answers.
                self._ids.clear()
            ctx = self._ids[key] = self._next
            self._next += 1
        return ctx
