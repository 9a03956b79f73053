"""execve's preparation: `#!` scripts, ELF checks, and exec images.

The host cannot exec a file by a guest path, and would look up PT_INTERP in the
host's root. So an ELF taken from the guest's tree is copied into a sealed
memfd (an "exec image", cached per file version) and handed to the keeper
(umlpy.host.keeper), a process as unprivileged as the guests; a dynamic one
gets its PT_INTERP rewritten to /proc/<keeper pid>/fd/<N>, the image of the
guest's own ld.so. The host then execs the image by that same kind of path.
"""
from __future__ import annotations

import errno
import fcntl
import os
import shutil
import stat as st
import struct
from collections import OrderedDict
from typing import Callable, Dict, List, Optional, Tuple

from umlpy.record import Record
from umlpy.vfs import perm
from umlpy.vfs.mount import MS_NOEXEC

BINPRM_BUF_SIZE = 256
MAX_INTERP_DEPTH = 4            # nested #! interpreters, as Linux allows
EM_X86_64 = 62
PT_INTERP = 3
MFD_CLOEXEC = 0x1
MFD_ALLOW_SEALING = 0x2
MFD_EXEC = 0x10
MAX_IMAGES = 256                # exec images kept (each is a copy of a program)
_EHDR = struct.Struct("<16sHHIQQQIHHHHHH")
_PHDR = struct.Struct("<IIQQQQQQ")


class ExecError(OSError):
    pass


def _noexec(why: str) -> ExecError:
    return ExecError(errno.ENOEXEC, f"exec format error: {why}")


def parse_shebang(head: bytes) -> Tuple[bytes, Optional[bytes]]:
    """The interpreter and its single optional argument from a `#!` line."""
    line = head[2:]
    nl = line.find(b"\n")
    if nl < 0:
        # The whole buffer is one line: fine only if the interpreter name ends in it.
        stripped = line.lstrip(b" \t")
        if not any(c in stripped for c in (b" ", b"\t")):
            raise _noexec("#! line too long")
    else:
        line = line[:nl]
    # Linux reads the line as a C string: it ends at the first NUL
    line = line.split(b"\0", 1)[0].strip(b" \t\r")
    if not line:
        raise _noexec("empty #! line")
    parts = line.split(None, 1)
    interp = parts[0]
    arg = parts[1].strip(b" \t") if len(parts) > 1 else None
    return interp, (arg or None)


class ElfInfo(Record):
    __slots__ = _fields = ("interp", "interp_offset", "interp_size")

    def __init__(self, interp: Optional[bytes], interp_offset: int, interp_size: int) -> None:
        self.interp = interp
        self.interp_offset = interp_offset
        self.interp_size = interp_size


def parse_elf(data: bytes) -> ElfInfo:
    """Check that this is an x86-64 ELF executable the host can run; find PT_INTERP."""
    if len(data) < _EHDR.size or data[:4] != b"\x7fELF":
        raise _noexec("not ELF")
    (ident, e_type, e_machine, _ver, _entry, phoff, _shoff, _flags, _ehsize,
     phentsize, phnum, *_rest) = _EHDR.unpack_from(data)
    if ident[4] != 2 or ident[5] != 1:
        raise _noexec("not a 64-bit little-endian ELF")
    if e_machine != EM_X86_64:
        raise _noexec(f"wrong architecture (e_machine {e_machine})")
    if e_type not in (2, 3):
        raise _noexec("not an executable or shared object")
    if phentsize != _PHDR.size or phnum == 0 or phnum > 1024:
        raise _noexec("bad program headers")
    if phoff + phnum * phentsize > len(data):
        raise _noexec("program headers past the end of the file")
    interp, ioff, isize = None, 0, 0
    for i in range(phnum):
        p_type, _pf, p_offset, _va, _pa, p_filesz, _memsz, _align = _PHDR.unpack_from(
            data, phoff + i * phentsize)
        if p_type != PT_INTERP:
            continue
        if interp is not None:
            raise _noexec("two PT_INTERP headers")
        if p_filesz < 2 or p_filesz > 4096 or p_offset + p_filesz > len(data):
            raise _noexec("bad PT_INTERP")
        raw = data[p_offset:p_offset + p_filesz]
        if raw[-1] != 0:
            raise _noexec("PT_INTERP not NUL-terminated")
        interp, ioff, isize = raw.split(b"\0", 1)[0], p_offset, p_filesz
    return ElfInfo(interp, ioff, isize)


class ExecImage(Record):
    __slots__ = _fields = ("fd", "dev", "ino", "interp_key", "path", "number", "links")

    def __init__(self, fd: int, dev: int, ino: int, interp_key: Optional[tuple],
                 path: str = "", number: int = -1,
                 links: Optional[Dict[str, str]] = None) -> None:
        self.fd = fd                # memfd in the kernel process
        self.dev = dev
        self.ino = ino
        self.interp_key = interp_key
        self.path = path            # how guests name it: /proc/<keeper pid>/fd/<N>
        self.number = number        # N, its fd in the keeper
        # name -> its exec_path; a fresh dict per image
        self.links = {} if links is None else links

    def exec_path(self, link_dir: str, name: str) -> str:
        """A path to exec this image by whose last component is `name`: the host
        names the new process (its comm) after it. A symlink to self.path."""
        name = (name or "exe").replace("/", "_")[:64] or "exe"
        link = self.links.get(name)
        if link is not None:
            return link
        d = os.path.join(link_dir, str(self.ino))
        link = os.path.join(d, name)
        os.makedirs(d, mode=0o700, exist_ok=True)
        try:
            os.symlink(self.path, link)
        except FileExistsError:
            pass
        self.links[name] = link
        return link


class ExecSource(Record):
    """A file an exec image was made from, as the loader opened it."""
    __slots__ = _fields = ("fd", "stat", "key", "path", "host_path")

    def __init__(self, fd: int, stat: os.stat_result, key: tuple, path: object,
                 host_path: str = "") -> None:
        self.fd = fd                # the kernel's descriptor of it
        self.stat = stat            # the version the image was made from
        self.key = key              # its handle key (umlpy.vfs.handles)
        self.path = path            # its vfs Path
        self.host_path = host_path  # ld.so that is the host's own: the host's path of it


class ExecPlan(Record):
    __slots__ = _fields = ("image", "guest_path", "argv", "name")

    def __init__(self, image: ExecImage, guest_path: object, argv: Optional[List[bytes]],
                 name: str = "") -> None:
        self.image = image
        self.guest_path = guest_path    # vfs Path of the program finally run
        self.argv = argv                # a new argv (scripts), or None to keep the guest's
        self.name = name                # last component of the path as asked for (comm)


def _file_key(s: os.stat_result) -> tuple:
    return (s.st_dev, s.st_ino, s.st_size, s.st_mtime_ns, s.st_ctime_ns)


def _same_host_file(path: str, s: os.stat_result) -> bool:
    """The host's `path` is the file whose status is `s` (same version)."""
    if not path.startswith("/"):
        return False
    try:
        return _file_key(os.stat(path)) == _file_key(s)
    except OSError:
        return False


class Loader:
    def __init__(self, vfs, link_dir: str, keeper: Callable[[], object]) -> None:
        """keeper: gives the umlpy.host.keeper.Keeper that holds the images."""
        self.vfs = vfs
        self.link_dir = link_dir
        self.keeper = keeper
        self.images: "OrderedDict[tuple, ExecImage]" = OrderedDict()   # least recent first
        self.infos: Dict[tuple, ElfInfo] = {}       # parsed headers, per file version
        self.on_forget: Callable[[], None] = lambda: None    # an image is about to go

    def close(self) -> None:
        """The kernel's copies; the keeper's go with the keeper."""
        for img in self.images.values():
            os.close(img.fd)
        self.images.clear()

    def exec_path(self, plan: "ExecPlan") -> str:
        return plan.image.exec_path(self.link_dir, plan.name)

    def _open_exec(self, path: str, resolve) -> Tuple[int, os.stat_result, object, tuple]:
        """Open the program `path` names (resolve: guest path -> vfs Path, as
        the calling task sees it) after the checks execve makes. Also gives
        the file's handle key (umlpy.vfs.handles)."""
        where, creds = resolve(path)
        a = where.inode.getattr()
        if not st.S_ISREG(a.mode) or where.mount.flags & MS_NOEXEC:
            raise ExecError(errno.EACCES, "permission denied")
        try:
            perm.permission(a, creds, perm.MAY_EXEC)
        except OSError:
            raise ExecError(errno.EACCES, "permission denied") from None
        fd = where.inode.open(os.O_RDONLY)
        s = os.fstat(fd)
        key = where.inode.host_key() or (s.st_dev, s.st_ino)
        self.vfs.handles.register(key, where)
        return fd, s, where, key

    def prepare(self, path: str, resolve, argv, keep: Optional[list] = None) -> ExecPlan:
        """argv: the guest's argv, or a function reading it (only a #! script
        needs it: an ELF keeps the guest's own, which the host reads).
        keep: a list that receives, for an ELF, ExecSources of the program and
        then of its ld.so; their descriptors become the caller's."""
        new_argv = None
        for _depth in range(MAX_INTERP_DEPTH + 1):
            fd, s, canon, key = self._open_exec(path, resolve)
            try:
                head = os.pread(fd, BINPRM_BUF_SIZE, 0)
                if head[:2] == b"#!":
                    interp, arg = parse_shebang(head)
                    if new_argv is not None:
                        cur = new_argv
                    else:
                        cur = argv() if callable(argv) else argv
                    new_argv = [interp] + ([arg] if arg else []) + [os.fsencode(path)] + cur[1:]
                    path = os.fsdecode(interp)
                    continue
                image = self._image(fd, s, resolve, keep=keep)
                if keep is not None:
                    keep.insert(0, ExecSource(fd, s, key, canon))
                    fd = -1
                return ExecPlan(image, canon, new_argv, os.path.basename(path.rstrip("/")))
            finally:
                if fd >= 0:
                    os.close(fd)
        raise ExecError(errno.ELOOP, "too many levels of #! interpreters")

    def _info(self, fd: int, s: os.stat_result, nested: bool) -> Tuple[ElfInfo, Optional[bytes]]:
        """The parsed headers (cached per file version), and the file's bytes
        when they had to be read for it."""
        key = _file_key(s)
        info, data = self.infos.get(key), None
        if info is None:
            data = self._read_all(fd, s)
            info = parse_elf(data)
            self.infos[key] = info
        if nested and info.interp is not None:
            raise ExecError(errno.ELIBBAD, "the ELF interpreter has an interpreter")
        return info, data

    def _image(self, fd: int, s: os.stat_result, resolve, nested: bool = False,
               keep: Optional[list] = None) -> ExecImage:
        key = _file_key(s)
        cached = self.images.get(key)
        info, data = self._info(fd, s, nested)
        interp_key, interp_image = None, None
        if info.interp is not None:
            interp_key, interp_image = self._interp(os.fsdecode(info.interp), resolve, keep)
        if cached is not None and cached.interp_key == interp_key:
            self.images.move_to_end(key)
            return cached
        if cached is not None:
            self._forget(key)
        if data is None:
            data = self._read_all(fd, s)
        if interp_image is not None:
            new = interp_image.path.encode() + b"\0"
            if len(new) > info.interp_size:
                raise _noexec("PT_INTERP too short to redirect")
            data = (data[:info.interp_offset] + new.ljust(info.interp_size, b"\0")
                    + data[info.interp_offset + info.interp_size:])
        img = self._memfd(data, interp_key)
        try:
            keeper = self.keeper()
            img.number = keeper.keep(img.fd)
        except BaseException:
            os.close(img.fd)
            raise
        img.path = keeper.path(img.number)
        self.images[key] = img
        while len(self.images) > MAX_IMAGES:
            self._forget(next(iter(self.images)))
        return img

    def _forget(self, key: tuple) -> None:
        """Drop an image: an exec that named it meanwhile fails its identity
        check at the exec event, never runs something else unchecked."""
        self.on_forget()
        img = self.images.pop(key)
        self.infos.pop(key, None)
        os.close(img.fd)
        shutil.rmtree(os.path.join(self.link_dir, str(img.ino)), ignore_errors=True)
        try:
            self.keeper().drop(img.number)
        except OSError:
            pass

    @staticmethod
    def _read_all(fd: int, s: os.stat_result) -> bytes:
        data = os.pread(fd, s.st_size, 0) if s.st_size <= (1 << 31) else b""
        if len(data) != s.st_size:
            raise _noexec("cannot read the whole file")
        return data

    def _interp(self, path: str, resolve,
                keep: Optional[list]) -> Tuple[tuple, Optional[ExecImage]]:
        """(identity, image) of the ELF interpreter `path` as the guest sees it.
        The image is None when the host's file at that path is that very file
        (the host's ld.so under an overlay of the host's /): PT_INTERP stays
        as it is, and ld.so, gdb and /proc/PID/maps name it as on Linux."""
        try:
            fd, s, canon, key = self._open_exec(path, resolve)
        except ExecError as e:
            raise ExecError(errno.ELIBBAD if e.errno == errno.ENOEXEC else e.errno, str(e))
        try:
            if _same_host_file(path, s):
                self._info(fd, s, nested=True)
                ident, img, host = ("host",) + _file_key(s), None, path
            else:
                img = self._image(fd, s, resolve, nested=True)
                ident, host = (img.dev, img.ino), ""
            if keep is not None:
                keep.append(ExecSource(fd, s, key, canon, host))
                fd = -1
            return ident, img
        finally:
            if fd >= 0:
                os.close(fd)

    @staticmethod
    def _memfd(data: bytes, interp_key) -> ExecImage:
        try:
            mfd = os.memfd_create("umlpy-exec", MFD_CLOEXEC | MFD_ALLOW_SEALING | MFD_EXEC)
        except OSError:
            mfd = os.memfd_create("umlpy-exec", MFD_CLOEXEC | MFD_ALLOW_SEALING)
        try:
            view = memoryview(data)
            while view:
                n = os.write(mfd, view)
                view = view[n:]
            fcntl.fcntl(mfd, fcntl.F_ADD_SEALS, fcntl.F_SEAL_SEAL | fcntl.F_SEAL_SHRINK
                        | fcntl.F_SEAL_GROW | fcntl.F_SEAL_WRITE)
            s = os.fstat(mfd)
        except BaseException:
            os.close(mfd)
            raise
        return ExecImage(mfd, s.st_dev, s.st_ino, interp_key)
