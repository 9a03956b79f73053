"""Build the guest's seccomp-bpf program from the syscall table.

Pure Python: takes a map of syscall number -> Action and emits classic BPF
(8-byte sock_filter records). Lookup is a binary search over ranges of numbers
that share an action, so a native syscall costs ~10 comparisons, not ~400.
"""
from __future__ import annotations

import errno
import struct
from typing import Mapping, Sequence, Union

from umlpy.record import FrozenRecord, Record

AUDIT_ARCH_X86_64 = 0xC000003E
X32_SYSCALL_BIT = 0x40000000

RET_KILL_PROCESS = 0x80000000
RET_TRAP = 0x00030000
RET_ERRNO = 0x00050000
RET_USER_NOTIF = 0x7FC00000
RET_TRACE = 0x7FF00000
RET_ALLOW = 0x7FFF0000

# classic BPF opcodes
BPF_LD_W_ABS = 0x20
BPF_JMP_JA = 0x05
BPF_JMP_JEQ_K = 0x15
BPF_JMP_JGE_K = 0x35
BPF_JMP_JSET_K = 0x45
BPF_RET_K = 0x06

OFF_NR = 0
OFF_ARCH = 4


def off_arg(index: int, high: bool = False) -> int:
    return 16 + 8 * index + (4 if high else 0)


class Ret(FrozenRecord):
    """A final verdict: one of the RET_* values (with data)."""
    __slots__ = _fields = ("value",)

    def __init__(self, value: int) -> None:
        object.__setattr__(self, "value", value)


ALLOW = Ret(RET_ALLOW)
NOTIF = Ret(RET_USER_NOTIF)
TRACE = Ret(RET_TRACE)


def errno_ret(err: int) -> Ret:
    return Ret(RET_ERRNO | (err & 0xFFFF))


class ArgIn(FrozenRecord):
    """Verdict `then` when the low 32 bits of args[index] are in `values`
    (and the high 32 bits are zero), else `otherwise`."""
    __slots__ = _fields = ("index", "values", "then", "otherwise")

    def __init__(self, index: int, values: tuple, then: Ret, otherwise: Ret) -> None:
        object.__setattr__(self, "index", index)
        object.__setattr__(self, "values", values)
        object.__setattr__(self, "then", then)
        object.__setattr__(self, "otherwise", otherwise)


class ArgBits(FrozenRecord):
    """Verdict `then` when the low 32 bits of args[index] share a bit with
    `mask`, else `otherwise` (the high half is not looked at: clone(2) takes
    its flags from the low one)."""
    __slots__ = _fields = ("index", "mask", "then", "otherwise")

    def __init__(self, index: int, mask: int, then: Ret, otherwise: Ret) -> None:
        object.__setattr__(self, "index", index)
        object.__setattr__(self, "mask", mask)
        object.__setattr__(self, "then", then)
        object.__setattr__(self, "otherwise", otherwise)


Action = Union[Ret, ArgIn, ArgBits]


class _Insn(Record):
    __slots__ = _fields = ("code", "jt", "jf", "k", "label")

    def __init__(self, code: int, jt: int = 0, jf: int = 0, k: int = 0,
                 label: str | None = None) -> None:
        self.code = code
        self.jt = jt
        self.jf = jf
        self.k = k
        self.label = label      # ja/jump target label, resolved later


class _Prog(Record):
    __slots__ = _fields = ("insns", "labels")

    def __init__(self, insns: list | None = None, labels: dict | None = None) -> None:
        # None stands for a fresh list/dict per program (was default_factory)
        self.insns = [] if insns is None else insns
        self.labels = {} if labels is None else labels

    def emit(self, code: int, k: int = 0, jt: int = 0, jf: int = 0, label: str | None = None) -> None:
        self.insns.append(_Insn(code, jt, jf, k, label))

    def mark(self, label: str) -> None:
        self.labels[label] = len(self.insns)


def _ranges(actions: Mapping[int, Action], default: Action, max_nr: int):
    """Collapse 0..max_nr into (start, end_exclusive, action) runs."""
    runs = []
    cur = None
    start = 0
    for nr in range(max_nr + 1):
        act = actions.get(nr, default)
        if act != cur:
            if cur is not None:
                runs.append((start, nr, cur))
            cur, start = act, nr
    runs.append((start, max_nr + 1, cur))
    return runs


def _emit_action(p: _Prog, act: Action) -> None:
    if isinstance(act, Ret):
        p.emit(BPF_RET_K, act.value)
        return
    if isinstance(act, ArgBits):
        p.emit(BPF_LD_W_ABS, off_arg(act.index))
        p.emit(BPF_JMP_JSET_K, act.mask & 0xFFFFFFFF, jt=0, jf=1)
        p.emit(BPF_RET_K, act.then.value)
        p.emit(BPF_RET_K, act.otherwise.value)
        return
    # high half must be zero for a match
    p.emit(BPF_LD_W_ABS, off_arg(act.index, high=True))
    p.emit(BPF_JMP_JEQ_K, 0, jt=1, jf=0)
    p.emit(BPF_RET_K, act.otherwise.value)
    p.emit(BPF_LD_W_ABS, off_arg(act.index))
    n = len(act.values)
    for i, v in enumerate(act.values):
        # jump to "then" (after the remaining compares and the otherwise-ret)
        p.emit(BPF_JMP_JEQ_K, v & 0xFFFFFFFF, jt=(n - i - 1) + 1, jf=0)
    p.emit(BPF_RET_K, act.otherwise.value)
    p.emit(BPF_RET_K, act.then.value)


def _emit_tree(p: _Prog, runs: Sequence, counter: list) -> None:
    """Binary search over runs; accumulator holds the syscall number."""
    if len(runs) == 1:
        _emit_action(p, runs[0][2])
        return
    mid = len(runs) // 2
    pivot = runs[mid][0]
    counter[0] += 1
    right = f"r{counter[0]}"
    # nr >= pivot: fall to the `ja right`; else skip it into the left half
    p.emit(BPF_JMP_JGE_K, pivot, jt=0, jf=1)
    p.emit(BPF_JMP_JA, label=right)
    _emit_tree(p, runs[:mid], counter)
    p.mark(right)
    p.emit(BPF_LD_W_ABS, OFF_NR)   # re-load: arg rules clobber the accumulator
    _emit_tree(p, runs[mid:], counter)


def build_filter(actions: Mapping[int, Action], default: Action, max_nr: int = 511) -> bytes:
    """The whole program: arch check, ABI check, table lookup."""
    p = _Prog()
    p.emit(BPF_LD_W_ABS, OFF_ARCH)
    p.emit(BPF_JMP_JEQ_K, AUDIT_ARCH_X86_64, jt=1, jf=0)
    p.emit(BPF_RET_K, errno_ret(errno.ENOSYS).value)      # i386 (int 0x80) refused
    p.emit(BPF_LD_W_ABS, OFF_NR)
    p.emit(BPF_JMP_JSET_K, X32_SYSCALL_BIT, jt=0, jf=1)
    p.emit(BPF_RET_K, errno_ret(errno.ENOSYS).value)      # x32 refused
    p.emit(BPF_JMP_JGE_K, max_nr + 1, jt=0, jf=1)
    p.emit(BPF_RET_K, _default_ret(default).value)
    _emit_tree(p, _ranges(actions, default, max_nr), [0])
    out = bytearray()
    for i, ins in enumerate(p.insns):
        k = ins.k
        if ins.label is not None:
            k = p.labels[ins.label] - (i + 1)
        out += struct.pack("<HBBI", ins.code, ins.jt, ins.jf, k & 0xFFFFFFFF)
    if len(out) // 8 > 4096:
        raise ValueError("seccomp program too long")
    return bytes(out)


def _default_ret(default: Action) -> Ret:
    return default if isinstance(default, Ret) else default.otherwise


def evaluate(prog: bytes, nr: int, args: Sequence[int] = (0,) * 6, arch: int = AUDIT_ARCH_X86_64) -> int:
    """A small classic-BPF interpreter, for tests of the generated program."""
    data = struct.pack("<iIQ6Q", nr, arch, 0, *[a & 0xFFFFFFFFFFFFFFFF for a in args])
    insns = [struct.unpack_from("<HBBI", prog, i) for i in range(0, len(prog), 8)]
    pc, acc = 0, 0
    while True:
        code, jt, jf, k = insns[pc]
        pc += 1
        if code == BPF_LD_W_ABS:
            acc = struct.unpack_from("<I", data, k)[0]
        elif code == BPF_RET_K:
            return k
        elif code == BPF_JMP_JA:
            pc += k
        elif code == BPF_JMP_JEQ_K:
            pc += jt if acc == k else jf
        elif code == BPF_JMP_JGE_K:
            pc += jt if acc >= k else jf
        elif code == BPF_JMP_JSET_K:
            pc += jt if acc & k else jf
        else:
            raise ValueError(f"unknown opcode {code:#x}")
