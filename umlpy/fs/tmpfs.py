"""tmpfs: a file system in the kernel's memory.

Directories are dicts of name -> inode. A regular file's data lives in one
memfd per inode, the page cache every open shares: open() reopens
/proc/self/fd/<memfd>, so the guest reads, writes and maps the file natively,
and size, atime, mtime and ctime come from the memfd's fstat (native writes
update them; utimens goes to the memfd with os.utime). The memfd is made on
first need, so empty files cost no host descriptor. Device nodes only carry
rdev (the VFS opens devices through its device table); FIFOs and sockets get a
host path in a private scratch directory so the VFS can open or bind them.

Limits (size=, nr_inodes=) follow Linux. Writes, fallocate and ftruncate run
natively on the guest's descriptor, so the kernel cannot refuse a block: a
tmpfs mounted with an explicit size= keeps its files in a private host tmpfs
of that size (tmpfs_backing), which gives ENOSPC where Linux does. Without
the privilege to make one, files are memfds and size= is enforced only on
setattr(size=) (truncate by path, O_TRUNC, copy-up), a native write can pass
it. statfs reports the files' allocated blocks either way.

A memfd is closed when its inode has no name left and no Python reference
(TmpFile.__del__), not at nlink 0: an O_TMPFILE file or an unlinked file
reopened through /proc/PID/fd still needs it. Guest descriptors are separate
open descriptions of the memfd, so they keep working after our close. Every
non-empty file holds one kernel descriptor: RLIMIT_NOFILE bounds their count.
"""
from __future__ import annotations

import errno
import os
import shutil
import stat as st
import tempfile
import weakref
from typing import Callable, Dict, Iterable, Optional, Tuple

from umlpy.fs import tmpfs_backing, tmpfs_options
from umlpy.fs.tmpfs_inodes import (PAGE_SIZE, TmpFile, TmpInode, TmpNode, TmpSymlink,
                                   _close_quietly, _err)
from umlpy.vfs.inode import (RENAME_EXCHANGE, RENAME_NOREPLACE, FileSystem, Inode, StatFs,
                             check_name, check_rename, dtype_of, now_ns)

TMPFS_MAGIC = 0x01021994
BOGO_DIRENT_SIZE = 20           # Linux tmpfs counts 20 bytes of size per directory entry
LINK_MAX = 0xFFFFFFFF
SYMLINK_MAX = PAGE_SIZE - 1


class TmpFs(FileSystem):
    """One tmpfs instance. size/nr_inodes default, as in Linux, to half of
    RAM and half of RAM's pages; scratch_dir is a private host directory for
    FIFOs and sockets (a temporary one is made when needed if not given)."""

    type_name = "tmpfs"
    magic = TMPFS_MAGIC

    def __init__(self, size: Optional[int] = None, nr_inodes: Optional[int] = None,
                 mode: int = 0o1777, uid: int = 0, gid: int = 0,
                 scratch_dir: Optional[str] = None, readonly: bool = False) -> None:
        super().__init__()
        self.readonly = readonly
        ram = tmpfs_options.ram_bytes()
        self._default_size, self._default_inodes = ram // 2, ram // PAGE_SIZE // 2
        # 0 means no limit, as size=0 and nr_inodes=0 do in Linux
        self.size = self._default_size if size is None else self._pages(size) * PAGE_SIZE
        self.nr_inodes = self._default_inodes if nr_inodes is None else nr_inodes
        self.root_mode, self.root_uid, self.root_gid = mode & 0o7777, uid, gid
        self._scratch = scratch_dir
        self._own_scratch = False
        self.next_ino = 1
        self.inodes_used = 0
        # regular files holding a memfd: what statfs adds up
        self._files: "weakref.WeakValueDictionary[int, TmpFile]" = weakref.WeakValueDictionary()
        self.root = TmpDir(self, mode & 0o7777, uid, gid)
        self.root.nlink = 2
        self.backing: Optional[int] = None      # a host tmpfs enforcing size=
        # With a backing, space goes back only when the kernel lets go of a
        # deleted file: the VFS's collection of unused handles, called here
        # once deleted files hold an eighth of the size (not at every unlink).
        self.orphan_hook: Optional[Callable[[], None]] = None
        self._orphan_bytes = 0

    def limit_on_host(self) -> bool:
        """Hold file data in a host tmpfs of our size, so that native writes
        get ENOSPC past it; False when the host does not allow it."""
        if self.backing is None and self.size:
            self.backing = tmpfs_backing.make(self.size)
            if self.backing is not None:
                weakref.finalize(self, _close_quietly, self.backing)
        return self.backing is not None

    @staticmethod
    def _pages(nbytes: int) -> int:
        return (nbytes + PAGE_SIZE - 1) // PAGE_SIZE

    @classmethod
    def from_options(cls, options: str, scratch_dir: Optional[str] = None,
                     readonly: bool = False) -> "TmpFs":
        """A tmpfs from mount(2)'s data string ("size=64k,mode=755,uid=0")."""
        opts = tmpfs_options.parse(options)
        fs = cls(size=opts.get("size"), nr_inodes=opts.get("nr_inodes"),
                 mode=opts.get("mode", 0o1777), uid=opts.get("uid", 0),
                 gid=opts.get("gid", 0), scratch_dir=scratch_dir, readonly=readonly)
        if "size" in opts:
            fs.limit_on_host()
        return fs

    def remount(self, options: str = "", readonly: Optional[bool] = None) -> None:
        """mount -o remount: new limits and/or read-only state (mode, uid and
        gid are ignored, as Linux does on remount)."""
        opts = tmpfs_options.parse(options)
        n = opts.get("nr_inodes")
        if n and n < self.inodes_used:
            raise _err(errno.EINVAL, "nr_inodes below the inodes in use")
        if "size" in opts:
            size = self._pages(opts["size"]) * PAGE_SIZE
            if self.backing is not None:
                tmpfs_backing.resize(self.backing, size)   # EINVAL below what is used
            self.size = size
        if n is not None:
            self.nr_inodes = n
        if readonly is not None:
            self.readonly = readonly

    def mount_options(self) -> str:
        opts = []
        if self.size != self._default_size:
            opts.append(f"size={self.size // 1024}k")
        if self.nr_inodes != self._default_inodes:
            opts.append(f"nr_inodes={self.nr_inodes}")
        if self.root_mode != 0o1777:
            opts.append(f"mode={self.root_mode:o}")
        if self.root_uid:
            opts.append(f"uid={self.root_uid}")
        if self.root_gid:
            opts.append(f"gid={self.root_gid}")
        opts.append("inode64")
        return ",".join(opts)

    # ---- accounting ----
    def bytes_used(self) -> int:
        return sum(f.allocated() for f in list(self._files.values()))

    def statfs(self) -> StatFs:
        # an unlimited tmpfs reports zero blocks and files, as Linux does
        blocks = self.size // PAGE_SIZE
        free = max(0, blocks - self._pages(self.bytes_used()))
        return StatFs(self.magic, f_bsize=PAGE_SIZE, f_blocks=blocks, f_bfree=free,
                      f_bavail=free, f_files=self.nr_inodes,
                      f_ffree=max(0, self.nr_inodes - self.inodes_used), f_namelen=255,
                      f_frsize=PAGE_SIZE)

    def _charge_ino(self) -> None:
        if self.nr_inodes and self.inodes_used >= self.nr_inodes:
            raise _err(errno.ENOSPC, "no inodes left")
        self.inodes_used += 1

    def _new_ino(self, ino: Optional[int] = None) -> int:
        """The next inode number, or `ino`, the one the accelerator gave a
        file it created (csrc/fastcreate.c hands out next_ino on)."""
        self._charge_ino()
        if ino is None:
            ino = self.next_ino
        self.next_ino = max(self.next_ino, ino + 1)
        return ino

    def create_budget(self) -> Optional[Tuple[int, int]]:
        """(next inode number, inodes left) for the accelerator to create
        files with, or None when it may not (size= keeps files in a host
        tmpfs; a read-only mount reached this file system)."""
        if self.backing is not None or self.readonly or self.ro_mounted:
            return None
        left = self.nr_inodes - self.inodes_used if self.nr_inodes else 2**63
        return self.next_ino, max(left, 0)

    def _free_ino(self) -> None:
        self.inodes_used -= 1

    def _orphaned(self, f: TmpFile) -> None:
        """Regular file f lost its last name."""
        if self.backing is None or self.orphan_hook is None:
            return
        self._orphan_bytes += f.allocated()
        if self._orphan_bytes * 8 >= self.size:
            self._orphan_bytes = 0
            self.orphan_hook()

    def scratch_path(self, name: str) -> str:
        if self._scratch is None:
            self._scratch = tempfile.mkdtemp(prefix="umlpy-tmpfs-")
            self._own_scratch = True
        return os.path.join(self._scratch, name)

    def close(self) -> None:
        if self._own_scratch and self._scratch:
            shutil.rmtree(self._scratch, ignore_errors=True)
            self._scratch, self._own_scratch = None, False


class TmpDir(TmpInode):
    def __init__(self, fs: TmpFs, mode: int, uid: int, gid: int) -> None:
        super().__init__(fs, st.S_IFDIR | (mode & 0o7777), uid, gid)
        self.entries: Dict[str, TmpInode] = {}
        self.nlink = 2
        self.dead = False           # removed: nothing may be created in it

    def _size(self) -> int:
        return (len(self.entries) + 2) * BOGO_DIRENT_SIZE

    def _changed(self, t: Optional[int] = None) -> None:
        self.mtime = self.ctime = now_ns() if t is None else t

    def _get(self, name: str) -> TmpInode:
        try:
            return self.entries[name]
        except KeyError:
            raise _err(errno.ENOENT) from None

    def lookup(self, name: str) -> Inode:
        return self._get(name)

    def readdir(self) -> Iterable[Tuple[str, int, int]]:
        return [(n, i.ino, dtype_of(i._mode)) for n, i in list(self.entries.items())]

    def _can_add(self, name: str) -> None:
        check_name(name)
        self._rw()
        if self.dead:
            raise _err(errno.ENOENT)
        if name in self.entries:
            raise _err(errno.EEXIST)

    def _add(self, name: str, inode: TmpInode) -> TmpInode:
        self.entries[name] = inode
        if isinstance(inode, TmpDir):
            self.nlink += 1
        self._changed(inode.ctime)
        return inode

    def create(self, name: str, mode: int, uid: int, gid: int) -> Inode:
        self._can_add(name)
        return self._add(name, TmpFile(self.fs, mode, uid, gid))

    def create_slot(self, limit: int) -> Optional[Tuple[int, int, list]]:
        """(next inode number, inodes left, [(name, inode)]) for the
        accelerator to create files here and unlink them with
        (csrc/fastcreate.c), or None when it may not (more than `limit`
        names, a removed directory, or a file system it may not create in)."""
        if self.dead or len(self.entries) > limit:
            return None
        budget = self.fs.create_budget()
        if budget is None:
            return None
        return budget[0], budget[1], list(self.entries.items())

    def adopt_created(self, name: str, ino: int, memfd: int, key: Tuple[int, int], mode: int,
                      uid: int, gid: int, time_ns: int) -> TmpFile:
        """A file the accelerator created here (csrc/fastcreate.c): inode
        number ino, its data in the kernel's descriptor memfd (host object
        `key`, made at time_ns)."""
        self._can_add(name)
        f = TmpFile(self.fs, mode, uid, gid, ino=ino)
        f.atime = f.mtime = f.ctime = f.btime = time_ns
        f.hold_memfd(memfd, key, time_ns)
        return self._add(name, f)

    def tmpfile(self, mode: int, uid: int, gid: int) -> Inode:
        """O_TMPFILE: a file with no name yet (link() may give it one)."""
        self._can_add("tmpfile")
        f = TmpFile(self.fs, mode, uid, gid)
        f.nlink = 0
        f.linkable = True
        self.fs._free_ino()         # inodes are counted while they have names
        return f

    def mkdir(self, name: str, mode: int, uid: int, gid: int) -> Inode:
        self._can_add(name)
        return self._add(name, TmpDir(self.fs, mode, uid, gid))

    def mknod(self, name: str, mode: int, rdev: int, uid: int, gid: int) -> Inode:
        kind = st.S_IFMT(mode)
        if kind == st.S_IFREG or kind == 0:
            return self.create(name, mode, uid, gid)
        if kind not in (st.S_IFIFO, st.S_IFCHR, st.S_IFBLK, st.S_IFSOCK):
            raise _err(errno.EINVAL)
        self._can_add(name)
        return self._add(name, TmpNode(self.fs, kind | (mode & 0o7777), rdev, uid, gid))

    def symlink(self, name: str, target: str, uid: int, gid: int) -> Inode:
        if not target:
            raise _err(errno.ENOENT)
        if len(target.encode("utf-8", "surrogateescape")) > SYMLINK_MAX:
            raise _err(errno.ENAMETOOLONG)
        self._can_add(name)
        return self._add(name, TmpSymlink(self.fs, target, uid, gid))

    def link(self, name: str, inode: Inode) -> None:
        if not isinstance(inode, TmpInode) or inode.fs is not self.fs:
            raise _err(errno.EXDEV)
        if isinstance(inode, TmpDir):
            raise _err(errno.EPERM)
        self._can_add(name)
        if inode.nlink >= LINK_MAX:
            raise _err(errno.EMLINK)
        if inode.nlink == 0:
            # only an O_TMPFILE file may come back from zero links
            if not getattr(inode, "linkable", False):
                raise _err(errno.ENOENT)
            self.fs._charge_ino()
            inode.linkable = False      # type: ignore[attr-defined]
        inode.nlink += 1
        t = now_ns()
        inode.touch_ctime(t)
        self.entries[name] = inode
        self._changed(t)

    def unlink(self, name: str, t: Optional[int] = None) -> None:
        """Remove name; at time t (ns) when the accelerator did it then."""
        check_name(name)
        self._rw()
        victim = self._get(name)
        if isinstance(victim, TmpDir):
            raise _err(errno.EISDIR)
        del self.entries[name]
        if t is None:
            t = now_ns()
        victim._drop_link()
        victim.touch_ctime(t)
        self._changed(t)

    def rmdir(self, name: str) -> None:
        check_name(name)
        self._rw()
        victim = self._get(name)
        if not isinstance(victim, TmpDir):
            raise _err(errno.ENOTDIR)
        if victim.entries:
            raise _err(errno.ENOTEMPTY)
        del self.entries[name]
        self._kill_dir(victim)
        self._changed()

    def _kill_dir(self, d: "TmpDir") -> None:
        """d's name (and its '..' in us) are gone."""
        self.nlink -= 1
        d.nlink = 0
        d.dead = True
        d.fs._free_ino()
        d.touch_ctime()

    def rename(self, name: str, newdir: Inode, newname: str, flags: int = 0) -> None:
        check_rename(name, newname, flags)
        if not isinstance(newdir, TmpInode) or newdir.fs is not self.fs:
            raise _err(errno.EXDEV)
        if not isinstance(newdir, TmpDir):
            raise _err(errno.ENOTDIR)
        self._rw()
        src = self._get(name)
        dst = newdir.entries.get(newname)
        if newdir.dead:
            raise _err(errno.ENOENT)
        if flags & RENAME_EXCHANGE:
            if dst is None:
                raise _err(errno.ENOENT)
            self._exchange(name, src, newdir, newname, dst)
            return
        if dst is not None:
            if flags & RENAME_NOREPLACE:
                raise _err(errno.EEXIST)
            if dst is src:
                return                  # two names of one inode: nothing happens
            if isinstance(src, TmpDir):
                if not isinstance(dst, TmpDir):
                    raise _err(errno.ENOTDIR)
                if dst.entries:
                    raise _err(errno.ENOTEMPTY)
            elif isinstance(dst, TmpDir):
                raise _err(errno.EISDIR)
        t = now_ns()
        if dst is not None:
            if isinstance(dst, TmpDir):
                newdir._kill_dir(dst)
            else:
                dst._drop_link()
                dst.touch_ctime(t)
        del self.entries[name]
        newdir.entries[newname] = src
        if isinstance(src, TmpDir) and newdir is not self:
            self.nlink -= 1
            newdir.nlink += 1
        src.touch_ctime(t)
        self._changed(t)
        newdir._changed(t)

    def _exchange(self, name: str, src: TmpInode, newdir: "TmpDir", newname: str,
                  dst: TmpInode) -> None:
        self.entries[name], newdir.entries[newname] = dst, src
        if newdir is not self:
            delta = isinstance(src, TmpDir) - isinstance(dst, TmpDir)
            self.nlink -= delta
            newdir.nlink += delta
        t = now_ns()
        src.touch_ctime(t)
        dst.touch_ctime(t)
        self._changed(t)
        newdir._changed(t)

    def _truncate(self, size: int) -> None:
        raise _err(errno.EISDIR)

    def open(self, flags: int) -> int:
        raise _err(errno.EISDIR)

