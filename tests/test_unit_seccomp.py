"""The generated seccomp program, checked with a BPF interpreter (no guest)."""
import errno

import pytest

import umlpy.syscalls  # noqa: F401  (registers the table)
from umlpy.host import seccomp as bpf
from umlpy.syscalls import registry
from umlpy.syscalls.numbers import MAX_NR, NR

PROG = registry.build_filter()
ENOSYS_RET = bpf.RET_ERRNO | errno.ENOSYS


def verdict(name_or_nr, *args, arch=bpf.AUDIT_ARCH_X86_64):
    nr = NR[name_or_nr] if isinstance(name_or_nr, str) else name_or_nr
    return bpf.evaluate(PROG, nr, list(args) + [0] * (6 - len(args)), arch)


def test_every_table_entry_gets_its_mode():
    for nr, e in registry.TABLE.items():
        got = verdict(nr)
        if e.mode == registry.NATIVE:
            assert got == bpf.RET_ALLOW, e.name
        elif e.mode == registry.ERRNO:
            assert got == bpf.RET_ERRNO | e.err, e.name
        elif e.native_if is not None:
            assert got == bpf.RET_ALLOW, e.name              # args all zero: native
        elif e.trap_if is not None or e.trap_bits is not None:
            assert got == bpf.RET_ALLOW, e.name              # cmd 0, no flags: native
        elif e.mode in (registry.NOTIF, registry.FAST):
            assert got == bpf.RET_USER_NOTIF, e.name
        else:
            assert got == bpf.RET_TRACE, e.name


def test_unlisted_numbers_stop_for_the_enosys_log():
    unlisted = [nr for nr in range(MAX_NR + 1) if nr not in registry.TABLE]
    assert unlisted
    for nr in unlisted:
        assert verdict(nr) == bpf.RET_USER_NOTIF
    assert verdict(100000) == bpf.RET_USER_NOTIF


def test_foreign_abis_are_refused():
    assert verdict(NR["read"] | bpf.X32_SYSCALL_BIT) == ENOSYS_RET
    assert verdict(0, arch=0x40000003) == ENOSYS_RET          # AUDIT_ARCH_I386


def test_arg_conditions():
    assert verdict("prlimit64", 0) == bpf.RET_ALLOW
    assert verdict("prlimit64", 7) == bpf.RET_TRACE
    assert verdict("prlimit64", 1 << 32) == bpf.RET_TRACE     # high half counts too
    assert verdict("ioctl", 1, 0x5412) == bpf.RET_TRACE       # TIOCSTI
    assert verdict("ioctl", 1, 0x5401) == bpf.RET_ALLOW       # TCGETS
    assert verdict("fcntl", 3, 8) == bpf.RET_TRACE            # F_SETOWN
    assert verdict("fcntl", 3, 1) == bpf.RET_ALLOW            # F_GETFD


# clone(2) flags: what glibc's fork, posix_spawn and pthread_create pass
FORK_FLAGS = 0x01200011         # CLONE_CHILD_SETTID | CLONE_CHILD_CLEARTID | SIGCHLD
SPAWN_FLAGS = 0x00004111        # CLONE_VM | CLONE_VFORK | SIGCHLD
THREAD_FLAGS = 0x003D0F00


def test_a_process_clone_runs_without_an_entry_stop_and_the_rest_stop():
    assert verdict("clone", FORK_FLAGS) == bpf.RET_ALLOW
    assert verdict("clone", SPAWN_FLAGS) == bpf.RET_ALLOW
    assert verdict("fork") == verdict("vfork") == bpf.RET_ALLOW
    assert verdict("clone", THREAD_FLAGS) == bpf.RET_TRACE           # CLONE_THREAD
    assert verdict("clone", FORK_FLAGS | 0x00800000) == bpf.RET_TRACE    # CLONE_UNTRACED
    assert verdict("clone", FORK_FLAGS | 0x00008000) == bpf.RET_TRACE    # CLONE_PARENT
    for ns in (0x00020000, 0x02000000, 0x04000000, 0x08000000, 0x10000000, 0x20000000,
               0x40000000, 0x00000080):                             # every CLONE_NEW*
        assert verdict("clone", FORK_FLAGS | ns) == bpf.RET_TRACE, hex(ns)


@pytest.mark.parametrize("name", ["mount", "ptrace", "open", "execve", "kill", "clone3",
                                  "io_uring_setup", "process_vm_writev"])
def test_dangerous_calls_never_run_natively(name):
    assert verdict(name, 5, 5, 5) != bpf.RET_ALLOW


def test_program_fits_the_kernel_limit():
    assert len(PROG) // 8 < 4096
