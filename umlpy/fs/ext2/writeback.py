"""sync(): the order in which dirty metadata reaches the device.

The rule behind it: after a crash, a directory entry may point at an inode
that is free or not yet written (e2fsck -p clears such entries by itself), and
link counts may be off (it fixes those too), but an inode in use must never be
left without an entry naming it (e2fsck -p stops at unattached inodes), nor an
inode point at blocks not yet written. So sync() writes:

  1. dev.flush(): file data, which write() puts straight on the device, is
     durable before anything points at it;
  2. TREE blocks: indirect, extent and attribute blocks, and every block
     allocated since the last sync (new directory blocks too);
  3. files that lost links (unlinked, freed), before the directory blocks
     that drop their names; and live directories, so one that grew covers its
     new blocks before the inodes named there are written;
  4. directory blocks that gained entries: before the inodes they name;
  5. every other inode: new ones, higher link counts, sizes and times, and
     removed directories (after the new entries of anything moved out);
  6. directory blocks that lost entries: removals are kept out of the block
     bytes until this point (directory.py), so a block that both gained and
     lost entries is written twice, once at step 4 and once here;
  7. the blocks and inodes freed since the last sync go back to the bitmaps
     (never reused before: see alloc.py); bitmap blocks; group descriptors;
     the superblock with its counts; dev.flush().

A directory moved to another parent changes two directories; a crash between
those two block writes can leave it linked twice or not at all, which needs a
full e2fsck, as with ext2 under Linux.
"""
from __future__ import annotations

import stat as st
from typing import Dict, List, Tuple

from .blockcache import BITMAP, DIR_ADD, DIR_MIXED, DIR_REMOVE, TREE


def write_back(vol) -> None:
    cache, alloc = vol.cache, vol.alloc_state
    vol.dev.flush()
    written = cache.write_back(TREE)
    early = alloc.finish_groups(clear=False)
    if early:
        written += vol._write_group_descriptors(early)
    early, late = _split_inodes(vol)
    written += _write_inodes(vol, early)
    written += cache.write_back(DIR_ADD) + cache.write_back(DIR_MIXED)
    written += _write_inodes(vol, late)
    for directory in list(vol.dirs_with_removals.values()):
        directory.apply_removals()
    vol.dirs_with_removals.clear()
    written += cache.write_back(DIR_REMOVE)
    vol._dirty_inodes.clear()
    vol._new_inodes.clear()
    vol.unnamed_early.clear()
    if alloc.has_pending():
        alloc.apply_pending_frees()
        vol._sb_dirty = True
    written += cache.write_back(BITMAP)
    changed = alloc.finish_groups()
    if changed:
        written += vol._write_group_descriptors(changed)
        vol._sb_dirty = True
    vol._bytes_written += written
    if vol._sb_dirty:
        vol._write_superblock()
    vol.dev.flush()


def _split_inodes(vol) -> Tuple[list, list]:
    """(inodes to write before directory blocks gain entries, the rest)."""
    early, late = [], []
    for inode in vol._dirty_inodes.values():
        if inode.ino in vol._new_inodes:
            late.append(inode)                    # after the entry naming it
        elif inode.ino in vol.unnamed_early:      # its entry left in an early block
            early.append(inode)
        elif st.S_ISDIR(inode.i_mode):
            # a live directory first, so one that grew covers its new blocks; a
            # removed one last, after the new entries of what was moved out of it
            (early if inode.i_links_count else late).append(inode)
        else:
            blk, off = vol._inode_location(inode.ino)
            on_disk = int.from_bytes(vol.cache.get(blk)[off + 0x1A:off + 0x1C], "little")
            (early if inode.i_links_count < on_disk else late).append(inode)
    return early, late


def _write_inodes(vol, inodes: list) -> int:
    """Copy inodes into their inode-table blocks and write those blocks."""
    by_block: Dict[int, List[Tuple[int, object]]] = {}
    for inode in inodes:
        if vol.csum:
            inode.update_checksum(vol.fs_seed)
        blk, off = vol._inode_location(inode.ino)
        by_block.setdefault(blk, []).append((off, inode))
        inode.dirty = False
    size, bs = vol.inode_size, vol.block_size
    for blk in sorted(by_block):
        buf = vol.cache.get(blk)
        for off, inode in by_block[blk]:
            buf[off:off + size] = inode.buf
        vol.dev.write(blk * bs, bytes(buf))
    return len(by_block) * bs
