"""What both file-mapping schemes (indirect blocks, extents) offer the volume.

A map translates file block numbers to disk blocks. Runs are tuples
(file_block, disk_block, count) with disk_block 0 for holes; allocate()
returns (file_block, disk_block, count, fresh) where fresh blocks hold no
file data yet, so the writer must fill them completely (zeros around the data).

The map talks to the volume through a small context: alloc(inode, goal,
count, metadata) -> (start, n), release_blocks(inode, start, count),
check_block(blk, inode), inode_dirty(inode), goal_for(inode), cache,
block_size, csum and seed_of(inode).
"""
from __future__ import annotations

from typing import List, Tuple

Run = Tuple[int, int, int]
AllocRun = Tuple[int, int, int, bool]


def merge_runs(runs: List[Run]) -> List[Run]:
    """Join neighbours that continue each other (holes with holes)."""
    out: List[Run] = []
    for lblk, pblk, n in runs:
        if out:
            plblk, ppblk, pn = out[-1]
            if plblk + pn == lblk and ((ppblk == 0 and pblk == 0)
                                       or (ppblk and pblk == ppblk + pn)):
                out[-1] = (plblk, ppblk, pn + n)
                continue
        out.append((lblk, pblk, n))
    return out


class Releaser:
    """Collects freed blocks into contiguous runs before handing them back."""

    def __init__(self, ctx, inode) -> None:
        self.ctx, self.inode = ctx, inode
        self.start, self.count = 0, 0

    def add(self, blk: int) -> None:
        if self.count and blk == self.start + self.count:
            self.count += 1
            return
        self.done()
        self.start, self.count = blk, 1

    def add_run(self, start: int, count: int) -> None:
        if self.count and start == self.start + self.count:
            self.count += count
            return
        self.done()
        self.start, self.count = start, count

    def done(self) -> None:
        if self.count:
            self.ctx.release_blocks(self.inode, self.start, self.count)
        self.start, self.count = 0, 0
