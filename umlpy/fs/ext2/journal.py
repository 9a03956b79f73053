"""The one thing we need from an ext3/ext4 journal: is it clean?

We never write the journal. A clean journal (no needs_recovery flag, journal
superblock s_start == 0) can be left alone while we write the file system
directly; anything else needs a replay, which we refuse (run e2fsck first).
"""
from __future__ import annotations

import errno
import struct

from . import constants as c
from .errors import Ext2Error


def check_journal(vol) -> None:
    sb = vol.sb
    if sb.has_incompat(c.INCOMPAT_RECOVER):
        raise Ext2Error("ext2: the journal needs recovery (run e2fsck to replay it)",
                        errno.EUCLEAN)
    if not sb.has_compat(c.COMPAT_HAS_JOURNAL) or not sb.s_journal_inum:
        return
    ino = sb.s_journal_inum
    try:
        inode = vol._iget(ino)
        runs = vol.filemap(inode).lookup(0, 1)
    except OSError as e:
        raise Ext2Error(f"ext2: unreadable journal inode {ino}: {e.strerror}", errno.EUCLEAN)
    pblk = runs[0][1] if runs else 0
    if not pblk:
        raise Ext2Error(f"ext2: journal inode {ino} has no superblock", errno.EUCLEAN)
    raw = vol.dev.read(pblk * vol.block_size, 1024)
    magic, blocktype = struct.unpack_from(">II", raw, 0)
    if magic != c.JBD2_MAGIC or blocktype not in (3, 4):       # v1 or v2 superblock
        raise Ext2Error(f"ext2: bad journal superblock in inode {ino}", errno.EUCLEAN)
    start = struct.unpack_from(">I", raw, 0x1C)[0]
    if start != 0:
        raise Ext2Error("ext2: the journal is not empty (run e2fsck to replay it)",
                        errno.EUCLEAN)
