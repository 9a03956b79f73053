"""Syscalls the host runs untouched: they act only on the caller's own
descriptors, memory, signals or clocks, so no decision of the kernel is needed.
Audited list: everything else stops. See registry.py for the modes."""
from __future__ import annotations

import errno

from umlpy.syscalls.registry import fast, native, refuse

native(
    # I/O on descriptors the guest already holds (each is a real host fd)
    "read", "write", "readv", "writev", "pread64", "pwrite64", "preadv", "pwritev",
    "preadv2", "pwritev2", "lseek", "close", "close_range", "dup", "dup2", "dup3",
    "pipe", "pipe2",
    "ftruncate", "fadvise64", "fallocate", "sync_file_range", "flock",
    "sendfile", "splice", "tee", "vmsplice", "copy_file_range", "readahead",
    "select", "pselect6", "poll", "ppoll", "epoll_create", "epoll_create1", "epoll_ctl",
    "epoll_wait", "epoll_pwait", "epoll_pwait2", "eventfd", "eventfd2", "signalfd",
    "signalfd4", "timerfd_create", "timerfd_settime", "timerfd_gettime", "memfd_create",
    "inotify_init", "inotify_init1", "inotify_rm_watch",
    # sockets: data on descriptors the guest holds (bind, connect, addressed sends,
    # names, peer credentials and accept/recv with an address stop: see net.py, net_msg.py)
    "socket", "socketpair", "listen", "recvmmsg", "shutdown", "setsockopt",
    # memory
    "mmap", "mprotect", "munmap", "brk", "mremap", "msync", "mincore", "madvise", "mlock",
    "munlock", "mlockall", "munlockall", "mlock2", "pkey_mprotect", "pkey_alloc", "pkey_free",
    "membarrier", "get_mempolicy", "set_mempolicy", "mbind",
    # the caller's own signals
    "rt_sigaction", "rt_sigprocmask", "rt_sigreturn", "rt_sigpending",
    "rt_sigsuspend", "sigaltstack", "pause", "restart_syscall",
    # clocks and timers
    "nanosleep", "clock_nanosleep", "clock_gettime", "clock_getres", "gettimeofday", "time",
    "getitimer", "setitimer", "alarm", "times",
    # threads, scheduling and limits of the caller itself
    "futex", "set_robust_list", "rseq", "sched_yield", "arch_prctl", "exit", "exit_group",
    "getrandom", "getcpu", "getrlimit", "setrlimit", "getrusage", "prctl",
    "personality", "sched_get_priority_max", "sched_get_priority_min",
    # an extra filter can only narrow; the host refuses a second listener (EBUSY)
    "seccomp",
)

fast("getpid", "gettid", "getppid", "getuid", "geteuid", "getgid", "getegid")

refuse("clone3", errno.ENOSYS, "libc falls back to clone(2), which is translated")
refuse("io_uring_setup", errno.ENOSYS, "io_uring would open paths without the kernel")
