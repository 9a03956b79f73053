"""Stat answers the accelerator may give again without the kernel in Python
(csrc/fastnotif.c, csrc/statpath.c).

After the kernel answers an fstat, a read-only open or a stat of a path, it
publishes what it answered when the inode allows (Inode.stat_view). The
accelerator gives it again to the next fstat of that host object, or stat,
access or read-only open of that path by a task of the same resolution
context (umlpy/kernel/contexts.py), until the kernel handles any call or
stop that may change names or attributes: the accelerator ends every
published answer then, by itself.

After the kernel creates a file in a tmpfs directory, it publishes that
directory for the creating task and the path text that led there: the
accelerator may make the next files there itself (csrc/fastcreate.c), until
the kernel next handles a call that may change names or credentials. It
logs the files it made, which the kernel adopts before its next event
(adopt_creates).

A tmpfs file's view may also let the accelerator answer fchmod, fchown and
futimens of it (csrc/fastattr.c), unless a read-only mount ever reached its
file system: it logs the mode and owner it gave, and the kernel adopts them
before its next event (adopt_attr_changes).
"""
from __future__ import annotations

import errno
import os
import stat as st
import struct
from typing import Optional

from umlpy.fs import hostfs, tmpfs_inodes
from umlpy.syscalls.call import AT_FDCWD, Call
from umlpy.vfs import ops, perm
from umlpy.vfs.inode import STAT_CHECK_CTIME, STAT_SETATTR, Attr, Inode
from umlpy.vfs.mount import Path, names_changed


def _publish_fd_view(c: Call, key: tuple, path: Path, view, a: Attr) -> None:
    flags, host_ctime, host_fd = view
    if flags & STAT_SETATTR:
        fs = path.mount.fs
        if fs.readonly or fs.ro_mounted:    # (a read-only mount marks ro_mounted)
            flags &= ~STAT_SETATTR          # EROFS: the kernel words it
    c.kernel.tracer.fstat_publish(key, flags, a.ctime_ns if host_ctime is None else host_ctime,
                                  a, host_fd)


def publish_fd(c: Call, s: os.stat_result, path: Path, a: Attr) -> None:
    """fstat of the guest descriptor whose host object's stat is `s` gives
    `a`. When that object is not the inode's own but a stand-in made for
    one open (a directory's: opendir fstats it), attributes that live in
    the kernel alone are published for as long as the stand-in's ctime
    stands: a later stand-in may get a closed one's inode number."""
    inode = path.inode
    view = inode.stat_view()
    if view is None:
        return
    key = (s.st_dev, s.st_ino)
    if inode.host_key() == key:
        _publish_fd_view(c, key, path, view, a)
    elif view[0] == 0:
        c.kernel.tracer.fstat_publish(key, STAT_CHECK_CTIME, s.st_ctime_ns, a)


def publish_open(c: Call, path: Path) -> None:
    """After an open: the fstat (stdio, ld.so, tar) or fchmod, fchown and
    futimens (tar x, cp -p) that usually follow. (Keyed by the inode's own
    host object: when the open made a stand-in instead, the view is simply
    never asked for.)"""
    inode = path.inode
    view = inode.stat_view()
    if view is not None and c.kernel.tracer.publish_stats:
        key = inode.host_key()
        if key is not None:
            _publish_fd_view(c, key, path, view, ops.getattr_of(path))


def publish_listing_ahead(c: Call, h, prefix: bytes, name: str, nofollow: bool) -> None:
    """A stat from directory descriptor h of a name it listed (which this
    task may search, then): ls -l, tar c, find and du stat every entry in
    turn, so publish the next STAT_AHEAD entries' stats for this task now.
    A name published before whose answer C lost (its slot went to another
    path) starts the window again after it, rather than running further
    ahead: answers published far ahead of the reader are lost the more.
    Not a mount point, nor a symbolic link to follow: the walk decides those."""
    listing = h.listing
    start = _after_name(listing, h.stat_ahead, name)
    end = min(len(listing), start + STAT_AHEAD)
    h.stat_ahead = end
    where = h.path
    if where.mount.fs.volatile:
        return                  # names that change behind the kernel (hostfs, procfs)
    with hostfs.fresh_lookups():
        _publish_entries(c, where, listing[start:end], prefix, nofollow)


def _publish_entries(c: Call, where: Path, entries: list, prefix: bytes, nofollow: bool) -> None:
    lookup = where.inode.lookup
    mounted_on = c.kernel.vfs.mounts.mount_points
    for entry, _ino, _dtype in entries:
        if entry == "." or entry == "..":
            continue
        try:
            inode = lookup(entry)
        except OSError:
            continue            # gone since the listing, or a mount's glue
        if (not nofollow and st.S_ISLNK(inode.mode)) or \
                mounted_on.get((where.mount.id, inode.key)):
            continue
        child = where.child(entry, inode)
        publish_path(c, prefix + os.fsencode(entry), nofollow, inode, ops.view_attr_of(child),
                     child)


def _after_name(listing: list, ahead: int, name: str) -> int:
    """Where the next window starts: after `name` when it is among the last
    entries published, else after everything published."""
    for i in range(ahead - 1, max(ahead - 2 * STAT_AHEAD, 0) - 1, -1):
        if listing[i][0] == name:
            return i + 1
    return ahead


def publish_create_dir(c: Call, dirfd: int, path: str, lk) -> None:
    """The kernel just created or unlinked lk.name in lk.parent from `path`
    (open with O_CREAT, unlink): the next creates and unlinks there by the
    same path text may be made in C."""
    tracer = c.kernel.tracer
    if not tracer.publish_stats or not c.kernel.vfs.walker.last_stable:
        return
    parent = lk.parent
    slot_of = getattr(parent.inode, "create_slot", None)     # tmpfs directories
    cut = path.rfind("/") + 1
    if slot_of is None or path[cut:] != lk.name:
        return
    slot = slot_of(CREATE_NAMES_MAX)
    if slot is None:
        return
    next_ino, inodes_left, entries = slot
    key = _walk_key(c, dirfd, path[:cut])
    creds = c.task.creds
    dir_attr = parent.inode.getattr()
    gid = ops.new_file_gid(dir_attr, creds)
    names = [os.fsencode(name) for name, _ in entries]
    tracer.create_publish(c.task.host_tid, key, creds.fsuid, gid, c.task.fs.umask,
                          parent.mount.fs.dev, next_ino, inodes_left, names,
                          _removable(c, parent, dir_attr, entries), parent)


def _removable(c: Call, parent: Path, dir_attr: Attr, entries: list) -> bytes:
    """Which of a directory's entries the task may unlink (ops.unlink's
    checks; the directory's own permission the create or unlink just
    passed): not a directory nor a mount point, and the sticky bit's owner
    rule."""
    fsuid = c.task.creds.fsuid
    owner_only = perm.sticky_limits(dir_attr, c.task.creds)
    mounted = c.kernel.vfs.mounts.mount_points
    mount_id = parent.mount.id
    out = bytearray(len(entries))
    for i, (_name, inode) in enumerate(entries):
        if inode.is_dir() or (mounted and (mount_id, inode.key) in mounted):
            continue
        if owner_only and inode.getattr().uid != fsuid:
            continue
        out[i] = 1
    return bytes(out)


CREATE_NAMES_MAX = 2048     # a bigger directory's creates stay in Python (fastcreate.c's set)


def adopt_creates(kernel) -> None:
    """Give the files the accelerator created their names (and handles), and
    take away the names it unlinked, in the order it did them."""
    handles = kernel.vfs.handles
    for parent, raw, ino, key, memfd, mode, uid, gid, time_ns in kernel.tracer.take_creates():
        name = os.fsdecode(raw)
        try:
            if parent is None:
                raise OSError(errno.ESTALE, "no published directory")
            if ino is None:
                _adopt_unlink(handles, parent, name, time_ns)
                continue
            inode = parent.inode.adopt_created(name, ino, memfd, key, mode, uid, gid, time_ns)
        except OSError as e:    # a bug: C did what the kernel would not have
            if memfd >= 0:
                os.close(memfd)
            kernel.oopses += 1
            kernel.klog(f"oops: adopting {'the unlink of' if ino is None else 'the created file'} "
                        f"{name!r}: {e}")
            continue
        handles.register(key, parent.child(name, inode))
    names_changed(structural=False)


def _adopt_unlink(handles, parent: Path, name: str, time_ns: int) -> None:
    """What ops.unlink does after its checks, which C made by the published
    directory, at time_ns."""
    inode = parent.inode.lookup(name)
    last = ops.last_name_size(inode)
    parent.inode.unlink(name, time_ns)
    parent.dentry.drop_child(name)
    if last is not None:
        handles.orphaned(last)


def adopt_attr_changes(kernel) -> None:
    """Take what the accelerator's fchmod and fchown gave tmpfs files."""
    # each change carries the file's whole mode, owner and ctime: the last
    # of a file's changes (tar x: fchown, then fchmod) is the one to take
    latest = {change[0]: change for change in kernel.tracer.take_attr_changes()}
    for key, mode, uid, gid, ctime_ns, host_ctime_ns in latest.values():
        tmpfs_inodes.adopt_attr_change(key, mode, uid, gid, ctime_ns, host_ctime_ns)
    names_changed(structural=False)     # as the kernel's own chmod does: cached walks may hold it


def dir_key(s: os.stat_result) -> bytes:
    """What keys a path from the directory descriptor whose host object's
    stat is `s` (csrc/statpath.c): its identity, ctime included (a stand-in's
    inode number may be reused once it is closed)."""
    return b"\0" + _DIR_KEY.pack(s.st_dev, s.st_ino, s.st_ctime_ns)


_DIR_KEY = struct.Struct("<QQq")


def _walk_key(c: Call, dirfd: int, text: str) -> bytes:
    """The key of path text `text` (all or the start of what the call walked
    from dirfd), with the dirfd's stat the walk already took."""
    key = os.fsencode(text)
    if text[:1] != "/" and dirfd != AT_FDCWD:
        s = c.dir_stat if c.dir_stat is not None else c.kernel.fds.stat(c.task, dirfd)
        key = dir_key(s) + key
    return key
STAT_AHEAD = 64         # entries of a listing published at a time


def publish_path(c: Call, name: bytes, nofollow: bool, inode: Optional[Inode],
                 a: Optional[Attr], path: Optional[Path] = None) -> None:
    """The calling task's stat of path `name` (absolute or from its cwd, or
    dir_key() + a path from a directory descriptor; walked through file
    systems whose names only the kernel changes) gives `a`, or ENOENT when
    inode is None. A regular file at `path` that the task may read may then
    be opened for reading in C too (csrc/fastopen.c)."""
    tracer = c.kernel.tracer
    if inode is None:
        tracer.path_publish(c.task.host_tid, name, nofollow, errno.ENOENT)
        return
    view = inode.stat_view()
    if view is None:
        return
    flags, host_ctime, host_fd = view
    if flags and host_fd < 0:
        return              # live fields with nothing to read them from
    # (the kernel's descriptor host_fd is of the inode's own host object)
    key = inode.host_key() if host_fd >= 0 else None
    slot = tracer.path_publish(c.task.host_tid, name, nofollow, 0, host_fd, flags,
                               a.ctime_ns if host_ctime is None else host_ctime, a, key)
    if slot < 0 or path is None or not st.S_ISREG(a.mode):
        return
    recipe = inode.open_recipe()
    if key is None:
        key = inode.host_key()
    if recipe is None or key is None:
        return
    try:
        perm.permission(a, c.task.creds, perm.MAY_READ)
    except OSError:
        return
    tracer.path_open_publish(slot, recipe, key, path)


def publish_opened_path(c: Call, dirfd: int, path: str, nofollow: bool, p: Path) -> None:
    """The kernel opened `path` for reading: the next open of it by this
    task (a program reopening a file, open+close in a loop) or stat of it
    may be answered in C."""
    if not c.kernel.tracer.publish_stats or not c.kernel.vfs.walker.last_stable:
        return
    publish_path(c, _walk_key(c, dirfd, path), nofollow, p.inode, ops.getattr_of(p), p)


def publish_missing(c: Call, dirfd: int, path: str, nofollow: bool) -> None:
    """The calling task's walk of `path` found no such file (the last name,
    or a directory on the way): C may answer the same walk with ENOENT.
    nofollow: as walked (a dangling symbolic link is missing only when
    followed)."""
    if not c.kernel.tracer.publish_stats or not c.kernel.vfs.walker.last_stable:
        return
    publish_path(c, _walk_key(c, dirfd, path), nofollow, None, None)


def adopt_opens(kernel) -> None:
    """Note where the descriptors the accelerator opened were opened by."""
    handles = kernel.vfs.handles
    for path, key in kernel.tracer.take_opens():
        if path is not None:
            handles.register(key, path)
