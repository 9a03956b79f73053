"""Malformed ELF headers and #! lines beyond test_unit_loader.py: every one is
ENOEXEC (or the errno Linux gives), never an exception of another kind."""
import errno
import struct

import pytest

from umlpy.kernel import loader

EHDR = struct.Struct("<16sHHIQQQIHHHHHH")
PHDR = struct.Struct("<IIQQQQQQ")


def elf(phnum=1, phentsize=PHDR.size, phoff=64, e_type=2, machine=62, phdrs=(), tail=b""):
    ident = b"\x7fELF\x02\x01\x01" + b"\0" * 9
    head = EHDR.pack(ident, e_type, machine, 1, 0x401000, phoff, 0, 0, 64, phentsize, phnum,
                     64, 0, 0)
    return head + b"".join(PHDR.pack(*p) for p in phdrs) + tail


INTERP = 3
CASES = {
    "no program headers": elf(phnum=0),
    "65535 program headers": elf(phnum=0xFFFF),
    "wrong phentsize": elf(phentsize=32, phdrs=[(1, 5, 0, 0, 0, 0, 0, 0)]),
    "phoff past 2**64": elf(phoff=0xFFFFFFFFFFFFFFF0, phdrs=[(1, 5, 0, 0, 0, 0, 0, 0)]),
    "relocatable": elf(e_type=1, phdrs=[(1, 5, 0, 0, 0, 0, 0, 0)]),
    "core file": elf(e_type=4, phdrs=[(1, 5, 0, 0, 0, 0, 0, 0)]),
    "aarch64": elf(machine=183, phdrs=[(1, 5, 0, 0, 0, 0, 0, 0)]),
    "i386 machine": elf(machine=3, phdrs=[(1, 5, 0, 0, 0, 0, 0, 0)]),
    "PT_INTERP past the end": elf(phdrs=[(INTERP, 4, 1 << 40, 0, 0, 16, 16, 1)]),
    "PT_INTERP of 2**63 bytes": elf(phdrs=[(INTERP, 4, 120, 0, 0, 1 << 63, 0, 1)]),
    "PT_INTERP not terminated": elf(phdrs=[(INTERP, 4, 120, 0, 0, 8, 8, 1)], tail=b"/lib/ld!"),
    "two PT_INTERP": elf(phnum=2, phdrs=[(INTERP, 4, 176, 0, 0, 4, 4, 1),
                                         (INTERP, 4, 176, 0, 0, 4, 4, 1)], tail=b"/x\0\0"),
    "header only": elf()[:64],
    "empty": b"",
    "just the magic": b"\x7fELF",
    "big-endian": b"\x7fELF\x02\x02\x01" + elf()[7:],
}


@pytest.mark.parametrize("name", sorted(CASES))
def test_bad_elf_is_enoexec(name):
    with pytest.raises(OSError) as e:
        loader.parse_elf(CASES[name])
    assert e.value.errno == errno.ENOEXEC, name


@pytest.mark.parametrize("line", [b"#!", b"#!\n", b"#! \t \n", b"#!\0\0\0\n",
                                  b"#!" + b"x" * 300, b"#!  " + b" " * 300])
def test_bad_shebang_is_enoexec(line):
    with pytest.raises(OSError) as e:
        loader.parse_shebang(line[:loader.BINPRM_BUF_SIZE])
    assert e.value.errno == errno.ENOEXEC


def test_odd_but_valid_shebangs():
    # a long interpreter argument is cut at the buffer, as Linux does
    interp, arg = loader.parse_shebang((b"#!/bin/sh " + b"a" * 400)[:loader.BINPRM_BUF_SIZE])
    assert interp == b"/bin/sh" and arg == b"a" * (loader.BINPRM_BUF_SIZE - 10)
    # the line is a C string to Linux: it ends at a NUL
    assert loader.parse_shebang(b"#!/bin/sh\0junk\n") == (b"/bin/sh", None)
    assert loader.parse_shebang(b"#!/bin/sh -e\0x y\n") == (b"/bin/sh", b"-e")
