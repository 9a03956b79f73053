"""The boot parser's one exception.

str(err) is a single line that starts with the offending option (or with
``file:line:`` for a configuration file), e.g. ``mem=12Q: expected a size like 256M``.
The command line prints ``umlpy: <err>`` and exits non-zero; no traceback.
"""
from __future__ import annotations


class BootOptionError(ValueError):
    """An unknown, malformed or conflicting boot option."""

    def __init__(self, message: str) -> None:
        # One line whatever the cause: a multi-line message would hide the option.
        super().__init__(" ".join(message.split("\n")))

    def __str__(self) -> str:
        return str(self.args[0])

    def prefixed(self, prefix: str) -> "BootOptionError":
        """The same error with "<prefix>: " in front (e.g. "colinux.conf:7")."""
        return BootOptionError(f"{prefix}: {self}")
