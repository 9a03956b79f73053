"""The command lines of tools/umlpy-mkcow and tools/umlpy-moo (same usage as
uml-utilities' uml_mkcow and uml_moo). Errors: one line on stderr, exit status 1;
usage errors: the usage text, status 2 for mkcow and 1 for moo, as the originals."""
from __future__ import annotations

import errno
import getopt
import os
import sys
from typing import List, Optional, TextIO

from .cow import fsync_directory, init_cow
from .errors import BlockError
from .hostfile import open_host_file
from .merge import merge_cow

MKCOW_USAGE = """\
umlpy-mkcow usage:
\tumlpy-mkcow [-f] <COW file> <backing file>
\t-f forces overwrite of an existing COW file
"""

MOO_USAGE = """\
umlpy-moo usage:
\tumlpy-moo [ -b <actual backing file> ] <COW file> <new backing file>
\tumlpy-moo [ -b <actual backing file> ] -d <COW file>
Creates a new filesystem image from the COW file and its backing file.
Specifying -d will cause a destructive, in-place merge of the COW file into
its current backing file
Specifying -b overrides the backing_file specified in the COW file.  This is
needed when dealing with a COW file that was created inside a chroot jail.
umlpy-moo supports version 1,2 and 3 COW files.
"""


def make_cow(cow_path: str, backing_path: str, force: bool = False) -> None:
    """uml_mkcow: a fresh v3 COW file. With force an existing file is overwritten, but
    never while another process holds its lock, and never the backing file itself."""
    try:
        fd = open_host_file(cow_path, f"COW file {cow_path}", writable=True, create=True)
        created = True
    except BlockError as exc:
        if exc.errno != errno.EEXIST:
            raise
        if not force:
            raise BlockError(f"COW file {cow_path} exists (use -f to overwrite it)",
                             errno.EEXIST) from None
        if os.path.exists(backing_path) and os.path.samefile(cow_path, backing_path):
            raise BlockError(f"COW file {cow_path} is the backing file itself") from None
        fd = open_host_file(cow_path, f"COW file {cow_path}", writable=True)
        created = False
    try:
        init_cow(fd, backing_path)
    except BaseException:
        if created:
            os.unlink(cow_path)
        raise
    finally:
        os.close(fd)
    fsync_directory(cow_path)


def mkcow_main(argv: Optional[List[str]] = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    try:
        opts, args = getopt.gnu_getopt(argv, "fh", ["help"])
    except getopt.GetoptError as exc:
        sys.stderr.write(f"umlpy-mkcow: {exc}\n{MKCOW_USAGE}")
        return 2
    if any(o in ("-h", "--help") for o, _ in opts):
        sys.stdout.write(MKCOW_USAGE)
        return 0
    if len(args) != 2:
        sys.stderr.write(MKCOW_USAGE)
        return 2
    try:
        make_cow(args[0], args[1], force=any(o == "-f" for o, _ in opts))
    except BlockError as exc:
        sys.stderr.write(f"umlpy-mkcow: {exc}\n")
        return 1
    return 0


class _Percent:
    """A percentage on a terminal, rewritten in place as it changes."""

    def __init__(self, stream: TextIO) -> None:
        self.stream, self.last = stream, -1

    def __call__(self, done: int, total: int) -> None:
        percent = 100 * done // total if total else 100
        if percent != self.last:
            self.last = percent
            self.stream.write(f"\rumlpy-moo: {percent:3d}%")
            self.stream.flush()


def moo_main(argv: Optional[List[str]] = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    try:
        opts, args = getopt.gnu_getopt(argv, "b:dh", ["help"])
    except getopt.GetoptError as exc:
        sys.stderr.write(f"umlpy-moo: {exc}\n{MOO_USAGE}")
        return 1
    flags = dict(opts)
    if "-h" in flags or "--help" in flags:
        sys.stdout.write(MOO_USAGE)
        return 0
    in_place = "-d" in flags
    if len(args) != (1 if in_place else 2):
        sys.stderr.write(MOO_USAGE)
        return 1
    tty = sys.stderr.isatty()
    meter = _Percent(sys.stderr) if tty else None
    try:
        result = merge_cow(args[0], None if in_place else args[1], flags.get("-b"), meter)
    except (BlockError, OSError) as exc:
        if meter and meter.last >= 0:
            sys.stderr.write("\n")
        sys.stderr.write(f"umlpy-moo: {exc}\n")
        return 1
    if meter:
        sys.stderr.write("\r")
    sys.stderr.write(f"umlpy-moo: merged {args[0]} into {result.output}: "
                     f"{result.sectors_from_cow} sectors from the COW file, "
                     f"{result.size} bytes\n")
    return 0
