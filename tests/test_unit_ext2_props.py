"""Property tests: random namespace and data operations applied both to an ext2
volume and to a host directory must leave the same tree, with the same errors
on the way, and an image e2fsck accepts."""
from __future__ import annotations

import ctypes
import errno
import os
import shutil
import stat as st
import subprocess
import tempfile
from pathlib import Path

import pytest

hypothesis = pytest.importorskip("hypothesis", reason="hypothesis missing (pip install -e '.[test]')")
from hypothesis import HealthCheck, given, settings  # noqa: E402
from hypothesis import strategies as hs  # noqa: E402

from umlpy.fs.ext2 import RENAME_EXCHANGE, RENAME_NOREPLACE, ROOT_INO, Ext2Volume, FileDevice  # noqa: E402

pytestmark = pytest.mark.skipif(shutil.which("mke2fs") is None or shutil.which("e2fsck") is None,
                                reason="e2fsprogs not installed")

NAMES = ["a", "b", "c"]
PATHS = NAMES + [f"{x}/{y}" for x in NAMES for y in NAMES] + ["a/a/a", "a/b/c", "b/a/b"]
MAX_OFFSET = 400 * 1024               # crosses the single-indirect limit at 1 KiB blocks

_libc = ctypes.CDLL(None, use_errno=True)


def host_renameat2(old: str, new: str, flags: int) -> None:
    if _libc.renameat2(-100, os.fsencode(old), -100, os.fsencode(new), flags) != 0:
        err = ctypes.get_errno()
        raise OSError(err, os.strerror(err))


path_st = hs.sampled_from(PATHS)
op_st = hs.one_of(
    hs.tuples(hs.just("create"), path_st),
    hs.tuples(hs.just("mkdir"), path_st),
    hs.tuples(hs.just("write"), path_st, hs.integers(0, MAX_OFFSET),
              hs.integers(1, 70_000), hs.integers(1, 255)),
    hs.tuples(hs.just("truncate"), path_st, hs.integers(0, MAX_OFFSET)),
    hs.tuples(hs.just("rename"), path_st, path_st, hs.sampled_from([0, 0, RENAME_NOREPLACE,
                                                                    RENAME_EXCHANGE])),
    hs.tuples(hs.just("link"), path_st, path_st),
    hs.tuples(hs.just("unlink"), path_st),
    hs.tuples(hs.just("rmdir"), path_st),
    hs.tuples(hs.just("symlink"), path_st, hs.integers(1, 300)),
    hs.tuples(hs.just("remount")),
)


class Pair:
    """The same operations on the host (os calls) and on the volume."""

    def __init__(self, host: Path, img: Path) -> None:
        self.host, self.img = host, img
        self.vol = Ext2Volume.open(FileDevice(str(img)))

    # ---- volume paths ----
    def _resolve(self, path: str) -> int:
        ino = ROOT_INO
        for part in path.split("/"):
            ino = self.vol.lookup(ino, part.encode())
        return ino

    def _parent(self, path: str):
        """(parent inode, last name), checked as a path walk would check it."""
        head, _, name = path.rpartition("/")
        parent = self._resolve(head) if head else ROOT_INO
        if not st.S_ISDIR(self.vol.getattr(parent).mode):
            raise OSError(errno.ENOTDIR, "not a directory")
        return parent, name.encode()

    def h(self, path: str) -> str:
        return str(self.host / path)

    def _through_symlink(self, path: str) -> bool:
        parts = path.split("/")
        return any(os.path.islink(self.h("/".join(parts[:i]))) for i in range(1, len(parts)))

    # ---- operations: (host action, volume action) ----
    def run(self, op) -> None:
        kind = op[0]
        if kind == "remount":
            self.vol.close()
            self.vol = Ext2Volume.open(FileDevice(str(self.img)))
            return
        if any(self._through_symlink(p) for p in op[1:] if isinstance(p, str)):
            return                               # the volume API does not follow links
        if kind in ("write", "truncate"):
            try:                              # data operations only on regular files
                if not st.S_ISREG(os.lstat(self.h(op[1])).st_mode):
                    return
            except OSError:
                return
        host_err = vol_err = None
        try:
            self._host(op)
        except OSError as e:
            host_err = e.errno
        try:
            self._vol(op)
        except OSError as e:
            vol_err = e.errno
        assert host_err == vol_err, f"{op}: host {host_err and errno.errorcode[host_err]}, " \
                                    f"volume {vol_err and errno.errorcode[vol_err]}"

    def _host(self, op) -> None:
        kind, path = op[0], self.h(op[1])
        if kind == "create":
            os.close(os.open(path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o640))
        elif kind == "mkdir":
            os.mkdir(path, 0o750)
        elif kind == "write":
            _, _, off, length, byte = op
            fd = os.open(path, os.O_WRONLY)
            try:
                os.pwrite(fd, bytes([byte]) * length, off)
            finally:
                os.close(fd)
        elif kind == "truncate":
            os.truncate(path, op[2])
        elif kind == "rename":
            host_renameat2(path, self.h(op[2]), op[3])
        elif kind == "link":
            os.link(path, self.h(op[2]), follow_symlinks=False)
        elif kind == "unlink":
            os.unlink(path)
        elif kind == "rmdir":
            os.rmdir(path)
        elif kind == "symlink":
            os.symlink("t" * op[2], path)

    def _vol(self, op) -> None:
        kind, vol = op[0], self.vol
        if kind == "create":
            d, name = self._parent(op[1])
            vol.create(d, name, st.S_IFREG | 0o640, 0, 0)
        elif kind == "mkdir":
            d, name = self._parent(op[1])
            vol.mkdir(d, name, 0o750, 0, 0)
        elif kind == "write":
            _, path, off, length, byte = op
            assert vol.write(self._resolve(path), off, bytes([byte]) * length) == length
        elif kind == "truncate":
            vol.truncate(self._resolve(op[1]), op[2])
        elif kind == "rename":
            od, oname = self._parent(op[1])
            nd, nname = self._parent(op[2])
            vol.rename(od, oname, nd, nname, op[3])
        elif kind == "link":
            ino = self._resolve(op[1])
            d, name = self._parent(op[2])
            vol.link(d, name, ino)
        elif kind == "unlink":
            d, name = self._parent(op[1])
            vol.unlink(d, name)
        elif kind == "rmdir":
            d, name = self._parent(op[1])
            vol.rmdir(d, name)
        elif kind == "symlink":
            d, name = self._parent(op[1])
            vol.symlink(d, name, b"t" * op[2], 0, 0)

    # ---- comparing ----
    def host_tree(self, path: Path, prefix: str = "") -> dict:
        out = {}
        for entry in os.scandir(path):
            rel = prefix + entry.name
            info = os.lstat(entry.path)
            if st.S_ISDIR(info.st_mode):
                sub = self.host_tree(Path(entry.path), rel + "/")
                subdirs = sum(1 for k, v in sub.items() if v[0] == "dir" and "/" not in
                              k[len(rel) + 1:])
                out[rel] = ("dir", 2 + subdirs)
                out.update(sub)
            elif st.S_ISLNK(info.st_mode):
                out[rel] = ("link", os.readlink(os.fsencode(entry.path)), info.st_nlink)
            else:
                out[rel] = ("file", Path(entry.path).read_bytes(), info.st_nlink)
        return out

    def vol_tree(self, ino: int = ROOT_INO, prefix: str = "") -> dict:
        out = {}
        for name, child, dtype in self.vol.readdir(ino):
            if not prefix and name == b"lost+found":
                continue
            rel = prefix + name.decode()
            a = self.vol.getattr(child)
            if st.S_ISDIR(a.mode):
                assert dtype == 2                 # ext2 FT_DIR
                out[rel] = ("dir", a.nlink)
                out.update(self.vol_tree(child, rel + "/"))
            elif st.S_ISLNK(a.mode):
                out[rel] = ("link", self.vol.readlink(child), a.nlink)
            else:
                assert a.blocks * 512 <= ((a.size + 1023) // 1024 + 8) * 1024
                out[rel] = ("file", self.vol.read(child, 0, a.size + 1), a.nlink)
        return out

    def check(self) -> None:
        assert self.vol_tree() == self.host_tree(self.host)
        self.vol.close()
        r = subprocess.run(["e2fsck", "-fn", str(self.img)], capture_output=True, text=True)
        assert r.returncode == 0, r.stdout


_templates: dict = {}


def template(fstype: str) -> bytes:
    if fstype not in _templates:
        with tempfile.TemporaryDirectory() as tmp:
            img = Path(tmp) / "img"
            subprocess.run(["mke2fs", "-q", "-F", "-t", fstype, "-b", "1024", str(img), "8M"],
                           check=True, capture_output=True)
            _templates[fstype] = img.read_bytes()
    return _templates[fstype]


def run_sequence(fstype: str, ops) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        host = Path(tmp) / "host"
        host.mkdir()
        img = Path(tmp) / "img"
        img.write_bytes(template(fstype))
        pair = Pair(host, img)
        for op in ops:
            pair.run(op)
        pair.check()


SETTINGS = dict(deadline=None, suppress_health_check=[HealthCheck.too_slow])


@pytest.mark.parametrize("fstype", ["ext2", "ext4"])
def test_random_operations_match_the_host(fstype):
    @settings(max_examples=15, **SETTINGS)
    @given(hs.lists(op_st, min_size=1, max_size=40))
    def check(ops):
        run_sequence(fstype, ops)
    check()


@pytest.mark.slow
@pytest.mark.parametrize("fstype", ["ext2", "ext4"])
def test_random_operations_match_the_host_many(fstype):
    @settings(max_examples=400, **SETTINGS)
    @given(hs.lists(op_st, min_size=1, max_size=80))
    def check(ops):
        run_sequence(fstype, ops)
    check()
