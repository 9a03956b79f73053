"""The umid directory: <uml_dir>/<umid>/ holding "pid" and the "mconsole" socket.

Claiming it follows UML: a directory left by a dead instance is reclaimed,
one held by a live instance is refused. "Live" means the pid in its pid
file exists and, when the socket is there, something is bound to it (a
pid that was reused by an unrelated process leaves a socket nobody
answers: connect() is refused).
"""
from __future__ import annotations

import errno
import os
import secrets
import socket
import string
from dataclasses import dataclass
from typing import Optional

from umlpy.drivers.mconsole_commands import MconsoleError

DEFAULT_UML_DIR = "~/.uml/"
UMID_MAX = 63                       # UML's limit
SUN_PATH_MAX = 107                  # sizeof(sun_path) - 1: AF_UNIX paths are NUL-terminated
PID_FILE = "pid"
SOCKET_FILE = "mconsole"
_RANDOM_UMID_CHARS = string.ascii_letters + string.digits


def random_umid() -> str:
    """A name for an instance started without umid= (UML makes six random characters)."""
    return "".join(secrets.choice(_RANDOM_UMID_CHARS) for _ in range(6))


def check_umid(umid: str) -> None:
    if not umid or umid in (".", "..") or "/" in umid or "\0" in umid:
        raise MconsoleError(f"umid {umid!r} is not a usable name")
    if len(umid) > UMID_MAX:
        raise MconsoleError(f"umid {umid[:20]!r}... is {len(umid)} characters long; "
                            f"at most {UMID_MAX} are allowed")


@dataclass
class UmidDirectory:
    umid: str
    path: str

    @property
    def pid_path(self) -> str:
        return os.path.join(self.path, PID_FILE)

    @property
    def socket_path(self) -> str:
        return os.path.join(self.path, SOCKET_FILE)

    @classmethod
    def claim(cls, umid: str, uml_dir: Optional[str] = None) -> "UmidDirectory":
        """Create <uml_dir>/<umid>/ with our pid in it, reclaiming a stale one.

        An empty umid picks a random free one. The directory is 0700: whoever
        can reach the socket can halt the kernel.
        """
        base = os.path.expanduser(uml_dir or DEFAULT_UML_DIR)
        try:
            os.makedirs(base, mode=0o700, exist_ok=True)
        except OSError as exc:
            raise MconsoleError(f"cannot create uml_dir {base}: {exc.strerror}") from None
        for _attempt in range(20 if not umid else 1):
            name = umid or random_umid()
            check_umid(name)
            claimed = cls(name, os.path.join(base, name))
            if len(os.fsencode(claimed.socket_path)) > SUN_PATH_MAX:
                raise MconsoleError(f"mconsole socket path {claimed.socket_path} is longer than "
                                    f"the {SUN_PATH_MAX} bytes AF_UNIX allows; use a shorter "
                                    "uml_dir or umid")
            if claimed._create(random_name=not umid):
                claimed._write_pid()
                return claimed
        raise MconsoleError(f"no free random umid in {base}")

    def _create(self, random_name: bool) -> bool:
        """mkdir the directory; False if a random name is taken (pick another)."""
        try:
            os.mkdir(self.path, 0o700)
            return True
        except FileExistsError:
            pass
        except OSError as exc:
            raise MconsoleError(f"cannot create {self.path}: {exc.strerror}") from None
        holder = live_holder(self.path)
        if holder is not None:
            if random_name:
                return False
            raise MconsoleError(f"umid '{self.umid}' is in use by the running instance "
                                f"with pid {holder} ({self.path})")
        self._reclaim()
        try:
            os.mkdir(self.path, 0o700)
        except OSError as exc:              # lost a race with another instance
            raise MconsoleError(f"cannot create {self.path}: {exc.strerror}") from None
        return True

    def _reclaim(self) -> None:
        """Remove a dead instance's directory (its files only, as UML does)."""
        if not os.path.isdir(self.path) or os.path.islink(self.path):
            raise MconsoleError(f"{self.path} exists and is not a directory")
        try:
            for entry in os.scandir(self.path):
                if entry.is_dir(follow_symlinks=False):
                    raise MconsoleError(f"cannot reclaim stale {self.path}: "
                                        f"it holds a directory {entry.name!r}")
                os.unlink(entry.path)
            os.rmdir(self.path)
        except OSError as exc:
            raise MconsoleError(f"cannot reclaim stale {self.path}: {exc.strerror}") from None

    def _write_pid(self) -> None:
        try:
            fd = os.open(self.pid_path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0o644)
            with os.fdopen(fd, "w") as pid_file:
                pid_file.write(f"{os.getpid()}\n")
        except OSError as exc:
            self.remove()
            raise MconsoleError(f"cannot write {self.pid_path}: {exc.strerror}") from None

    def remove(self) -> None:
        """Remove the socket, the pid file and the directory (clean halt)."""
        for path in (self.socket_path, self.pid_path):
            try:
                os.unlink(path)
            except FileNotFoundError:
                pass
            except OSError as exc:
                raise MconsoleError(f"cannot remove {path}: {exc.strerror}") from None
        try:
            os.rmdir(self.path)
        except FileNotFoundError:
            pass
        except OSError as exc:
            raise MconsoleError(f"cannot remove {self.path}: {exc.strerror}") from None


def read_pid(directory: str) -> Optional[int]:
    try:
        with open(os.path.join(directory, PID_FILE)) as pid_file:
            pid = int(pid_file.read(32).strip())
    except (OSError, ValueError):
        return None
    return pid if pid > 0 else None


def _pid_exists(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:         # somebody else's process: alive
        return True
    return True


def _socket_refuses(path: str) -> bool:
    """True if path is a socket with nobody bound to it."""
    probe = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    try:
        probe.connect(path)
    except OSError as exc:
        return exc.errno == errno.ECONNREFUSED
    finally:
        probe.close()
    return False


def live_holder(directory: str) -> Optional[int]:
    """The pid of the live instance owning directory, None if it is stale."""
    pid = read_pid(directory)
    if pid is None or not _pid_exists(pid):
        return None
    socket_path = os.path.join(directory, SOCKET_FILE)
    if os.path.exists(socket_path) and _socket_refuses(socket_path):
        return None                 # the pid was reused by another process
    return pid
