"""overlayfs on-disk conventions and copy-up, over the Inode API only.

Whiteouts are character devices 0/0 named like the entry they hide (Linux's
format, so an upper written here reads back under Linux's overlayfs and vice
versa). A directory is opaque when it carries trusted.overlay.opaque="y";
when the upper cannot store that xattr, an empty marker file ".wh..wh..opq"
inside the directory says the same (aufs's name). Names starting ".wh..wh."
in an upper directory are the overlay's own and never shown.

Copy-up makes an upper copy of a lower object: parents first (each keeping
its lower mode, owner and times), then the object with its data, owner,
mode, xattrs and times. Regular files are built under a private staging name
(in the work directory when there is one, else in the target directory) and
renamed into place, so no half-copied file ever shadows the lower one.
"""
from __future__ import annotations

import errno
import itertools
import os
import stat as st
from typing import TYPE_CHECKING, Optional

from umlpy.vfs.inode import Inode

if TYPE_CHECKING:
    from umlpy.fs.overlay import OvlInode

OPAQUE_XATTR = "trusted.overlay.opaque"
OVL_XATTR_PREFIX = "trusted.overlay."
PRIVATE_PREFIX = ".wh..wh."
OPAQUE_MARKER = ".wh..wh..opq"
INDEX_DIR = PRIVATE_PREFIX + "index"     # lower ino -> upper copy, for hard links
WHITEOUT_RDEV = 0
_NO_XATTR = (errno.EOPNOTSUPP, errno.ENOTSUP, errno.EPERM)
_stage_ids = itertools.count(1)
COPY_CHUNK = 1 << 20


def _missing(call, *args) -> Optional[Inode]:
    try:
        return call(*args)
    except FileNotFoundError:
        return None


def upper_lookup(d: Inode, name: str) -> Optional[Inode]:
    return _missing(d.lookup, name)


def is_whiteout(inode: Inode) -> bool:
    return st.S_ISCHR(inode.mode) and inode.getattr().rdev == WHITEOUT_RDEV


def is_opaque(d: Inode) -> bool:
    try:
        if d.getxattr(OPAQUE_XATTR) == b"y":
            return True
    except OSError as e:
        if e.errno != errno.ENODATA and e.errno not in _NO_XATTR:
            raise
    # an upper that cannot keep trusted.* (or hides it from us) uses the marker
    return upper_lookup(d, OPAQUE_MARKER) is not None


def set_opaque(d: Inode) -> None:
    try:
        d.setxattr(OPAQUE_XATTR, b"y", 0)
    except OSError as e:
        if e.errno not in _NO_XATTR:
            raise
        if upper_lookup(d, OPAQUE_MARKER) is None:
            d.create(OPAQUE_MARKER, 0o000, 0, 0)


def make_whiteout(d: Inode, name: str) -> None:
    """Hide `name` of the lower layer. An upper non-directory already there is
    replaced atomically (a staged whiteout renamed over it)."""
    old = upper_lookup(d, name)
    if old is None:
        d.mknod(name, st.S_IFCHR, WHITEOUT_RDEV, 0, 0)
        return
    tmp = stage_name()
    d.mknod(tmp, st.S_IFCHR, WHITEOUT_RDEV, 0, 0)
    try:
        d.rename(tmp, d, name)
    except OSError:
        d.unlink(tmp)
        raise


def clear_private(d: Inode) -> None:
    """Remove the whiteouts and markers an upper directory holds, so that a
    directory empty in the merged view can be removed or replaced."""
    for name, _ino, _t in list(d.readdir()):
        child = upper_lookup(d, name)
        if child is None:
            continue
        if name.startswith(PRIVATE_PREFIX) or is_whiteout(child):
            d.unlink(name)


def stage_name() -> str:
    return f"{PRIVATE_PREFIX}stage.{os.getpid()}.{next(_stage_ids)}"


def copy_data(src: int, dst: int, size: int) -> None:
    """Copy `size` bytes between host descriptors, keeping holes as holes."""
    off = 0
    while off < size:
        try:
            data = os.lseek(src, off, os.SEEK_DATA)
            hole = min(os.lseek(src, data, os.SEEK_HOLE), size)
        except OSError as e:
            if e.errno == errno.ENXIO:      # only a hole is left
                break
            if e.errno != errno.EINVAL:
                raise
            data, hole = off, size          # no hole support: copy everything
        _copy_range(src, dst, data, hole - data)
        off = hole
    os.ftruncate(dst, size)


def _copy_range(src: int, dst: int, off: int, count: int) -> None:
    os.lseek(dst, off, os.SEEK_SET)
    while count > 0:
        try:
            n = os.sendfile(dst, src, off, min(count, COPY_CHUNK))
        except OSError as e:
            if e.errno not in (errno.EINVAL, errno.ENOSYS):
                raise
            buf = os.pread(src, min(count, COPY_CHUNK), off)
            n = len(buf)
            if n:
                os.write(dst, buf)
        if n == 0:                          # the source shrank under us
            return
        off += n
        count -= n


def copy_xattrs(src: Inode, dst: Inode) -> None:
    try:
        names = list(src.listxattr())
    except OSError:
        return
    for name in names:
        if name.startswith(OVL_XATTR_PREFIX):
            continue
        try:
            dst.setxattr(name, src.getxattr(name), 0)
        except OSError as e:
            # what the upper cannot hold (e.g. no trusted.* there) is not fatal
            if e.errno not in _NO_XATTR + (errno.ENODATA,):
                raise


def copy_up(node: "OvlInode", with_data: bool = True) -> Inode:
    """Give `node` an upper inode (its parents first) and return it.
    with_data=False copies an empty file (an O_TRUNC open will truncate anyway)."""
    if node.upper is not None:
        return node.upper
    if node.dead or node.parent is None:
        raise OSError(errno.ENOENT, "no such file or directory")
    fs = node.fs
    fs.check_writable()
    lower = node.lower
    assert lower is not None
    pdir = copy_up(node.parent)
    pattr = pdir.getattr()
    a = lower.getattr()
    kind = st.S_IFMT(a.mode)
    alias = fs.hardlink_copy(lower) if kind != st.S_IFDIR and node.has_other_names() else None
    if alias is not None:
        pdir.link(node.name, alias)          # another name of a lower file already up
        up = pdir.lookup(node.name)
    elif kind == st.S_IFDIR:
        up = pdir.mkdir(node.name, 0o700, a.uid, a.gid)
        _copy_attrs(lower, up, a)
    elif kind == st.S_IFLNK:
        up = pdir.symlink(node.name, lower.readlink(), a.uid, a.gid)
        _copy_attrs(lower, up, a)
    elif kind == st.S_IFREG:
        up = _copy_file(fs.work, pdir, node.name, lower, a, with_data)
    else:
        up = pdir.mknod(node.name, kind | 0o600, a.rdev, a.uid, a.gid)
        _copy_attrs(lower, up, a)
    # Linux keeps the parent's times across a copy-up: nothing changed in the merged view
    try:
        pdir.setattr(atime_ns=pattr.atime_ns, mtime_ns=pattr.mtime_ns)
    except OSError:
        pass
    node.became_upper(up)
    return up


def _copy_attrs(src: Inode, dst: Inode, a) -> None:
    kind = st.S_IFMT(a.mode)
    if kind != st.S_IFLNK:
        dst.setattr(uid=a.uid, gid=a.gid)
        dst.setattr(mode=st.S_IMODE(a.mode))   # after chown, which may drop set-id bits
    copy_xattrs(src, dst)
    try:
        dst.setattr(atime_ns=a.atime_ns, mtime_ns=a.mtime_ns)
    except OSError:
        if kind != st.S_IFLNK:      # not every fs sets a symlink's own times
            raise


def _copy_file(work: Optional[Inode], pdir: Inode, name: str, lower: Inode, a,
               with_data: bool) -> Inode:
    stage_dir = work if work is not None else pdir
    tmp = stage_name()
    up = stage_dir.create(tmp, 0o600, a.uid, a.gid)
    try:
        if with_data and a.size:
            src = lower.open(os.O_RDONLY)
            try:
                dst = up.open(os.O_WRONLY)
                try:
                    copy_data(src, dst, a.size)
                finally:
                    os.close(dst)
            finally:
                os.close(src)
        _copy_attrs(lower, up, a)
        stage_dir.rename(tmp, pdir, name)
    except BaseException:
        try:
            stage_dir.unlink(tmp)
        except OSError:
            pass
        raise
    return pdir.lookup(name)        # path-based inodes (hostfs) name the old place
