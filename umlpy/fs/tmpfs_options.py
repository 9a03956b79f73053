"""tmpfs mount options as mount(2) passes them ("size=64k,mode=755,uid=0")."""
from __future__ import annotations

import errno
import os
from typing import Dict

PAGE_SIZE = 4096
# accepted, but nothing to do here (memory policy, huge pages, quotas, ino width)
_IGNORED = ("inode64", "inode32", "huge", "mpol", "noswap", "ro", "rw", "quota",
            "usrquota", "grpquota", "usrquota_block_hardlimit", "usrquota_inode_hardlimit",
            "grpquota_block_hardlimit", "grpquota_inode_hardlimit")


def _einval(what: str) -> OSError:
    return OSError(errno.EINVAL, what)


def ram_bytes() -> int:
    return os.sysconf("SC_PHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")


def memparse(text: str) -> int:
    """Linux's size syntax: a number with an optional k/m/g/t/p/e suffix."""
    mult = 1
    suffix = text[-1:].lower()
    if suffix and suffix in "kmgtpe":
        mult = 1024 ** ("kmgtpe".index(suffix) + 1)
        text = text[:-1]
    try:
        value = int(text, 0) * mult
    except ValueError:
        raise _einval(f"bad size {text!r}") from None
    if value < 0:
        raise _einval(f"bad size {text!r}")
    return value


def parse(options: str) -> Dict[str, int]:
    """{"size": bytes, "nr_inodes": n, "mode": bits, "uid": n, "gid": n} for
    what the string sets; EINVAL for anything tmpfs would refuse."""
    out: Dict[str, int] = {}
    for opt in filter(None, (options or "").split(",")):
        key, _, val = opt.partition("=")
        try:
            if key == "size":
                out["size"] = (ram_bytes() * int(val[:-1]) // 100 if val.endswith("%")
                               else memparse(val))
            elif key == "nr_blocks":
                out["size"] = memparse(val) * PAGE_SIZE
            elif key == "nr_inodes":
                out["nr_inodes"] = memparse(val)
            elif key == "mode":
                out["mode"] = int(val, 8) & 0o7777
            elif key in ("uid", "gid"):
                out[key] = int(val)
                if out[key] < 0:
                    raise ValueError(val)
            elif key not in _IGNORED:
                raise _einval(f"unknown tmpfs option {key!r}")
        except ValueError:
            raise _einval(f"bad value for {key}") from None
    return out
