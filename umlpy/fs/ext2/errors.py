"""The two ways the ext2 layer reports a broken image.

Mount-time problems (bad superblock, descriptors, unsupported features) raise
Ext2Error, an OSError with errno EINVAL or EUCLEAN and a one-line message.
Corruption met later, while reading or walking metadata, raises a plain
OSError(EIO) so callers treat it like a failing disk.
"""
from __future__ import annotations

import errno


class Ext2Error(OSError):
    """The image cannot be mounted (or cannot be mounted the way asked)."""

    def __init__(self, message: str, err: int = errno.EINVAL) -> None:
        super().__init__(err, message)
        self.message = message

    def __str__(self) -> str:
        return self.message


def corrupt(message: str) -> OSError:
    """An EIO for metadata found broken at run time ("ext2: ..." prefixed)."""
    return OSError(errno.EIO, "ext2: " + message)


def fail(err: int, what: str = "") -> OSError:
    """An OSError for an ordinary refusal (ENOENT, EEXIST, ENOSPC...)."""
    return OSError(err, what or errno.errorcode.get(err, "error"))
