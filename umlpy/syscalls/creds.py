"""Credentials as the guest sees them. The guest starts as root; set*id calls
change only this view (the host user stays who it is), with Linux's rules."""
from __future__ import annotations

import errno
import struct

from umlpy.syscalls.call import Call
from umlpy.syscalls.registry import FAST, syscall

NGROUPS_MAX = 65536
KEEP = 0xFFFFFFFF           # (uid_t)-1: leave unchanged


def _u32(c: Call, i: int) -> int:
    return c.args[i] & 0xFFFFFFFF


def _done(c: Call) -> int:
    c.kernel.mirror(c.task)
    return 0


def _set_ids(c: Call, kind: str, r: int, e: int, s: int, allowed_r, allowed_e) -> int:
    cr = c.task.creds
    cur = [getattr(cr, "r" + kind), getattr(cr, "e" + kind), getattr(cr, "s" + kind)]
    priv = cr.privileged
    for new, allowed in ((r, allowed_r), (e, allowed_e), (s, cur)):
        if new != KEEP and not priv and new not in allowed:
            return -errno.EPERM
    nr, ne, ns = (cur[0] if r == KEEP else r, cur[1] if e == KEEP else e,
                  cur[2] if s == KEEP else s)
    setattr(cr, "r" + kind, nr)
    setattr(cr, "e" + kind, ne)
    setattr(cr, "s" + kind, ns)
    setattr(cr, "fs" + kind, ne)
    return _done(c)


@syscall("setuid", "setgid")
def sys_setuid(c: Call) -> int:
    kind = "uid" if c.nr == 105 else "gid"
    cr = c.task.creds
    new = _u32(c, 0)
    if new == KEEP:
        return -errno.EINVAL
    if cr.privileged:
        return _set_ids(c, kind, new, new, new, (), ())
    cur = (getattr(cr, "r" + kind), getattr(cr, "s" + kind))
    if new not in cur:
        return -errno.EPERM
    return _set_ids(c, kind, KEEP, new, KEEP, (), cur)


@syscall("setreuid", "setregid")
def sys_setreuid(c: Call) -> int:
    kind = "uid" if c.nr == 113 else "gid"
    cr = c.task.creds
    r, e = _u32(c, 0), _u32(c, 1)
    ids = (getattr(cr, "r" + kind), getattr(cr, "e" + kind), getattr(cr, "s" + kind))
    # the saved id follows the effective one when the real one is set, or the
    # effective one changes to something other than the old real id
    s = KEEP
    if r != KEEP or (e != KEEP and e != ids[0]):
        s = e if e != KEEP else ids[1]
    return _set_ids(c, kind, r, e, s, ids[:2], ids)


@syscall("setresuid", "setresgid")
def sys_setresuid(c: Call) -> int:
    kind = "uid" if c.nr == 117 else "gid"
    cr = c.task.creds
    ids = (getattr(cr, "r" + kind), getattr(cr, "e" + kind), getattr(cr, "s" + kind))
    r, e, s = _u32(c, 0), _u32(c, 1), _u32(c, 2)
    if not cr.privileged and s != KEEP and s not in ids:
        return -errno.EPERM
    return _set_ids(c, kind, r, e, s, ids, ids)


@syscall("getuid", "geteuid", "getgid", "getegid", mode=FAST)
def sys_getuid(c: Call) -> int:
    """Only reached when the accelerator does not answer (no entry for the
    task yet, or its fast path is off under --trace)."""
    field = {102: "ruid", 107: "euid", 104: "rgid", 108: "egid"}[c.nr]
    return getattr(c.task.creds, field)


@syscall("getresuid", "getresgid")
def sys_getresuid(c: Call) -> int:
    kind = "uid" if c.nr == 118 else "gid"
    cr = c.task.creds
    for i, field in enumerate(("r", "e", "s")):
        c.write(c.ptr(i), struct.pack("<I", getattr(cr, field + kind)))
    return 0


@syscall("setfsuid", "setfsgid")
def sys_setfsuid(c: Call) -> int:
    kind = "uid" if c.nr == 122 else "gid"
    cr = c.task.creds
    old = getattr(cr, "fs" + kind)
    new = _u32(c, 0)
    ids = (getattr(cr, "r" + kind), getattr(cr, "e" + kind), getattr(cr, "s" + kind), old)
    if new != KEEP and (cr.privileged or new in ids):
        setattr(cr, "fs" + kind, new)
        c.kernel.mirror(c.task)     # C checks permissions with the fs ids
    return old


@syscall("getgroups")
def sys_getgroups(c: Call) -> int:
    groups = c.task.creds.groups
    size = c.int(0)
    if size < 0:
        return -errno.EINVAL
    if size == 0:
        return len(groups)
    if size < len(groups):
        return -errno.EINVAL
    if groups:
        c.write(c.ptr(1), struct.pack(f"<{len(groups)}I", *groups))
    return len(groups)


@syscall("setgroups")
def sys_setgroups(c: Call) -> int:
    size = c.int(0)
    if not c.task.creds.privileged:
        return -errno.EPERM
    if size < 0 or size > NGROUPS_MAX:
        return -errno.EINVAL
    data = c.mem.read(c.ptr(1), 4 * size) if size else b""
    c.task.creds.groups = sorted(set(struct.unpack(f"<{size}I", data)))
    return _done(c)         # a new resolution context
