"""mconsole: the server driven by the real uml_mconsole and by tools/umlpy-mconsole.

The kernel side is a small recording host (a real MconsoleHost answering
fixed text), which is all a protocol-layer test needs.
"""
from __future__ import annotations

import os
import random
import socket
import struct
import subprocess
import sys
import threading
from pathlib import Path
from typing import List, Optional, Tuple

import pytest

from umlpy.drivers.mconsole import (
    MconsoleCommandError, MconsoleError, MconsoleServer, NotifyKind, format_version,
)
from umlpy.drivers.mconsole_commands import Dispatcher
from umlpy.drivers.mconsole_proto import (
    HEADER, LEGACY_CLIENT_ANSWER, MCONSOLE_MAGIC, MCONSOLE_VERSION, decode_notify,
    decode_reply, encode_request,
)

REPO = Path(__file__).resolve().parent.parent
OUR_CLIENT = [sys.executable, str(REPO / "tools" / "umlpy-mconsole")]
UML_MCONSOLE = "/usr/bin/uml_mconsole"
UMID = "vm1"

VERSION = format_version("Linux", "guesthost", "6.1.0-umlpy",
                         "#1 SMP PREEMPT_DYNAMIC Mon Jan  1 00:00:00 UTC 2024", "x86_64")
# more than 2 KiB, with line structure, so a chunk boundary falls inside a line
SYSRQ_T = "".join(f"task:sh{n:<4} state:S stack:0 pid:{n:<5} ppid:1 flags:0x00000000\n"
                  for n in range(60))
MEMINFO = b"".join(b"%-16s%8d kB\n" % (f"Field{n}:".encode(), n * 1024) for n in range(120))


class RecordingHost:
    """A kernel stand-in: records calls, answers fixed text."""

    def __init__(self) -> None:
        self.calls: List[Tuple[str, object]] = []
        self.on_halt = None

    def _record(self, name: str, arg: object = None) -> None:
        self.calls.append((name, arg))

    def version(self) -> str:
        self._record("version")
        return VERSION

    def halt(self) -> None:
        self._record("halt")
        if self.on_halt:
            self.on_halt()

    def reboot(self) -> None:
        self._record("reboot")

    def cad(self) -> None:
        self._record("cad")

    def stop(self) -> None:
        self._record("stop")

    def go(self) -> None:
        self._record("go")

    def sysrq(self, key: str) -> str:
        self._record("sysrq", key)
        if key == "x":
            raise RuntimeError("boom")
        return SYSRQ_T

    def config(self, spec: str) -> str:
        self._record("config", spec)
        return ""

    def config_query(self, device: str) -> str:
        self._record("config_query", device)
        if device == "ubd9":
            raise MconsoleCommandError("a long complaint " * 60)
        if device != "ubd0":
            raise MconsoleCommandError(f"{device}: no such device")
        return "/images/cow,/images/backing"

    def remove(self, device: str) -> Optional[str]:
        self._record("remove", device)
        if device == "ubd0":
            raise MconsoleCommandError("Device is currently open")
        return ""

    def log(self, text: str) -> None:
        self._record("log", text)

    def proc(self, path: str) -> bytes:
        self._record("proc", path)
        if path != "meminfo":
            raise MconsoleCommandError("Failed to open file")
        return MEMINFO

    def stack(self, pid: int) -> str:
        self._record("stack", pid)
        return f"Call Trace for pid {pid}:\n do_wait\n"


@pytest.fixture
def env(tmp_path: Path) -> dict:
    # uml_mconsole finds <umid> as $HOME/.uml/<umid>/mconsole
    return dict(os.environ, HOME=str(tmp_path))


@pytest.fixture
def host() -> RecordingHost:
    return RecordingHost()


@pytest.fixture
def server(tmp_path: Path, host: RecordingHost):
    srv = MconsoleServer(UMID, str(tmp_path / ".uml"), host)
    srv.start()
    yield srv
    srv.close()


def uml_mconsole(env: dict, *args: str, stdin: Optional[bytes] = None,
                 cwd: Optional[str] = None) -> subprocess.CompletedProcess:
    if not os.access(UML_MCONSOLE, os.X_OK):
        pytest.skip("uml_mconsole missing (Debian's uml-utilities)")
    return subprocess.run([UML_MCONSOLE, *args], env=env, input=stdin, capture_output=True,
                          timeout=10, cwd=cwd)


def ours(env: dict, *args: str, stdin: Optional[bytes] = None,
         cwd: Optional[str] = None) -> subprocess.CompletedProcess:
    return subprocess.run([*OUR_CLIENT, *args], env=env, input=stdin, capture_output=True,
                          timeout=10, cwd=cwd)


def raw_client() -> socket.socket:
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    sock.bind("")                       # abstract autobind, as a real client is bound
    sock.settimeout(5)
    return sock


def raw_exchange(sock: socket.socket, path: str, datagram: bytes) -> List[bytes]:
    """Send one datagram, return every reply datagram up to more=0."""
    sock.sendto(datagram, path)
    replies = [sock.recv(4096)]
    while HEADER.unpack_from(replies[-1])[1]:
        replies.append(sock.recv(4096))
    return replies


def drain(sock: socket.socket, wait: float = 0.0) -> None:
    """Read and discard whatever arrives within wait seconds."""
    timeout = sock.gettimeout()
    sock.settimeout(wait)
    try:
        while True:
            sock.recv(4096)
    except (BlockingIOError, socket.timeout):
        pass
    finally:
        sock.settimeout(timeout)


# --- commands through the real uml_mconsole ----------------------------------------

def test_version(server, env):
    result = uml_mconsole(env, UMID, "version")
    assert (result.returncode, result.stdout) == (0, f"OK {VERSION}\n".encode())


def test_help_lists_every_command(server, env):
    result = uml_mconsole(env, UMID, "help")
    assert result.returncode == 0
    assert result.stdout.startswith(b"OK Commands:\n")
    for name in (b"version", b"help", b"halt", b"reboot", b"config <dev>=<config>",
                 b"config <dev>", b"remove <dev>", b"sysrq <letter>", b"cad", b"stop",
                 b"go", b"log <text>", b"proc <file>", b"stack <pid>"):
        assert b"\n    " + name + b" - " in result.stdout


@pytest.mark.parametrize("command", ["halt", "reboot", "cad"])
def test_power_commands(server, env, host, command):
    result = uml_mconsole(env, UMID, command)
    assert (result.returncode, result.stdout) == (0, b"OK \n")
    # halt and reboot run once the answer is out: the next request waits for them
    assert uml_mconsole(env, UMID, "version").returncode == 0
    assert host.calls == [(command, None), ("version", None)]


def test_stop_then_go(server, env, host):
    assert uml_mconsole(env, UMID, "stop").stdout == b"OK stopped\n"
    assert server.stopped
    # while stopped, the mconsole still answers
    assert uml_mconsole(env, UMID, "version").returncode == 0
    again = uml_mconsole(env, UMID, "stop")
    assert (again.returncode, again.stdout) == (1, b"ERR Already stopped\n")
    assert uml_mconsole(env, UMID, "go").stdout == b"OK \n"
    assert not server.stopped
    assert [c for c, _ in host.calls] == ["stop", "version", "go"]


def test_go_when_not_stopped(server, env, host):
    result = uml_mconsole(env, UMID, "go")
    assert (result.returncode, result.stdout) == (1, b"ERR Not stopped\n")
    assert host.calls == []


def test_sysrq_streams_several_chunks(server, env, host):
    assert len(SYSRQ_T) > 2048
    result = uml_mconsole(env, UMID, "sysrq", "t")
    assert (result.returncode, result.stdout) == (0, b"OK " + SYSRQ_T.encode() + b"\n")
    assert host.calls == [("sysrq", "t")]
    with raw_client() as sock:
        replies = raw_exchange(sock, server.socket_path, encode_request(b"sysrq t"))
    decoded = [decode_reply(r) for r in replies]
    assert len(decoded) == -(-len(SYSRQ_T) // 511)
    assert [r.more for r in decoded] == [True] * (len(decoded) - 1) + [False]
    assert all(len(raw) <= 524 and reply.err == 0 for raw, reply in zip(replies, decoded))
    assert b"".join(r.data for r in decoded) == SYSRQ_T.encode()


def test_config_add_and_query(server, env, host, tmp_path):
    image = tmp_path / "disk.img"
    added = uml_mconsole(env, UMID, f"config ubd1={image}")
    assert (added.returncode, added.stdout) == (0, b"OK \n")
    query = uml_mconsole(env, UMID, "config ubd0")
    assert (query.returncode, query.stdout) == (0, b"OK /images/cow,/images/backing\n")
    unknown = uml_mconsole(env, UMID, "config ubd7")
    assert (unknown.returncode, unknown.stdout) == (1, b"ERR ubd7: no such device\n")
    assert host.calls == [("config", f"ubd1={image}"), ("config_query", "ubd0"),
                          ("config_query", "ubd7")]


def test_long_error_answer_is_still_an_error(server, env):
    # several chunks: uml_mconsole takes the error flag from the last one
    result = uml_mconsole(env, UMID, "config ubd9")
    assert (result.returncode, result.stdout) == (1, b"ERR " + b"a long complaint " * 60 + b"\n")


def test_remove_busy_device(server, env, host):
    busy = uml_mconsole(env, UMID, "remove ubd0")
    assert (busy.returncode, busy.stdout) == (1, b"ERR Device is currently open\n")
    free = uml_mconsole(env, UMID, "remove ubd1")
    assert (free.returncode, free.stdout) == (0, b"OK \n")


def test_log(server, env, host):
    result = uml_mconsole(env, UMID, "log", "hello", "world")
    # uml_mconsole sends the text, then the newline ending the log line
    assert (result.returncode, result.stdout) == (0, b"OK \nOK \n")
    assert host.calls == [("log", "hello world"), ("log", "\n")]


def test_proc_streams_several_chunks(server, env, host):
    assert len(MEMINFO) > 2048
    result = uml_mconsole(env, UMID, "proc meminfo")
    assert (result.returncode, result.stdout) == (0, b"OK \n" + MEMINFO + b"\n")
    with raw_client() as sock:
        replies = [decode_reply(r) for r in
                   raw_exchange(sock, server.socket_path, encode_request(b"proc meminfo"))]
    assert replies[0].data == b"\n" and replies[0].more
    assert b"".join(r.data for r in replies[1:]) == MEMINFO
    missing = uml_mconsole(env, UMID, "proc nosuchfile")
    assert (missing.returncode, missing.stdout) == (1, b"ERR Failed to open file\n")


def test_stack(server, env, host):
    result = uml_mconsole(env, UMID, "stack 42")
    assert result.stdout == b"OK Call Trace for pid 42:\n do_wait\n\n"
    bad = uml_mconsole(env, UMID, "stack nope")
    assert bad.returncode == 1 and bad.stdout.startswith(b"ERR ")
    assert host.calls == [("stack", 42)]


def test_unknown_command(server, env, host):
    result = uml_mconsole(env, UMID, "frobnicate")
    assert (result.returncode, result.stdout) == (1, b"ERR Unknown command\n")
    assert host.calls == []


def test_commands_match_by_prefix_and_log_keeps_its_text(host):
    dispatcher = Dispatcher(host)
    assert dispatcher.dispatch(b"versionx").segments == [VERSION.encode()]
    assert dispatcher.dispatch(b" version").segments == [b"Unknown command"]
    assert dispatcher.dispatch(b"").err == 1
    dispatcher.dispatch(b"log   indented\n")
    dispatcher.dispatch(b"sysrq   t")
    assert host.calls == [("version", None), ("log", "  indented\n"), ("sysrq", "t")]


def test_host_bug_is_an_error_answer(server, env, host):
    result = uml_mconsole(env, UMID, "sysrq x")
    assert (result.returncode, result.stdout) == (1, b"ERR sysrq failed: RuntimeError: boom\n")
    assert uml_mconsole(env, UMID, "version").returncode == 0


# --- our client against uml_mconsole, byte for byte ----------------------------------

COMPARED = ["version", "halt", "reboot", "cad", "stop", "stop", "go", "go", "sysrq t",
            "config ubd9",
            "config ubd1=/images/new.img", "config ubd0", "remove ubd0", "remove ubd1",
            "log hello world", "proc meminfo", "proc nosuchfile", "stack 7", "frobnicate",
            "config ubd2=rel/disk.img,backing.img,serial"]


def test_our_client_prints_what_uml_mconsole_prints(server, env, host, tmp_path):
    (tmp_path / "rel").mkdir()
    # the whole sequence with each client (stop/go carry state from one command to the next)
    theirs = [uml_mconsole(env, UMID, c, cwd=str(tmp_path)) for c in COMPARED]
    calls_theirs = host.calls[:]
    host.calls.clear()
    mine = [ours(env, UMID, c, cwd=str(tmp_path)) for c in COMPARED]
    for command, their, my in zip(COMPARED, theirs, mine):
        assert (my.returncode, my.stdout) == (their.returncode, their.stdout), command
    # the same requests reached the kernel (relative ubd paths made absolute alike)
    assert host.calls == calls_theirs
    assert ("config", f"ubd2={tmp_path}/rel/disk.img,{tmp_path}/backing.img,serial") in host.calls
    theirs_help = uml_mconsole(env, UMID, "help").stdout
    mine_help = ours(env, UMID, "help").stdout
    served = b"OK " + server.dispatcher.help_text().encode() + b"\n"
    # the server's part is identical; each client then lists its own local commands
    assert theirs_help.startswith(served) and mine_help.startswith(served)


def test_our_client_interactive_transcript_matches(server, env):
    session = b"version\nstop\ngo\nsysrq t\nquit\n"
    theirs = uml_mconsole(env, UMID, stdin=session)
    mine = ours(env, UMID, stdin=session)
    assert (mine.returncode, mine.stdout) == (theirs.returncode, theirs.stdout)
    assert mine.stdout.startswith(f"({UMID}) version\nOK {VERSION}\n".encode())


def test_our_client_takes_a_socket_path_and_reports_missing_ones(server, env, tmp_path):
    by_path = ours(env, server.socket_path, "version")
    assert (by_path.returncode, by_path.stdout) == (0, f"OK {VERSION}\n".encode())
    missing = ours(env, str(tmp_path / "nothing"), "version")
    assert missing.returncode == 1 and missing.stdout == b""
    assert b"no mconsole socket" in missing.stderr and missing.stderr.count(b"\n") == 1
    local = ours(env, UMID, "mconsole-version")
    assert local.stdout == f"umlpy-mconsole client version {MCONSOLE_VERSION}\n".encode()


# --- malformed datagrams ------------------------------------------------------------

def test_malformed_datagrams_are_answered_or_dropped(server, env):
    path = server.socket_path
    header = struct.Struct("=III")
    with raw_client() as sock:
        def error_of(datagram: bytes) -> bytes:
            (reply,) = raw_exchange(sock, path, datagram)
            decoded = decode_reply(reply)
            assert decoded.err == 1
            return decoded.data

        sock.sendto(b"version", path)           # a version 0 client gets bare text
        assert sock.recv(4096) == LEGACY_CLIENT_ANSWER
        assert error_of(struct.pack("=I", MCONSOLE_MAGIC) + b"\0\0") == b"Request too short"
        assert error_of(header.pack(MCONSOLE_MAGIC, 2, 600) + b"x" * 512) == b"Request too large"
        assert error_of(header.pack(MCONSOLE_MAGIC, 1, 7) + b"version") == \
            b"This driver only supports version 2 clients"
        assert error_of(header.pack(MCONSOLE_MAGIC, 2, 100) + b"version") == \
            b"Request length is past the end of the datagram"
        # a short but exact request (no padding) is fine
        (ok,) = raw_exchange(sock, path, header.pack(MCONSOLE_MAGIC, 2, 7) + b"version")
        assert decode_reply(ok).data == VERSION.encode()
        # an empty datagram is dropped: the next answer belongs to the next request
        sock.sendto(b"", path)
        (ok,) = raw_exchange(sock, path, encode_request(b"version"))
        assert decode_reply(ok).data == VERSION.encode()

        # noise: each datagram is answered once or dropped, never kills the server
        rng = random.Random(1234)
        for _ in range(300):
            size = rng.choice([1, 3, 4, 11, 12, 13, 100, 524, 1000])
            junk = bytes(rng.getrandbits(8) for _ in range(size))
            if rng.random() < 0.5 and size >= 4:
                junk = struct.pack("=I", MCONSOLE_MAGIC) + junk[4:]
            sock.sendto(junk, path)
            drain(sock)                         # read answers as a client would
        drain(sock, wait=0.2)
    # unbound senders cannot be answered; a client that leaves early is not waited for
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as unbound:
        unbound.sendto(encode_request(b"version"), path)
    with raw_client() as leaver:
        leaver.sendto(encode_request(b"sysrq t"), path)
    result = uml_mconsole(env, UMID, "version")
    assert (result.returncode, result.stdout) == (0, f"OK {VERSION}\n".encode())


# --- the umid directory --------------------------------------------------------------

def _dead_pid() -> int:
    child = subprocess.Popen(["true"])
    child.wait()
    return child.pid


def test_directory_layout_and_clean_close(tmp_path, host):
    uml_dir = tmp_path / ".uml"
    srv = MconsoleServer(UMID, str(uml_dir), host)
    directory = uml_dir / UMID
    assert (directory / "pid").read_text() == f"{os.getpid()}\n"
    assert (directory / "mconsole").is_socket()
    assert srv.socket_path == str(directory / "mconsole")
    assert directory.stat().st_mode & 0o777 == 0o700
    srv.start()
    srv.close()
    srv.close()                                 # twice is harmless
    assert not directory.exists() and uml_dir.exists()


def test_tilde_uml_dir_and_random_umid(tmp_path, host, monkeypatch):
    monkeypatch.setenv("HOME", str(tmp_path))
    with MconsoleServer("", None, host) as srv:
        assert len(srv.umid) == 6
        assert srv.socket_path == str(tmp_path / ".uml" / srv.umid / "mconsole")


def test_stale_directory_is_reclaimed(tmp_path, host):
    directory = tmp_path / ".uml" / UMID
    directory.mkdir(parents=True)
    (directory / "pid").write_text(f"{_dead_pid()}\n")
    (directory / "leftover").write_text("junk")
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as old:
        old.bind(str(directory / "mconsole"))   # a socket left behind, nobody bound any more
    with MconsoleServer(UMID, str(tmp_path / ".uml"), host):
        assert (directory / "pid").read_text() == f"{os.getpid()}\n"
        assert not (directory / "leftover").exists()


def test_reused_pid_with_dead_socket_is_stale(tmp_path, host):
    directory = tmp_path / ".uml" / UMID
    directory.mkdir(parents=True)
    stranger = subprocess.Popen(["sleep", "30"])    # a live pid that is not a kernel
    try:
        (directory / "pid").write_text(f"{stranger.pid}\n")
        with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as old:
            old.bind(str(directory / "mconsole"))
        with MconsoleServer(UMID, str(tmp_path / ".uml"), host):
            pass
    finally:
        stranger.kill()
        stranger.wait()


def test_live_umid_is_refused(server, tmp_path, host):
    with pytest.raises(MconsoleError) as refused:
        MconsoleServer(UMID, str(tmp_path / ".uml"), host)
    message = str(refused.value)
    assert "\n" not in message and UMID in message and str(os.getpid()) in message
    assert (Path(server.socket_path)).is_socket()   # the live one is untouched


def test_bad_umids_are_refused(tmp_path, host):
    for umid in ("a/b", "x" * 64, ".."):
        with pytest.raises(MconsoleError):
            MconsoleServer(umid, str(tmp_path / ".uml"), host)
    with pytest.raises(MconsoleError, match="longer than"):
        MconsoleServer("y" * 63, str(tmp_path / ("d" * 60)), host)


# --- notify, poll_once, closing from the mconsole thread ------------------------------

def test_notify_sends_the_socket_path(server, tmp_path):
    target = tmp_path / "notify.sock"
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as listener:
        listener.bind(str(target))
        listener.settimeout(5)
        server.notify(str(target))
        datagram = listener.recv(4096)
    kind, data = decode_notify(datagram)
    assert kind is NotifyKind.SOCKET
    assert data == server.socket_path.encode() + b"\0"
    assert len(datagram) == 16 + len(data)
    assert struct.unpack_from("=II", datagram) == (MCONSOLE_MAGIC, MCONSOLE_VERSION)
    with pytest.raises(MconsoleError):
        server.notify(str(tmp_path / "nobody-listens"))


def test_poll_once_serves_without_a_thread(tmp_path, host, env):
    with MconsoleServer(UMID, str(tmp_path / ".uml"), host) as srv:
        assert srv.poll_once() == 0                 # nothing waiting: returns at once
        if not os.access(UML_MCONSOLE, os.X_OK):
            pytest.skip("uml_mconsole missing")
        client = subprocess.Popen([UML_MCONSOLE, UMID, "version"], env=env,
                                  stdout=subprocess.PIPE)
        while client.poll() is None:
            srv.poll_once(timeout=0.05)
        assert client.stdout.read() == f"OK {VERSION}\n".encode()
        client.stdout.close()
        assert srv.fileno() >= 0


def test_halt_may_close_the_server_from_its_own_thread(tmp_path, host, env):
    srv = MconsoleServer(UMID, str(tmp_path / ".uml"), host)
    done = threading.Event()
    host.on_halt = lambda: (srv.close(), done.set())
    srv.start()
    result = uml_mconsole(env, UMID, "halt")
    assert (result.returncode, result.stdout) == (0, b"OK \n")
    assert done.wait(5)
    assert srv.closed and not (tmp_path / ".uml" / UMID).exists()
