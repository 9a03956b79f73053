"""Syscall handlers, one module per family; importing this registers them all."""
from umlpy.syscalls import (creds, exec, fs, fs_attr, fs_dir, fs_names,  # noqa: F401
                            fs_sync, mounts, native, net, net_msg, power, process, ptrace, signals,
                            system, xattr)
