"""The block layer's one exception.

BlockError is an OSError (so a caller that already handles OSError handles it, and it
carries an errno), whose str() is the bare one-line message, e.g.
``ubd0: COW file x.cow: mtime mismatch (1700000000 vs 1700000123) of COW header vs
backing file /img/root_fs``.  Tools print str(err) and exit 1.
"""
from __future__ import annotations

import errno as _errno
import os


class BlockError(OSError):
    """Bad ubd option, bad COW file, mismatched or missing backing file, locked image."""

    def __init__(self, message: str, err: int = _errno.EINVAL) -> None:
        super().__init__(err, message)

    def __str__(self) -> str:
        return str(self.strerror)

    def prefixed(self, prefix: str) -> "BlockError":
        """The same error with "<prefix>: " in front (e.g. the device name)."""
        return BlockError(f"{prefix}: {self.strerror}", self.errno)


def io_error(code: int, what: str) -> OSError:
    """A plain OSError for the data path (EIO, EROFS, ENOSPC...): not a setup problem."""
    return OSError(code, f"{os.strerror(code)}: {what}")
