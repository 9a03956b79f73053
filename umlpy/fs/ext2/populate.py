"""Copy a host directory tree into a volume: files (sparse stays sparse), dirs,
symlinks, hard links, device nodes, FIFOs, sockets, modes, owners and times."""
from __future__ import annotations

import errno
import os
import stat as st
from typing import Callable, Dict, List, Optional, Tuple

from . import constants as c

CHUNK = 1 << 20


def count_entries(host_dir: str) -> int:
    total = 0
    for _, dirs, files in os.walk(host_dir):
        total += len(dirs) + len(files)
    return total


def _copy_data(vol, ino: int, path: str, size: int) -> None:
    fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC | os.O_NOFOLLOW)
    try:
        for start, end in _data_ranges(fd, size):
            pos = start
            while pos < end:
                chunk = os.pread(fd, min(CHUNK, end - pos), pos)
                if not chunk:
                    break
                if chunk.count(0) != len(chunk):          # keep zero runs sparse
                    vol.write(ino, pos, chunk)
                pos += len(chunk)
    finally:
        os.close(fd)
    vol.truncate(ino, size)


def _data_ranges(fd: int, size: int) -> List[Tuple[int, int]]:
    """The file's data regions (all of it when SEEK_DATA is not supported)."""
    out, pos = [], 0
    try:
        while pos < size:
            try:
                start = os.lseek(fd, pos, os.SEEK_DATA)
            except OSError as e:
                if e.errno == errno.ENXIO:
                    break
                raise
            end = min(os.lseek(fd, start, os.SEEK_HOLE), size)
            out.append((start, end))
            pos = end
    except OSError as e:
        if e.errno not in (errno.EINVAL, errno.EOPNOTSUPP):
            raise
        return [(0, size)]
    return out


def _apply(vol, ino: int, info: os.stat_result, owners: bool) -> None:
    vol.setattr(ino, mode=st.S_IMODE(info.st_mode),
                uid=info.st_uid if owners else None, gid=info.st_gid if owners else None,
                atime_ns=info.st_atime_ns, mtime_ns=info.st_mtime_ns)


def populate(vol, host_dir: str, *, dest_ino: int = c.ROOT_INO, owners: bool = True,
             progress: Optional[Callable[[int, int], None]] = None) -> None:
    """Copy host_dir's contents into directory dest_ino of vol (and host_dir's own
    mode, owner and times onto dest_ino). owners=False makes everything root's."""
    total = count_entries(host_dir) if progress else 0
    done = 0
    links: Dict[Tuple[int, int], int] = {}
    stack = [(host_dir, dest_ino, os.lstat(host_dir))]
    finished_dirs = []                          # times are set after the contents
    while stack:
        path, ino, info = stack.pop()
        finished_dirs.append((ino, info))
        with os.scandir(path) as it:
            entries = sorted(it, key=lambda e: e.name)
        for entry in entries:
            name = os.fsencode(entry.name)
            child = entry.path
            cinfo = os.lstat(child)
            mode = cinfo.st_mode
            uid, gid = (cinfo.st_uid, cinfo.st_gid) if owners else (0, 0)
            key = (cinfo.st_dev, cinfo.st_ino)
            if not st.S_ISDIR(mode) and cinfo.st_nlink > 1 and key in links:
                vol.link(ino, name, links[key])
            elif st.S_ISDIR(mode):
                new = vol.mkdir(ino, name, st.S_IMODE(mode), uid, gid)
                stack.append((child, new, cinfo))
            elif st.S_ISLNK(mode):
                new = vol.symlink(ino, name, os.readlink(os.fsencode(child)), uid, gid)
                vol.setattr(new, atime_ns=cinfo.st_atime_ns, mtime_ns=cinfo.st_mtime_ns)
            else:
                new = vol.create(ino, name, mode, uid, gid, rdev=cinfo.st_rdev)
                if st.S_ISREG(mode):
                    _copy_data(vol, new, child, cinfo.st_size)
                _apply(vol, new, cinfo, owners)
                if cinfo.st_nlink > 1:
                    links[key] = new
            done += 1
            if progress:
                progress(done, total)
    for ino, info in reversed(finished_dirs):
        _apply(vol, ino, info, owners)
