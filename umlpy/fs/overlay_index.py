"""overlayfs: inode numbers and the hard-link index (a base of OverlayFs).

st_ino is (real ino << 1) | layer: lower objects even, upper ones odd. A
layer's tree may span several devices (a host directory with mounts below
it): objects on a device other than the layer's own get a 16-bit device tag
in bits 47..62, the same tag on every mount unless two devices' hashes meet.

The index: a hidden upper directory (".wh..wh.index") holding, under the
lower inode number ("<ino>" or "<ino>.<dev>" off the lower's own device), a
hard link to the upper copy of every lower file with several names.
"""
from __future__ import annotations

from typing import Dict, Optional, Set, Tuple

from umlpy.fs import overlay_copyup as cu
from umlpy.vfs.inode import FileSystem, Inode

_INO_MASK = (1 << 64) - 1
_DEV_SHIFT = 47                 # a secondary device's tag: st_ino bits 47..62
_DEV_TAGS = 0xFFFF


def _dev_hash(dev: int) -> int:
    """1..65535 from a device number, the same on every mount."""
    mixed = (dev * 0x9E3779B97F4A7C15) & _INO_MASK       # Fibonacci hashing
    return 1 + (mixed >> 32) % _DEV_TAGS


class OvlNumbering(FileSystem):
    """What OverlayFs knows about inode numbers and hard links."""

    lower_root: Inode
    upper_root: Optional[Inode]
    work: Optional[Inode]

    def _init_numbering(self) -> None:
        # each layer's own device; objects on others get a tag
        self._primary = (self.lower_root.key[0],
                         self.upper_root.key[0] if self.upper_root is not None else None)
        self._tags: Dict[int, int] = {}
        # upper inode key -> (lower dev, lower ino), for files copied up during
        # this mount and for every indexed one
        self.origin: Dict[Tuple[int, int], Tuple[int, int]] = {}
        self.index: Optional[Inode] = None
        self._indexed: Set[Tuple[int, int]] = set()
        self._load_index()

    def _index_parent(self) -> Optional[Inode]:
        return self.work if self.work is not None else self.upper_root

    def _load_index(self) -> None:
        top = self._index_parent()
        if top is None:
            return
        self.index = cu.upper_lookup(top, cu.INDEX_DIR)
        if self.index is not None:
            udev = self.index.key[0]
            for name, ino, _t in self.index.readdir():
                lino, _, ldev = name.partition(".")
                if lino.isdigit() and (ldev.isdigit() or not ldev):
                    self.origin[(udev, ino)] = (int(ldev) if ldev else self._primary[0],
                                                int(lino))
                    self._indexed.add((udev, ino))

    def ovl_ino(self, dev: int, ino: int, layer: int) -> int:
        """st_ino of an object whose real inode is `ino` on device `dev` of the
        lower (layer 0) or upper (layer 1) layer."""
        n = (ino << 1) | layer
        if dev != self._primary[layer]:
            n ^= self._dev_tag(dev) << _DEV_SHIFT
        return n & _INO_MASK

    def _dev_tag(self, dev: int) -> int:
        tag = self._tags.get(dev)
        if tag is None:
            used = set(self._tags.values())
            tag = _dev_hash(dev)
            while tag in used:          # two devices never share a tag in one mount
                tag = tag % _DEV_TAGS + 1
            self._tags[dev] = tag
        return tag

    def _index_name(self, lower: Inode) -> str:
        dev = lower.key[0]
        return str(lower.ino) if dev == self._primary[0] else f"{lower.ino}.{dev}"

    def hardlink_copy(self, lower: Inode) -> Optional[Inode]:
        """The upper copy of another name of `lower`, if one was made."""
        if self.index is None:
            return None
        return cu.upper_lookup(self.index, self._index_name(lower))

    def note_copy(self, lower: Inode, upper: Inode, nlink: int) -> None:
        """A non-directory was copied up: remember its origin and, when the
        lower file has other names, index it so they find the copy."""
        self.origin[upper.key] = (lower.key[0], lower.ino)
        if nlink <= 1:
            return
        if self.index is None:
            self.index = self._index_parent().mkdir(cu.INDEX_DIR, 0o700, 0, 0)
        name = self._index_name(lower)
        if cu.upper_lookup(self.index, name) is None:
            self.index.link(name, upper)
        self._indexed.add(upper.key)

    def is_indexed(self, upper: Inode) -> bool:
        return upper.key in self._indexed

