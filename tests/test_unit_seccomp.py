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
        elif e.trap_if is not None:
            assert got == bpf.RET_ALLOW, e.name              # cmd 0: native
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


@pytest.mark.parametrize("name", ["mount", "ptrace", "open", "execve", "kill", "clone",
                                  "io_uring_setup", "process_vm_writev"])
def test_dangerous_calls_never_run_natively(name):
    assert verdict(name, 5, 5, 5) != bpf.RET_ALLOW


def test_program_fits_the_kernel_limit():
    assert len(PROG) // 8 < 4096
