"""Path walk: guest paths to (directory, name) pairs, inside the guest's mounts.

Every step is anchored at a host directory descriptor, so a concurrent rename
or symlink swap by another guest thread cannot send the walk outside the tree:
the host never resolves a path the guest wrote. `..` is the walk's own (a stack
of the directories it came through), so `..` at `/` stays at `/`. Symlinks are
read and interpreted here, absolute ones from the guest root.
"""
from __future__ import annotations

import errno
import os
import posixpath
import stat as st
from dataclasses import dataclass
from typing import List

MAXSYMLINKS = 40
PATH_MAX = 4096


@dataclass
class Mount:
    path: str           # canonical guest path of the mountpoint
    fs: object          # a file system (see umlpy.fs)
    source: str = "none"
    options: str = "rw"


@dataclass
class Node:
    fd: int
    mount: Mount
    path: str           # canonical guest path
    owned: bool         # closed with the lookup (mount roots are shared)


class Lookup:
    """The result of a walk: `name` inside directory `dir` (name "" is `dir` itself).

    Holds host descriptors: use as a context manager."""

    __slots__ = ("stack", "name")

    def __init__(self, stack: List[Node], name: str) -> None:
        self.stack = stack
        self.name = name

    @property
    def dir(self) -> Node:
        return self.stack[-1]

    @property
    def dirfd(self) -> int:
        return self.stack[-1].fd

    @property
    def fs(self):
        return self.stack[-1].mount.fs

    @property
    def mount(self) -> Mount:
        return self.stack[-1].mount

    @property
    def path(self) -> str:
        """Canonical guest path of the target."""
        return posixpath.join(self.dir.path, self.name) if self.name else self.dir.path

    def close(self) -> None:
        for node in self.stack:
            if node.owned:
                os.close(node.fd)
        self.stack = []

    def __enter__(self) -> "Lookup":
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def _split(path: str) -> List[str]:
    return [c for c in path.split("/") if c and c != "."]


class Walker:
    """Resolves paths against a mount table (dict: canonical path -> Mount)."""

    def __init__(self, mounts: dict) -> None:
        self.mounts = mounts

    def _root(self) -> Node:
        m = self.mounts["/"]
        return Node(m.fs.root_fd, m, "/", False)

    def walk(self, path: str, cwd: str = "/", follow: bool = True) -> Lookup:
        """Resolve `path` (relative ones against the canonical guest `cwd`).

        follow: follow a symlink in the last component. A trailing slash
        always follows and requires a directory."""
        if path == "":
            raise OSError(errno.ENOENT, "empty path")
        if len(path) >= PATH_MAX:
            raise OSError(errno.ENAMETOOLONG, "path too long")
        must_dir = path.endswith("/")
        follow = follow or must_dir
        todo = _split(path) if path.startswith("/") else _split(cwd) + _split(path)
        todo.reverse()                      # a stack: pop() gives the next component
        stack = [self._root()]
        links = 0
        try:
            while todo:
                comp = todo.pop()
                if comp == "..":
                    if len(stack) > 1:
                        node = stack.pop()
                        if node.owned:
                            os.close(node.fd)
                    continue
                if len(comp) > 255:
                    raise OSError(errno.ENAMETOOLONG, "name too long")
                last = not todo
                cur = stack[-1]
                child = posixpath.join(cur.path, comp)
                mnt = self.mounts.get(child)
                if mnt is not None:
                    stack.append(Node(mnt.fs.root_fd, mnt, child, False))
                    continue
                if last and not follow:
                    return Lookup(stack, comp)
                try:
                    fd = cur.mount.fs.lookup(cur.fd, comp, cur.path == cur.mount.path)
                except FileNotFoundError:
                    if last:
                        return Lookup(stack, comp)
                    raise
                mode = os.fstat(fd).st_mode
                if st.S_ISDIR(mode):
                    stack.append(Node(fd, cur.mount, child, True))
                    continue
                if st.S_ISLNK(mode):
                    try:
                        target = os.readlink("", dir_fd=fd)
                    finally:
                        os.close(fd)
                    links += 1
                    if links > MAXSYMLINKS:
                        raise OSError(errno.ELOOP, "too many levels of symbolic links")
                    if target.startswith("/"):
                        for node in stack[1:]:
                            if node.owned:
                                os.close(node.fd)
                        stack = [self._root()]
                    if target.endswith("/") and last:
                        must_dir = True
                    todo.extend(reversed(_split(target)))
                    continue
                os.close(fd)
                if not last:
                    raise OSError(errno.ENOTDIR, "not a directory")
                if must_dir:
                    raise OSError(errno.ENOTDIR, "not a directory")
                return Lookup(stack, comp)
            return Lookup(stack, "")
        except BaseException:
            Lookup(stack, "").close()
            raise
