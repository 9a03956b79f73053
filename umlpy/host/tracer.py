"""The host side of a guest: a thin Python face over the C accelerator.

Only this package touches ptrace, seccomp and guest memory. The kernel sees
Events and calls methods here to resume, answer or inspect a guest task.
"""
from __future__ import annotations

import errno
import os
import struct
import threading
from typing import Optional, Sequence

try:
    from umlpy.host._accel import ffi, lib
except ImportError as exc:  # pragma: no cover - only without a build
    raise ImportError("umlpy's C accelerator is not built: run `pip install .`") from exc

EV_NONE = lib.UML_EV_NONE
FIX_FORK, FIX_PYEXIT = lib.UML_FIX_FORK, lib.UML_FIX_PYEXIT    # ev.fix (csrc/faststops.c)
EV_NOTIF = lib.UML_EV_NOTIF
EV_SECCOMP = lib.UML_EV_SECCOMP
EV_SYSEXIT = lib.UML_EV_SYSEXIT
EV_FORK = lib.UML_EV_FORK
EV_VFORK = lib.UML_EV_VFORK
EV_CLONE = lib.UML_EV_CLONE
EV_EXEC = lib.UML_EV_EXEC
EV_SIGNAL = lib.UML_EV_SIGNAL
EV_GROUPSTOP = lib.UML_EV_GROUPSTOP
EV_TRAPSTOP = lib.UML_EV_TRAPSTOP
EV_EXITED = lib.UML_EV_EXITED
EV_KILLED = lib.UML_EV_KILLED
EV_INTR = lib.UML_EV_INTR
EV_ADOPT = lib.UML_EV_ADOPT

EVENT_NAMES = {v: k for k, v in globals().items() if k.startswith("EV_")}

REG_NAMES = ("r15", "r14", "r13", "r12", "rbp", "rbx", "r11", "r10", "r9", "r8",
             "rax", "rcx", "rdx", "rsi", "rdi", "orig_rax", "rip", "cs", "eflags",
             "rsp", "ss", "fs_base", "gs_base", "ds", "es", "fs", "gs")
ARG_REGS = ("rdi", "rsi", "rdx", "r10", "r8", "r9")

MAX_PATH = 4096

# how the kernel asked a held task to go on (Tracer.holds)
RESUME_CONT, RESUME_TO_EXIT, RESUME_SKIP, RESUME_LISTEN = range(4)


# struct uml_fstat (csrc/accel.h), packed in one step
_FSTAT_VIEW = struct.Struct("<QQqIIIIQQQQqqqqqqq")
assert _FSTAT_VIEW.size == ffi.sizeof("struct uml_fstat")


_ATTR_BATCH = 64


class HostError(OSError):
    """A host operation on a guest task failed (usually: the task died)."""


def _check(ret: int, what: str) -> int:
    if ret < 0:
        raise HostError(-ret, f"{what}: {os.strerror(-ret)}")
    return ret


_U64 = 0xFFFFFFFFFFFFFFFF


class Regs:
    """A copy of a task's registers; write back with Tracer.set_regs."""
    __slots__ = ("_c",)

    def __init__(self) -> None:
        self._c = ffi.new("struct user_regs_struct *")

    def __getattr__(self, name: str) -> int:
        return getattr(self._c, name)

    def __setattr__(self, name: str, value: int) -> None:
        if name == "_c":
            object.__setattr__(self, name, value)
        else:
            setattr(self._c, name, value & _U64)

    def args(self) -> list:
        return [getattr(self._c, r) for r in ARG_REGS]


class Tracer:
    """One guest system: its seccomp listener and every tracee under it."""

    def __init__(self) -> None:
        ctx = lib.uml_new()
        if ctx == ffi.NULL:
            raise HostError(errno.ENOSYS, "seccomp user notification is not available")
        self._ctx = ctx
        self._ev = ffi.new("struct uml_event *")
        self._siginfo = ffi.new("char[]", 128)
        self._attr_count = lib.uml_attr_log_count(ctx)
        self._attr_buf = ffi.new("struct uml_attr_change[]", _ATTR_BATCH)
        self._create_count = lib.uml_create_log_count(ctx)
        self._create_buf = ffi.new("struct uml_create[]", _ATTR_BATCH)
        self._create_dirs: dict = {}    # slot -> (serial, what the kernel published it for)
        self._open_count = lib.uml_open_log_count(ctx)
        self._open_buf = ffi.new("struct uml_open_note[]", _ATTR_BATCH)
        self._open_paths: dict = {}     # path slot -> the place its opens are by
        self._reap_count = lib.uml_reap_log_count(ctx)
        self._reap_buf = ffi.new("int32_t[]", _ATTR_BATCH)
        self._exec_count = lib.uml_exec_log_count(ctx)
        self._exec_buf = ffi.new("struct uml_exec_note[]", _ATTR_BATCH)
        self._reply_lock = threading.Lock()     # replies share one buffer; workers reply too
        # host tid -> fn(tid, how, sig, value): a task whose resumption the kernel's
        # guest ptrace decides (a guest tracee, or a guest tracer parked in wait).
        # Empty when no guest uses ptrace: the hot path pays one truth test.
        self.holds: dict = {}
        self._fast_stop_blocks: set = set()
        self.publish_stats = True       # False: nothing published, every stat reaches Python

    def close(self) -> None:
        if self._ctx is not None:
            lib.uml_free(self._ctx)
            self._ctx = None

    # ---- lifecycle ----
    # (user namespace fd, network namespace fd) the first guest process joins
    # (--net=none, umlpy.host.netns), or -1s for the host's own
    spawn_namespaces = (-1, -1)

    def spawn(self, path: str, argv: Sequence[str], envp: Sequence[str], bpf: bytes,
              console_fd: int = -1) -> int:
        """Fork and exec the first guest process under the filter `bpf`; with
        console_fd, that terminal is its stdio and controlling terminal."""
        keep = [ffi.new("char[]", os.fsencode(a)) for a in argv]
        keep_env = [ffi.new("char[]", os.fsencode(e)) for e in envp]
        c_argv = ffi.new("char *[]", keep + [ffi.NULL])
        c_envp = ffi.new("char *[]", keep_env + [ffi.NULL])
        filt = ffi.from_buffer(bpf)
        userns, netns = self.spawn_namespaces
        pid = lib.uml_spawn(self._ctx, os.fsencode(path), c_argv, c_envp, filt, len(bpf) // 8,
                            console_fd, userns, netns)
        return _check(pid, "spawn")

    def set_fast_path(self, enabled: bool) -> None:
        lib.uml_set_fast(self._ctx, 1 if enabled else 0)

    def block_fast_stops(self, why: str, blocked: bool = True) -> None:
        """Stops the accelerator answers itself (csrc/faststops.c) are off while
        anything that must see every stop is on: gdb, guest ptrace."""
        self._fast_stop_blocks.discard(why)
        if blocked:
            self._fast_stop_blocks.add(why)
        lib.uml_set_fast_stops(self._ctx, 0 if self._fast_stop_blocks else 1)

    def reaps_waiting(self) -> bool:
        """Children whose reaping wait4 the accelerator answered wait for the
        kernel to free their guest pids."""
        return self._reap_count[0] != 0

    def take_reaps(self) -> list:
        """Host pids of the children the accelerator saw reaped, in order."""
        out = []
        while self._reap_count[0]:
            n = lib.uml_reap_log_take(self._ctx, self._reap_buf, _ATTR_BATCH)
            out.extend(self._reap_buf[0:n])
        return out

    def set_task_limit(self, limit: int) -> None:
        """Past it, a thread's clone stops in Python (which gives EAGAIN)."""
        lib.uml_set_task_limit(self._ctx, limit)

    def set_ticks(self, on: bool) -> None:
        """While on, next_event returns EV_INTR after 100 ms without events."""
        lib.uml_set_ticks(self._ctx, 1 if on else 0)

    def stats(self) -> dict:
        s = ffi.new("struct uml_stats *")
        lib.uml_get_stats(self._ctx, s)
        return {"fast_answers": s.fast_answers, "notifs": s.notifs, "ptrace_stops": s.ptrace_stops,
                "c_stops": s.c_stops, "fast_stats": s.fast_stats, "fast_attrs": s.fast_attrs,
                "fast_creates": s.fast_creates, "fast_opens": s.fast_opens,
                "fast_unlinks": s.fast_unlinks, "lost_wakeups": s.lost_wakeups,
                "fast_execs": s.fast_execs, "fast_starts": s.fast_starts,
                "childless_waits": s.childless_waits}

    def next_event(self):
        """The next event (valid until the following call): kind, tid, status, sig,
        nr, args[6], ret, msg, notif_id, ip, sp — one guest stop or notification."""
        _check(lib.uml_next(self._ctx, self._ev), "wait")
        return self._ev

    # ---- ptrace-stopped tasks ----
    def cont(self, tid: int, sig: int = 0) -> int:
        """Resume (to the syscall's exit if the accelerator took its entry)."""
        if self.holds and tid in self.holds:
            return self.holds[tid](tid, RESUME_CONT, sig, 0)
        return lib.uml_resume(self._ctx, tid, sig)

    def cont_to_exit(self, tid: int, sig: int = 0) -> int:
        """Resume and stop again at this syscall's exit."""
        if self.holds and tid in self.holds:
            return self.holds[tid](tid, RESUME_TO_EXIT, sig, 0)
        return lib.uml_syscall(tid, sig)

    def listen(self, tid: int) -> int:
        if self.holds and tid in self.holds:
            return self.holds[tid](tid, RESUME_LISTEN, 0, 0)
        return lib.uml_listen(tid)

    def interrupt(self, tid: int) -> int:
        return lib.uml_interrupt(tid)

    def skip(self, tid: int, retval: int) -> int:
        """At a seccomp stop: do not run the syscall, return retval, resume."""
        if self.holds and tid in self.holds:
            return self.holds[tid](tid, RESUME_SKIP, 0, retval)
        return lib.uml_skip(tid, retval)

    def get_regs(self, tid: int) -> Regs:
        r = Regs()
        _check(lib.uml_get_regs(tid, r._c), "getregs")
        return r

    def set_regs(self, tid: int, regs: Regs) -> None:
        _check(lib.uml_set_regs(tid, regs._c), "setregs")

    def set_syscall(self, tid: int, nr: Optional[int], args, ret: Optional[int] = None) -> None:
        """Rewrite a stopped task's syscall: its six arguments, and its number
        (orig_rax) unless nr is None, its result (rax) unless ret is None."""
        which = (0 if nr is None else lib.UML_SET_NR) | (0 if ret is None else lib.UML_SET_RAX)
        a0, a1, a2, a3, a4, a5 = (a & _U64 for a in args)
        _check(lib.uml_set_syscall(tid, which, (nr or 0) & _U64, (ret or 0) & _U64,
                                   a0, a1, a2, a3, a4, a5), "set syscall")

    def set_return(self, tid: int, value: int) -> None:
        _check(lib.uml_set_rax(tid, value), "set return")

    def get_siginfo(self, tid: int) -> bytearray:
        _check(lib.uml_get_siginfo(tid, self._siginfo), "getsiginfo")
        return bytearray(ffi.buffer(self._siginfo, 128))

    def set_siginfo(self, tid: int, info: bytes) -> None:
        ffi.memmove(self._siginfo, info, 128)
        _check(lib.uml_set_siginfo(tid, self._siginfo), "setsiginfo")

    # ---- seccomp notifications ----
    def reply(self, notif_id: int, value: int = 0, err: int = 0) -> int:
        with self._reply_lock:
            return lib.uml_notif_reply(self._ctx, notif_id, value, err)

    def reply_continue(self, notif_id: int) -> int:
        with self._reply_lock:
            return lib.uml_notif_continue(self._ctx, notif_id)

    def reply_fd(self, notif_id: int, host_fd: int, cloexec: bool) -> int:
        """Install host_fd in the guest at its lowest free number and return it."""
        return lib.uml_notif_addfd(self._ctx, notif_id, host_fd, os.O_CLOEXEC if cloexec else 0)

    def notif_valid(self, notif_id: int) -> bool:
        return bool(lib.uml_notif_valid(self._ctx, notif_id))

    # ---- the fast-path table ----
    def task_set(self, tid: int, gtid: int, gtgid: int, gppid: int, uid: int, euid: int,
                 gid: int, egid: int, fsuid: int, fsgid: int, ctx: int, children: int) -> None:
        """ctx: the task's resolution context (umlpy/kernel/contexts.py), 0 for
        none; children: its thread group's children not seen reaped (never
        fewer than it has: with none, C fails its wait4 at the entry)."""
        lib.uml_task_set(self._ctx, tid, gtid, gtgid, gppid, uid, euid, gid, egid, fsuid, fsgid,
                         ctx, children)

    def task_children(self, tid: int, children: int) -> None:
        """task_set's children alone (the count changed, nothing else)."""
        lib.uml_task_children(self._ctx, tid, children)

    def task_del(self, tid: int) -> None:
        lib.uml_task_del(self._ctx, tid)

    def arm_exit(self, tid: int, fix: int) -> None:
        """Its next syscall-exit stop needs `fix` (FIX_*): resumes stop there."""
        lib.uml_arm_exit(self._ctx, tid, fix)

    def arm_start(self, tid: int, on: bool = True) -> None:
        """The new task's first stop only resumes it: C may do that (csrc/faststops.c)."""
        lib.uml_arm_start(self._ctx, tid, 1 if on else 0)

    def start_armed(self, tid: int) -> bool:
        """Still armed: its first stop has not been taken by C."""
        return lib.uml_start_armed(self._ctx, tid) == 1

    # ---- fstat answered in C (csrc/fastnotif.c) ----
    def _view(self, key: tuple, flags: int, host_ctime_ns: int, a, host_fd: int = -1):
        """The C view of Attr `a`, or None when a field does not fit (times
        past 2262 in nanoseconds): the kernel answers those itself."""
        try:
            raw = _FSTAT_VIEW.pack(key[0], key[1], host_ctime_ns, flags, a.mode,
                                   a.uid & 0xFFFFFFFF, a.gid & 0xFFFFFFFF, a.dev, a.ino, a.nlink,
                                   a.rdev, a.size, a.blksize, a.blocks, a.atime_ns, a.mtime_ns,
                                   a.ctime_ns, host_fd)
        except struct.error:
            return None
        return ffi.from_buffer("struct uml_fstat *", raw)

    def fstat_publish(self, key: tuple, flags: int, host_ctime_ns: int, a,
                      host_fd: int = -1) -> None:
        """What an fstat of host object `key` shows the guest: Attr `a`, read
        as `flags` (UML_FSTAT_*, umlpy.vfs.inode.STAT_*) say, until the kernel
        next handles a call that may change attributes. With STAT_SETATTR,
        host_fd is the kernel's own descriptor of it (futimens acts there)."""
        view = self._view(key, flags, host_ctime_ns, a, host_fd) if self.publish_stats else None
        if view is not None:
            lib.uml_fstat_publish(self._ctx, view)

    def path_publish(self, tid: int, name: bytes, nofollow: bool, err: int, host_fd: int = -1,
                     flags: int = 0, host_ctime_ns: int = 0, a=None,
                     host_key: Optional[tuple] = None) -> int:
        """What host task tid's stat of path `name` gives: errno err, or Attr
        `a` read as for fstat_publish (live fields from the kernel's own
        descriptor host_fd, whose host object is host_key when the caller
        knows it), for as long as a published fstat would hold.
        Returns the slot it went to, or -1 when it was not published."""
        if not self.publish_stats:
            return -1
        view = ffi.NULL
        if a is not None:
            key = (0, 0)
            if host_key is not None:
                key = host_key
            elif host_fd >= 0:
                s = os.fstat(host_fd)
                key = (s.st_dev, s.st_ino)
            view = self._view(key, flags, host_ctime_ns, a)
            if view is None:
                return -1
        return lib.uml_path_publish(self._ctx, tid, name, len(name), 1 if nofollow else 0, err,
                                    host_fd, view)

    def exec_publish(self, tid: int, name: bytes, host_path: bytes, image_key: tuple,
                     checks: list, host_interp: bytes = b"") -> Optional[tuple]:
        """Host task tid's execve of `name` may be answered in C (csrc/fastexec.c)
        with the image at host_path, whose host object is image_key, while
        nothing changed and each of `checks` ([(fd, os.stat_result)]: the
        program, then its ld.so) is that version; with host_interp, the host's
        file at that path too. (slot, serial), or None when not published.
        The fds stay the caller's; C uses them until the slot is replaced."""
        if not self.publish_stats:
            return None
        arr = ffi.new("struct uml_exec_check[]", len(checks))
        for e, (fd, s) in zip(arr, checks):
            e.fd, e.dev, e.ino, e.size = fd, s.st_dev, s.st_ino, s.st_size
            e.mtime_ns, e.ctime_ns = s.st_mtime_ns, s.st_ctime_ns
        serial = ffi.new("uint32_t *")
        slot = lib.uml_exec_publish(self._ctx, tid, name, len(name), host_path, len(host_path),
                                    image_key[0], image_key[1], arr, len(checks),
                                    host_interp, len(host_interp), serial)
        return (slot, serial[0]) if slot >= 0 else None

    def exec_void(self) -> None:
        """No execve is answered in C until published again."""
        lib.uml_exec_void(self._ctx)

    def execs_waiting(self) -> bool:
        return self._exec_count[0] != 0

    def take_execs(self) -> list:
        """[(host tid, slot, serial, done)] of the execs C answered, in order:
        done is 0 for an execve entry, 1 for its checked exec event."""
        out = []
        while self._exec_count[0]:
            n = lib.uml_exec_log_take(self._ctx, self._exec_buf, _ATTR_BATCH)
            out.extend((e.tid, e.slot, e.serial, e.done) for e in self._exec_buf[0:n])
        return out

    def path_open_publish(self, slot: int, recipe: tuple, key: tuple, path) -> None:
        """The path stat in published slot `slot` (what path_publish returned)
        may be opened for reading in C (csrc/fastopen.c): as `recipe`
        (Inode.open_recipe) gives, which must open host object `key`. The
        opens made are noted with `path`, the place they were opened by."""
        dirfd, rel, resolve, extra = recipe
        raw = os.fsencode(rel)
        if lib.uml_path_open_recipe(self._ctx, slot, dirfd, raw, len(raw), resolve, extra,
                                    key[0], key[1]) == 0:
            self._open_paths[slot] = path

    def opens_waiting(self) -> bool:
        """Opens made in C wait for the kernel to adopt them."""
        return self._open_count[0] != 0

    def take_opens(self) -> list:
        """[(path, host key)] of the opens C made, in order: `path` as
        path_open_publish was given it for the slot they came from."""
        out = []
        while self._open_count[0]:
            n = lib.uml_open_log_take(self._ctx, self._open_buf, _ATTR_BATCH)
            for e in self._open_buf[0:n]:
                out.append((self._open_paths.get(e.slot), (e.host_dev, e.host_ino)))
        return out

    def attr_changes_waiting(self) -> bool:
        """fchmod or fchown answered in C wait for the kernel to adopt them."""
        return self._attr_count[0] != 0

    def take_attr_changes(self) -> list:
        """[(host key, mode, uid, gid, ctime_ns, host_ctime_ns)] in the order C
        made them: the new attributes, and the ctime that holds while the host
        object's own ctime is host_ctime_ns."""
        out = []
        while self._attr_count[0]:
            n = lib.uml_attr_log_take(self._ctx, self._attr_buf, _ATTR_BATCH)
            for e in self._attr_buf[0:n]:
                out.append(((e.host_dev, e.host_ino), e.mode, e.uid, e.gid, e.ctime_ns,
                            e.host_ctime_ns))
        return out

    def create_publish(self, tid: int, key: bytes, uid: int, gid: int, umask: int, dev: int,
                       next_ino: int, inodes_left: int, names: list, removable: bytes,
                       parent) -> None:
        """Host task tid may create regular files in the tmpfs directory
        `parent` by path text `key` (statpath.c's key of the path up to its
        last '/') while the published names hold (csrc/fastcreate.c): owned
        by uid and gid, under the umask, in the file system with st_dev dev
        whose next inode number is next_ino and which has inodes_left more.
        `names` (bytes) are the names the directory holds now; the task may
        unlink names[i] when removable[i] is 1, and the files it makes."""
        if not self.publish_stats:
            return
        joined = b"\0".join(names)
        slot = lib.uml_create_publish(self._ctx, tid, key, len(key), uid, gid, umask, dev,
                                      next_ino, min(inodes_left, 2**64 - 1), joined, len(joined),
                                      len(names), removable)
        if slot >= 0:
            self._create_dirs[slot] = (lib.uml_create_serial(self._ctx, slot), parent)

    def creates_waiting(self) -> bool:
        """Files created in C wait for the kernel to adopt them."""
        return self._create_count[0] != 0

    def take_creates(self) -> list:
        """[(parent, name, ino, host key, memfd, mode, uid, gid, time_ns)] in
        the order C made them and removed names: `parent` as create_publish
        was given it, the memfd now the kernel's own descriptor. A removed
        name (unlink) comes with ino None and only its time."""
        out = []
        while self._create_count[0]:
            n = lib.uml_create_log_take(self._ctx, self._create_buf, _ATTR_BATCH)
            for e in self._create_buf[0:n]:
                serial, parent = self._create_dirs.get(e.slot, (None, None))
                if serial != e.serial:
                    parent = None
                name = ffi.unpack(e.name, e.name_len)
                if e.removed:
                    out.append((parent, name, None, None, -1, 0, 0, 0, e.time_ns))
                else:
                    out.append((parent, name, e.ino, (e.host_dev, e.host_ino),
                                e.host_fd, e.mode, e.uid, e.gid, e.time_ns))
        return out

    def fstat_forget(self) -> None:
        """Void every published view (attributes changed off the event loop)."""
        lib.uml_fstat_forget(self._ctx)


class GuestMemory:
    """Reads and writes one task's address space (process_vm_readv/writev)."""
    __slots__ = ("pid",)

    _strbuf = ffi.new("char[]", MAX_PATH + 1)

    def __init__(self, pid: int) -> None:
        self.pid = pid

    def read(self, addr: int, length: int) -> bytes:
        if length == 0:
            return b""
        if addr == 0:
            raise OSError(errno.EFAULT, "bad address")
        buf = ffi.new("char[]", length)
        n = lib.uml_mem_read(self.pid, addr, buf, length)
        if n < 0:
            raise OSError(errno.EFAULT, "bad address")
        if n != length:
            raise OSError(errno.EFAULT, "bad address")
        return ffi.unpack(buf, length)

    def write(self, addr: int, data: bytes) -> None:
        if not data:
            return
        if addr == 0:
            raise OSError(errno.EFAULT, "bad address")
        n = lib.uml_mem_write(self.pid, addr, ffi.from_buffer(data), len(data))
        if n != len(data):
            raise OSError(errno.EFAULT, "bad address")

    def read_str(self, addr: int, max_len: int = MAX_PATH) -> bytes:
        """A NUL-terminated string of at most max_len bytes (without the NUL)."""
        buf = self._strbuf if max_len <= MAX_PATH else ffi.new("char[]", max_len + 1)
        n = lib.uml_mem_read_str(self.pid, addr, buf, max_len + 1)
        if n == -errno.ENAMETOOLONG:
            raise OSError(errno.ENAMETOOLONG, "string too long")
        if n < 0:
            raise OSError(errno.EFAULT, "bad address")
        return ffi.unpack(buf, n)

    def read_u64(self, addr: int) -> int:
        return int.from_bytes(self.read(addr, 8), "little")

    def read_ptr_array(self, addr: int, limit: int) -> list:
        """A NULL-terminated array of pointers (argv, envp)."""
        out = []
        while True:
            if len(out) >= limit:
                raise OSError(errno.E2BIG, "argument list too long")
            p = self.read_u64(addr + 8 * len(out))
            if p == 0:
                return out
            out.append(p)


# ---- debugging (umlpy/debug): the gdb stub's needs from the host ----

def set_wake_fd(tracer: Tracer, fd: int) -> None:
    """An eventfd: when readable, next_event returns EV_INTR (work for the loop thread)."""
    lib.uml_set_wake_fd(tracer._ctx, fd)


def singlestep(tid: int, sig: int = 0) -> int:
    return lib.uml_singlestep(tid, sig)


class ProcMem:
    """A task's memory through /proc/PID/mem: unlike process_vm_writev it can
    write read-only pages (a breakpoint in program text), as a tracer may."""

    def __init__(self, pid: int) -> None:
        self.pid = pid

    def read(self, addr: int, length: int) -> bytes:
        fd = os.open(f"/proc/{self.pid}/mem", os.O_RDONLY | os.O_CLOEXEC)
        try:
            return os.pread(fd, length, addr)
        finally:
            os.close(fd)

    def write(self, addr: int, data: bytes) -> int:
        fd = os.open(f"/proc/{self.pid}/mem", os.O_WRONLY | os.O_CLOEXEC)
        try:
            return os.pwrite(fd, data, addr)
        finally:
            os.close(fd)
