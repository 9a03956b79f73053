"""execve and execveat: the program comes from the guest's tree.

The loader prepares a sealed memfd image; the host is then told to exec
/proc/<kernel-pid>/fd/<N>, written below the guest's stack pointer. Another
guest thread could rewrite that string before the host reads it, so the image
the host actually loaded is checked at the exec event (kernel.lifecycle) and a
task that runs anything else is killed before its first instruction.
"""
from __future__ import annotations

import errno
import os
import struct

from umlpy.syscalls.call import AT_FDCWD, PASS, Call
from umlpy.syscalls.fs import AT_EMPTY_PATH, AT_SYMLINK_NOFOLLOW, walk
from umlpy.syscalls.numbers import NR
from umlpy.syscalls.registry import TRACE, syscall

MAX_ARG_STRLEN = 32 * 4096
MAX_ARGS = 0x7FFFFFFF // 8
ARG_MAX = 2 * 1024 * 1024
SCRATCH_GAP = 1024          # keep clear of the red zone and the caller's frame


def _read_argv(c: Call, ptr: int) -> list:
    if ptr == 0:
        return []
    out, total = [], 0
    for p in c.mem.read_ptr_array(ptr, MAX_ARGS):
        s = c.mem.read_str(p, MAX_ARG_STRLEN)
        total += len(s) + 1
        if total > ARG_MAX:
            raise OSError(errno.E2BIG, "argument list too long")
        out.append(s)
    return out


def _scratch(c: Call, path: bytes, argv) -> tuple:
    """Write the host path (and a new argv) below the stack pointer."""
    blob = bytearray(path + b"\0")
    argv_addr = 0
    if argv is not None:
        offsets = []
        for a in argv:
            offsets.append(len(blob))
            blob += a + b"\0"
        blob += bytes(-len(blob) % 8)
        table_off = len(blob)
        blob += bytes(8 * (len(argv) + 1))
        base = (c.sp - SCRATCH_GAP - len(blob)) & ~0xF
        for i, off in enumerate(offsets):
            struct.pack_into("<Q", blob, table_off + 8 * i, base + off)
        argv_addr = base + table_off
    else:
        base = (c.sp - SCRATCH_GAP - len(blob)) & ~0xF
    c.write(base, bytes(blob))
    return base, argv_addr


def _exec_exit(c: Call, ret: int):
    c.task.pending_exec = None
    return None


def do_exec(c: Call, path: str, argv_ptr: int, envp_ptr: int, dirfd: int = AT_FDCWD,
            first=None) -> object:
    """first: the Path of the program when the caller already knows it (fexecve)."""
    if not path and first is None:
        return -errno.ENOENT

    def argv() -> list:         # only a #! script needs it: the host reads an ELF's
        return _read_argv(c, argv_ptr)

    def resolve(p: str):
        if first is not None and p == path:
            return first, c.task.creds
        return walk(c, dirfd if p == path else AT_FDCWD, p, True).must_exist(), c.task.creds
    # A plain execve by a path may be published for C to answer next time
    # (umlpy.kernel.exec_cache): the loader hands over the files it opened.
    sources = [] if first is None and c.nr == NR["execve"] else None
    try:
        plan = c.kernel.loader.prepare(path, resolve, argv, sources)
    except BaseException:
        if sources:
            c.kernel.exec_cache.release(sources)
        raise
    host_path = os.fsencode(c.kernel.loader.exec_path(plan))
    if sources is not None:
        c.kernel.exec_cache.publish(c.task, os.fsencode(path), plan, host_path, sources)
    path_addr, argv_addr = _scratch(c, host_path, plan.argv)
    if c.nr != NR["execve"]:
        c.set_nr(NR["execve"])
    c.set_arg(0, path_addr)
    c.set_arg(1, argv_addr if plan.argv is not None else argv_ptr)
    c.set_arg(2, envp_ptr)
    c.task.pending_exec = plan
    c.on_exit(_exec_exit)
    return PASS


@syscall("execve", mode=TRACE)
def sys_execve(c: Call):
    return do_exec(c, c.path(0), c.ptr(1), c.ptr(2))


@syscall("execveat", mode=TRACE)
def sys_execveat(c: Call):
    dirfd, flags = c.fd(0), c.int(4)
    if flags & ~(AT_EMPTY_PATH | AT_SYMLINK_NOFOLLOW):
        return -errno.EINVAL
    path = c.path(1)
    if path == "" and flags & AT_EMPTY_PATH:
        first = c.kernel.fds.path(c.task, dirfd)
        if first is None:
            return -errno.ENOENT
        return do_exec(c, "", c.ptr(2), c.ptr(3), first=first)
    if flags & AT_SYMLINK_NOFOLLOW:
        lk = walk(c, dirfd, path, False)
        if lk.path is not None and lk.path.inode.mode & 0o170000 == 0o120000:
            return -errno.ELOOP
    return do_exec(c, path, c.ptr(2), c.ptr(3), dirfd=dirfd)
