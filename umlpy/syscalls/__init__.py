"""Syscall handlers, one module per family; importing this registers them all."""
from umlpy.syscalls import (creds, exec, fs, native, process, signals,  # noqa: F401
                            system, xattr)
