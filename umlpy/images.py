"""Root file system images, made in pure Python (no mke2fs): `umlpy-mkimage`.

    umlpy-mkimage IMAGE -d DIR                  a directory tree
    umlpy-mkimage IMAGE --programs ls,python3   host programs and their libraries
    umlpy-mkimage IMAGE --busybox               a static busybox with its applets

Options: -t ext2|ext4 (default ext2), -s SIZE (256M, 1G; default: what the
tree needs plus room), --owners to keep host owners (default: everything
root's, as a root file system is). Several sources may be combined; a
progress bar goes to stderr when it is a terminal.
"""
from __future__ import annotations

import argparse
import os
import re
import shutil
import subprocess
import sys
import tempfile
from typing import Callable, List, Optional

BUSYBOX = "/bin/busybox"
SKELETON = ("bin", "sbin", "etc", "dev", "proc", "sys", "tmp", "root", "mnt", "usr/bin",
            "usr/sbin", "var/tmp")
PASSWD = "root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534:nobody:/nonexistent:/bin/false\n"
GROUP = "root:x:0:\ndisk:x:6:\ntty:x:5:\nnogroup:x:65534:\n"
_SIZE = re.compile(r"(\d+)([KMGkmg]?)\Z")


class ImageError(Exception):
    """One line for the user."""


def parse_size(text: str) -> int:
    m = _SIZE.match(text)
    if not m:
        raise ImageError(f"-s {text}: expected a size like 256M")
    return int(m.group(1)) << {"": 0, "k": 10, "m": 20, "g": 30}[m.group(2).lower()]


def tree_bytes(path: str) -> int:
    total = 0
    for top, dirs, files in os.walk(path):
        total += 4096 * (len(dirs) + 1)
        for f in files:
            try:
                total += (os.lstat(os.path.join(top, f)).st_size + 4095) // 4096 * 4096
            except OSError:
                pass
    return total


def _copy_into(stage: str, host_path: str) -> None:
    """host_path (file or symlink chain) at the same path below stage."""
    while True:
        dest = os.path.join(stage, host_path.lstrip("/"))
        os.makedirs(os.path.dirname(dest), exist_ok=True)
        if os.path.lexists(dest):
            return
        if os.path.islink(host_path):
            target = os.readlink(host_path)
            os.symlink(target, dest)
            host_path = os.path.normpath(os.path.join(os.path.dirname(host_path), target))
            continue
        shutil.copy2(host_path, dest)
        return


def _libraries(program: str) -> List[str]:
    res = subprocess.run(["ldd", program], capture_output=True, text=True)
    if res.returncode != 0:
        return []               # a static program
    libs = []
    for line in res.stdout.splitlines():
        parts = line.split()
        for p in parts:
            if p.startswith("/"):
                libs.append(p)
                break
    return libs


def stage_programs(stage: str, programs: List[str]) -> None:
    for name in programs:
        path = name if "/" in name else shutil.which(name)
        if path is None or not os.path.exists(path):
            raise ImageError(f"--programs: {name}: not found on this host")
        _copy_into(stage, path)
        for lib in _libraries(path):
            _copy_into(stage, lib)


def stage_busybox(stage: str, busybox: str = BUSYBOX) -> None:
    if not os.path.exists(busybox):
        raise ImageError(f"--busybox: {busybox} missing (apt install busybox-static)")
    for d in SKELETON:
        os.makedirs(os.path.join(stage, d), exist_ok=True)
    os.chmod(os.path.join(stage, "tmp"), 0o1777)
    shutil.copy2(busybox, os.path.join(stage, "bin", "busybox"))
    applets = subprocess.run([busybox, "--list-full"], capture_output=True, text=True).stdout
    for applet in applets.split():
        dest = os.path.join(stage, applet)
        if applet in ("bin/busybox", "sbin/init", "linuxrc") or os.path.lexists(dest):
            continue            # no init: the boot falls back to /bin/sh, as UML's does
        os.makedirs(os.path.dirname(dest), exist_ok=True)
        os.symlink(os.path.relpath("/bin/busybox", "/" + os.path.dirname(applet)), dest)
    for name, text in (("etc/passwd", PASSWD), ("etc/group", GROUP)):
        with open(os.path.join(stage, name), "w") as f:
            f.write(text)


def progress_bar(stream=sys.stderr) -> Optional[Callable[[int, int], None]]:
    if not stream.isatty():
        return None
    last = [-1]

    def show(done: int, total: int) -> None:
        pct = 100 * done // total if total else 100
        if pct != last[0]:
            last[0] = pct
            bar = "#" * (pct // 4)
            stream.write(f"\rumlpy-mkimage: [{bar:<25}] {pct:3d}%")
            if pct == 100:
                stream.write("\n")
            stream.flush()
    return show


def build(image: str, kind: str, sources: List[str], programs: List[str], busybox: bool,
          size: Optional[int], owners: bool, progress=None) -> int:
    """Make the image; returns its size in bytes."""
    from umlpy.block.ubd import open_image
    from umlpy.fs.ext2.mkfs import mkfs
    from umlpy.fs.ext2.populate import populate
    from umlpy.fs.ext2.volume import Ext2Volume
    with tempfile.TemporaryDirectory(prefix="umlpy-mkimage-") as stage:
        if busybox:
            stage_busybox(stage)
        if programs:
            stage_programs(stage, programs)
        for src in sources:
            if not os.path.isdir(src):
                raise ImageError(f"-d {src}: not a directory")
            shutil.copytree(src, stage, symlinks=True, dirs_exist_ok=True)
        need = tree_bytes(stage)
        size = size or max(16 << 20, (need * 3 // 2 + (8 << 20)) // (1 << 20) * (1 << 20))
        if size < need + (2 << 20):
            raise ImageError(f"-s: {size} bytes is too small for {need} bytes of files")
        with open(image, "wb") as f:
            f.truncate(size)
        dev = open_image(image)
        try:
            mkfs(dev, features=kind)
            volume = Ext2Volume.open(dev)
            try:
                populate(volume, stage, owners=owners, progress=progress)
            finally:
                volume.close()
        finally:
            dev.close()
    return size


def main(argv: Optional[List[str]] = None) -> int:
    p = argparse.ArgumentParser(prog="umlpy-mkimage", description=__doc__.splitlines()[0])
    p.add_argument("image")
    p.add_argument("-t", "--type", default="ext2", choices=("ext2", "ext4"))
    p.add_argument("-s", "--size", default=None)
    p.add_argument("-d", "--directory", action="append", default=[])
    p.add_argument("--programs", default="")
    p.add_argument("--busybox", action="store_true")
    p.add_argument("--owners", action="store_true", help="keep host owners")
    args = p.parse_args(argv)
    try:
        if not (args.directory or args.programs or args.busybox):
            raise ImageError("nothing to put in the image: give -d DIR, --programs or --busybox")
        size = parse_size(args.size) if args.size else None
        made = build(args.image, args.type, args.directory,
                     [x for x in args.programs.split(",") if x], args.busybox, size,
                     args.owners, progress_bar())
    except ImageError as e:
        print(f"umlpy-mkimage: {e}", file=sys.stderr)
        return 1
    except OSError as e:
        print(f"umlpy-mkimage: {args.image}: {e.strerror or e}", file=sys.stderr)
        return 1
    print(f"umlpy-mkimage: {args.image}: {args.type}, {made >> 20} MiB", file=sys.stderr)
    return 0
