"""Mount-table tricks from guest root (mnt.c): the classic chroot escape (a
descriptor kept outside the chroot, fchdir, `..` climbing), bind mounts of
/proc/self/root, a fresh proc mount and its /proc/1/root, mount --move,
file system types that would reach the host, umount of /, and pivot_root
followed by a lazy umount of the old root.

The guest's root is a small busybox root (`--root DIR`); a host-only canary
lives outside it.  Each trick must end inside the guest root with the errno
Linux gives, and the canary must never be read or changed.

Attacks by class: mount 6 (chroot climb, bind /proc/self/root, proc
/proc/1/root, move, foreign fs types, umount /) + pivot_root 1 = 7.
"""
from __future__ import annotations

import re
from pathlib import Path

import pytest

from guestroot import describe, run_umlpy, umlpy_command
from hostcheck import ATTACKS, SECRET, build_probe

DEEP = "../" * 20
PASSWD = "OK:root:x:0:0:root:/root:/bin/sh"


@pytest.fixture(scope="module")
def mnt_root(tmp_path_factory) -> Path:
    return build_probe("mnt", tmp_path_factory)[1]


def mount_ops(c: str) -> "list[tuple[str, str, str]]":
    """(attack class, operation, what Linux answers) with the guest's / at the root
    directory and the canary (host path c) outside it."""
    return [
        # the classic chroot escape: a descriptor outside the new root
        ("chroot", "mkdir /tmp/jail", "OK"),
        ("chroot", "keep /", "OK"),
        ("chroot", "chroot /tmp/jail", "OK"),
        ("chroot", "fchdir", "OK"),
        ("chroot", "climb 64", "OK"),
        ("chroot", f"read {DEEP}{c}/secret", "ENOENT"),
        ("chroot", f"openat {DEEP}{c}/secret", "ENOENT"),
        ("chroot", "chroot .", "OK"),
        ("chroot", "read /etc/passwd", PASSWD),           # back at the guest's root, no further
        ("chroot", f"read {c}/secret", "ENOENT"),
        # bind mounts of the root through /proc's magic links
        ("bind", "mkdir /tmp/b", "OK"),
        ("bind", "mount /proc/self/root /tmp/b - bind", "OK"),
        ("bind", "read /tmp/b/etc/passwd", PASSWD),
        ("bind", f"read /tmp/b/{DEEP}{c}/secret", "ENOENT"),
        ("bind", f"read /tmp/b/{c}/secret", "ENOENT"),
        ("bind", "mount /proc/1/root /tmp/b - bind|rec", "OK"),
        ("bind", f"read /tmp/b/tmp/b/{DEEP}{c}/secret", "ENOENT"),
        # a proc of its own, and the roots it shows
        ("proc", "mkdir /tmp/p", "OK"),
        ("proc", "mount proc /tmp/p proc 0", "OK"),
        ("proc", "readlink /tmp/p/1/root", "OK:/"),
        ("proc", f"read /tmp/p/1/root/{c}/secret", "ENOENT"),
        ("proc", f"read /tmp/p/self/root/{DEEP}{c}/secret", "ENOENT"),
        ("proc", f"read /tmp/p/1/cwd/{DEEP}{c}/secret", "ENOENT"),
        # mount --move
        ("move", "mkdir /tmp/q", "OK"),
        ("move", "mount /tmp/p /tmp/q - move", "OK"),
        ("move", "ls /tmp/p", "OK:"),
        ("move", "readlink /tmp/q/1/root", "OK:/"),
        ("move", f"read /tmp/q/1/root/{c}/secret", "ENOENT"),
        ("move", "mount / /tmp/q - move", "EINVAL"),            # the root does not move
        ("move", "mount /tmp /tmp/q - move", "EINVAL"),         # not a mount point
        ("move", "mkdir /tmp/t", "OK"),
        ("move", "mount none /tmp/t tmpfs 0", "OK"),
        ("move", "mkdir /tmp/t/in", "OK"),
        ("move", "mount /tmp/t /tmp/t/in - move", "ELOOP"),     # below itself
        # file system types that would show the host: not in this kernel
        ("fstype", "mkdir /tmp/h", "OK"),
        ("fstype", "mount / /tmp/h hostfs 0 /", "ENODEV"),
        ("fstype", "mount none /tmp/h 9p 0 trans=virtio", "ENODEV"),
        ("fstype", f"mount {c} /tmp/h ext4 0", "ENOENT"),       # the device is a guest path
        ("fstype", f"mount /{DEEP}{c} /tmp/h - bind", "ENOENT"),
        ("fstype", f"read /tmp/h/secret", "ENOENT"),
        # umount of /: see umlpy/syscalls/mounts.py
        ("umount", "umount /", "EBUSY"),
        ("umount", "umount / detach", "EBUSY"),
        ("umount", "umount /tmp/jail", "EINVAL"),               # not a mount point
        # pivot_root: Linux's checks, then a new root with the old one below it
        ("pivot", "mkdir /tmp/new", "OK"),
        ("pivot", "pivot /tmp/new /tmp", "EBUSY"),              # new_root on the root mount
        ("pivot", "mount none /tmp/new tmpfs 0", "OK"),
        ("pivot", "mkdir /tmp/new/old", "OK"),
        ("pivot", "pivot /tmp/new /tmp", "EBUSY"),              # put_old on the root mount
        ("pivot", "pivot /tmp/new /tmp/nothere", "ENOENT"),
        ("pivot", "pivot /tmp/new /tmp/new/old", "OK"),
        ("pivot", "ls /", "OK:old"),
        ("pivot", "read /old/etc/passwd", PASSWD),
        ("pivot", f"read /old/{DEEP}{c}/secret", "ENOENT"),
        ("pivot", f"read {DEEP}{c}/secret", "ENOENT"),
        ("pivot", "umount /old detach", "OK"),                  # with /old/proc, /old/tmp/b...
        ("pivot", "read /old/etc/passwd", "ENOENT"),
        ("pivot", "climb 10", "OK"),
        ("pivot", "ls .", "OK:old"),
        ("pivot", f"read {DEEP}{c}/secret", "ENOENT"),
    ]


def test_mount_tricks_stay_inside_the_root(mnt_root, host):
    c = str(host.canary)
    ops = mount_ops(c)
    res = run_umlpy(umlpy_command(mnt_root, ["/bin/mnt"]), cwd=str(mnt_root), timeout=120,
                    input="".join(op + "\n" for _, op, _ in ops))
    for cls in sorted({cls for cls, _, _ in ops}):
        ATTACKS["pivot_root" if cls == "pivot" else "mount"] += 1
    got = {int(m.group(1)): m.group(2) for m in
           re.finditer(r"^(\d+) \S+ -> (.*)$", res.stdout, re.M)}
    bad = [f"  {i}: {op!r} want {want} got {got.get(i)}"
           for i, (_, op, want) in enumerate(ops, 1) if got.get(i) != want]
    assert not bad, "guest differs from Linux:\n" + "\n".join(bad) + describe(res)
    assert SECRET not in res.stdout + res.stderr, describe(res)
    assert res.returncode == 0 and "Traceback" not in res.stderr and "oops" not in res.stderr, \
        describe(res)
