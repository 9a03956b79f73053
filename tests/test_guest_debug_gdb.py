"""--gdb: Debian's gdb drives a guest process through umlpy's remote stub."""

from __future__ import annotations

import select
import shutil
import socket
import subprocess
import time
from pathlib import Path

import pytest

from guestroot import boot_hostfs_machine, guest_env, kill_group, umlpy_run

HERE = Path(__file__).resolve().parent


@pytest.fixture(scope="module")
def debuggees(tmp_path_factory) -> Path:
    for tool in ("gcc", "gdb"):
        if shutil.which(tool) is None:
            pytest.skip(f"{tool} missing (apt-get install {tool})")
    d = tmp_path_factory.mktemp("gdb")
    for name, src, extra in (("gdb_hello", "gdb_hello", ["-static"]),
                             ("gdb_threads", "gdb_threads", ["-static", "-pthread"]),
                             ("gdb_dyn", "gdb_dyn", []),
                             ("gdb_loop_static", "gdb_loop", ["-static"])):
        subprocess.run(["gcc", "-g", "-O0", *extra, "-o", str(d / name),
                        str(HERE / "debug" / f"{src}.c")],
                       check=True, capture_output=True, timeout=120)
    return d


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def gdb_batch(prog, target: str, commands: list) -> str:
    """gdb's output for the script; prog None: no local file, gdb reads the
    guest's files through the stub (vFile)."""
    argv = ["gdb", "-batch", "-nx", "-ex", "set confirm off", "-ex", "set debuginfod enabled off"]
    if target:
        argv += ["-ex", target]
    for c in commands:
        argv += ["-ex", c]
    res = subprocess.run(argv + ([str(prog)] if prog is not None else []), capture_output=True,
                         text=True, timeout=90, env=guest_env())
    return res.stdout + res.stderr


def wait_for(stream, text: str, timeout: float = 30) -> str:
    deadline = time.monotonic() + timeout
    seen = ""
    while text not in seen and time.monotonic() < deadline:
        ready, _, _ = select.select([stream], [], [], 1)
        if ready:
            line = stream.readline()
            if not line:
                break
            seen += line
    assert text in seen, seen
    return seen


def under_stub(prog: Path, commands: list, local_file: bool = True) -> tuple:
    """Run prog under `umlpy run --gdb PORT` and the gdb script against it."""
    port = free_port()
    proc = subprocess.Popen(umlpy_run([str(prog)], ["--gdb", str(port)]),
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            env=guest_env(), start_new_session=True)
    try:
        wait_for(proc.stderr, "listening")
        out = gdb_batch(prog if local_file else None, f"target remote 127.0.0.1:{port}",
                        commands)
        stdout, stderr = proc.communicate(timeout=60)
    finally:
        kill_group(proc)
    return out, stdout, proc.returncode


def lines_after(out: str, marker: str) -> str:
    return out[out.index(marker):] if marker in out else out


def test_gdb_session_on_a_guest(debuggees):
    """The acceptance script: break main, continue, registers, x/s, bt, next, kill,
    with the same answers as gdb running the program natively."""
    prog = debuggees / "gdb_hello"
    script = ["break main", "continue", "info registers rip", "x/s greeting", "bt", "next",
              "next", "print n", "info threads", "kill"]
    out, stdout, code = under_stub(prog, script)
    assert "Breakpoint 1, main () at" in out, out
    assert "rip            0x" in out and "<main+" in out, out
    assert '"hello from the guest"' in out, out
    assert "#0  main () at" in out, out
    assert "7\t    size_t len = strlen(greeting);" in out, out
    assert "8\t    printf(" in out, out
    assert "$1 = 49" in out, out
    assert "* 1    Thread 1" in out, out
    assert "killed" in out, out
    assert stdout == "" and code != 0             # killed before its printf
    native = gdb_batch(prog, "", ["break main", "run", "info registers rip", "x/s greeting",
                                  "bt", "next", "next", "print n", "kill"])
    pick = lambda text: [ln for ln in text.splitlines()  # noqa: E731
                         if ln.startswith(("rip ", "#0", "7\t", "8\t", "$1")) or ':\t"' in ln]
    assert pick(out) == pick(native), (out, native)


def test_gdb_threads(debuggees):
    """info threads on a threaded guest: both threads, in guest tids, then it runs to the end."""
    prog = debuggees / "gdb_threads"
    out, stdout, code = under_stub(prog, ["break checkpoint", "continue", "info threads",
                                          "thread 2", "continue"])
    assert "hit Breakpoint 1, checkpoint () at" in out, out
    assert "* 1    Thread 1          checkpoint ()" in out, out
    assert "  2    Thread 2 " in out, out
    assert "[Switching to thread 2 (Thread 2)]" in out, out
    assert "exited normally" in out, out
    assert stdout == "joined\n" and code == 0, (stdout, out)


def test_gdb_dynamic_guest_without_local_files(debuggees):
    """No file on gdb's side: it takes the program's guest path from the stub
    (qXfer:exec-file), reads it and ld.so and libc through vFile, and the
    library list (qXfer:libraries-svr4) names them by their guest paths."""
    out, stdout, code = under_stub(debuggees / "gdb_dyn", [
        "break main", "continue", "break write", "continue", "bt", "info sharedlibrary",
        "detach"], local_file=False)
    assert f"Reading symbols from target:{debuggees / 'gdb_dyn'}" in out, out
    assert "Breakpoint 1, main () at" in out, out
    frames = [ln for ln in out.splitlines() if ln.startswith("#")]
    assert frames and "write" in frames[0] and "main () at" in frames[-1], out
    libs = lines_after(out, "Shared Object Library")
    assert "Yes         target:/lib/x86_64-linux-gnu/libc.so.6" in libs, out
    assert "target:/lib64/ld-linux-x86-64.so.2" in libs and "/proc/" not in libs, out
    assert "detached" in out, out
    assert stdout == "hello from a dynamic guest\ndone\n" and code == 0, (stdout, out)


def test_gdb_attach_then_detach(debuggees, tmp_path):
    """--gdb-attach: the program runs until gdb connects, stops for it (its
    threads, its stack), and runs on to a normal exit once detached."""
    shutil.copy(debuggees / "gdb_loop_static", tmp_path / "gdb_loop")
    stop = tmp_path / "stop"        # a guest root of its own: the guest sees it appear
    port = free_port()
    proc = subprocess.Popen(umlpy_run(["/gdb_loop", "/stop"],
                                      ["--root", str(tmp_path), "--gdb", str(port),
                                       "--gdb-attach"]),
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            env=guest_env(), start_new_session=True)
    try:
        wait_for(proc.stderr, "listening")
        out = gdb_batch(None, f"target remote 127.0.0.1:{port}",
                        ["info threads", "bt", "print rounds > 0", "detach"])
        stop.touch()
        stdout, _ = proc.communicate(timeout=60)
    finally:
        kill_group(proc)
    assert "* 1    Thread 1 " in out, out
    # stopped wherever it was: in its sleep or in its check for /stop, under main
    assert "in main (argc=2" in out, out
    assert "$1 = 1" in out, out
    assert "detached" in out, out
    assert stdout == "finished after a while\n" and proc.returncode == 0, (stdout, out)


@pytest.mark.skipif(shutil.which("uml_mconsole") is None, reason="uml-utilities missing")
def test_mconsole_gdb_attaches_to_a_running_process(debuggees, fresh_busybox_root, tmp_path):
    """`uml_mconsole UMID gdb PID PORT` on a booted machine: gdb finds the program at
    its guest path (/gdb_loop in the guest's root), stops it, and detaching lets it
    finish."""
    shutil.copy(debuggees / "gdb_loop_static", fresh_busybox_root / "gdb_loop")
    uml_dir = tmp_path / "uml"
    script = ('/gdb_loop /tmp/stop &\necho "loop-pid $!"\nwait $!\necho "loop-exit $?"\n'
              "poweroff -f\n")
    proc = boot_hostfs_machine(fresh_busybox_root, "gdbvm", uml_dir)
    try:
        proc.stdin.write(script)
        proc.stdin.close()
        proc.stdin = None
        pid = wait_for(proc.stdout, "loop-pid ").split("loop-pid ")[1].split()[0]
        sock = str(uml_dir / "gdbvm" / "mconsole")
        bad = subprocess.run(["uml_mconsole", sock, "gdb", "9999", "0"], capture_output=True,
                             text=True, timeout=20).stdout
        assert bad.startswith("ERR Couldn't find that pid"), bad
        answer = subprocess.run(["uml_mconsole", sock, "gdb", pid, "0"], capture_output=True,
                                text=True, timeout=20).stdout
        assert answer.startswith(f"OK gdb stub for pid {pid} on 127.0.0.1:"), answer
        port = answer.strip().rsplit(":", 1)[1]
        out = gdb_batch(None, f"target remote 127.0.0.1:{port}",
                        ["info threads", "bt", "detach"])
        (fresh_busybox_root / "tmp" / "stop").touch()
        stdout, _ = proc.communicate(timeout=60)
    finally:
        kill_group(proc)
    assert "Reading symbols from target:/gdb_loop..." in out, out
    assert f"* 1    Thread {pid} " in out and "in main (argc=2" in out, out
    assert "detached" in out, out
    assert "finished after a while\nloop-exit 0\n" in stdout, stdout


def escape_paths(secret: Path) -> list:
    """Ways a hostile gdb might name a host file outside the guest's root."""
    return [str(secret), "/../" + secret.name, "../../../../.." + str(secret),
            "/abs", "/rel", "/rel/../" + secret.name, "/proc/1/root/../" + secret.name]


def plant_escapes(root: Path, secret: Path) -> None:
    secret.write_text("host secret\n")
    (root / "abs").symlink_to(secret)                       # absolute: the host's path
    (root / "rel").symlink_to("../" + secret.name)          # relative: up past the root


def test_vfile_stays_in_the_guest_root(tmp_path):
    """vFile on the kernel's VFS: `..` and symlinks, absolute or relative, cannot
    leave the guest's root; writes, devices and bad packets are refused."""
    from umlpy.debug.gdbstub.vfile import HostIO
    from umlpy.kernel.task import Creds
    from umlpy.vfs import standard
    from umlpy.vfs.vfs import Vfs
    root = tmp_path / "root"
    root.mkdir()
    (root / "inside").write_bytes(b"guest data")
    (root / "link").symlink_to("/inside")
    plant_escapes(root, tmp_path / "secret.txt")
    vfs = Vfs()
    try:
        standard.build_root(vfs, str(root), None)
        top = vfs.root_path()
        io = HostIO(vfs, lambda pid: (top, top, Creds()) if pid == 0 else None, 0x4000)
        op = lambda path, flags=0: io.handle(b"open:%s,%x,0" % (path.encode().hex().encode(), flags))  # noqa: E731
        for path in escape_paths(tmp_path / "secret.txt"):
            assert op(path) == b"F-1,2", path              # ENOENT: not in the guest
        assert op("/inside", 0x1) == b"F-1,1e"             # EROFS: read-only
        assert op("/") == b"F-1,15"                        # EISDIR
        fd = op("/link")
        assert fd.startswith(b"F") and not fd.startswith(b"F-"), fd
        n = fd[1:]
        assert io.handle(b"pread:%s,100,0" % n) == b"Fa;guest data"
        assert io.handle(b"pread:%s,100,6" % n) == b"F4;data"
        st = io.handle(b"fstat:" + n)
        assert st.startswith(b"F40;") and int.from_bytes(st[4 + 28:4 + 36], "big") == 10
        assert io.handle(b"close:" + n) == b"F0"
        assert io.handle(b"pread:%s,10,0" % n) == b"F-1,9"    # EBADF once closed
        assert io.handle(b"readlink:" + b"/link".hex().encode()) == b"F7;/inside"
        assert io.handle(b"setfs:7") == b"F-1,270f"         # no such process
        for junk in (b"open:zz,0,0", b"open:", b"pread:1", b"close:", b"pwrite:3,0,00"):
            assert io.handle(junk).startswith(b"F-1,"), junk
        assert io.handle(b"nosuchop:1") == b""
    finally:
        vfs.close()


def rsp(sock: socket.socket, payload: bytes) -> bytes:
    """One request and its reply, the way gdb frames and acknowledges them."""
    from umlpy.debug.gdbstub.packets import frame, unescape
    sock.sendall(frame(payload))
    buf = b""
    while True:
        start = buf.find(b"$")
        end = buf.find(b"#", start)
        if start >= 0 and end >= 0 and len(buf) >= end + 3:
            sock.sendall(b"+")
            return unescape(buf[start + 1:end])
        chunk = sock.recv(65536)
        assert chunk, buf
        buf += chunk


def test_vfile_escapes_fail_on_a_live_stub(debuggees, tmp_path):
    """The same hostile paths sent to a running stub (guest root: one program)."""
    root = tmp_path / "root"
    root.mkdir()
    shutil.copy(debuggees / "gdb_loop_static", root / "prog")
    secret = tmp_path / "secret.txt"
    plant_escapes(root, secret)
    port = free_port()
    proc = subprocess.Popen(umlpy_run(["/prog"], ["--root", str(root), "--gdb", str(port)]),
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            env=guest_env(), start_new_session=True)
    try:
        wait_for(proc.stderr, "listening")
        with socket.create_connection(("127.0.0.1", port), timeout=30) as sock:
            assert rsp(sock, b"?") == b"T05thread:1;"     # held at its first instruction
            assert rsp(sock, b"qXfer:exec-file:read::0,100") == b"l/prog"
            assert rsp(sock, b"vFile:setfs:0") == b"F0"
            for path in escape_paths(secret):
                reply = rsp(sock, b"vFile:open:%s,0,0" % path.encode().hex().encode())
                assert reply.startswith(b"F-1,"), (path, reply)
            fd = rsp(sock, b"vFile:open:%s,0,0" % b"/prog".hex().encode())[1:]
            assert rsp(sock, b"vFile:pread:%s,4,0" % fd) == b"F4;\x7fELF"
            assert rsp(sock, b"m0,zz") == b"E01"           # malformed: an error, no oops
            assert rsp(sock, b"qXfer:auxv:read::0,10").startswith((b"m", b"l"))
            sock.sendall(frame_kill())
        proc.communicate(timeout=60)
    finally:
        kill_group(proc)


def frame_kill() -> bytes:
    from umlpy.debug.gdbstub.packets import frame
    return frame(b"vKill;1")


def test_library_list_from_hostile_memory():
    """The r_debug walk: ld.so (loaded at AT_BASE) gets the guest's PT_INTERP, the
    vDSO is left out, a looping link_map chain ends, and unreadable memory gives
    an empty list rather than an error."""
    import struct
    from umlpy.debug.gdbstub import solib
    mem = bytearray(0x8000)
    struct.pack_into("<IIQQQQQQ", mem, 0x1000, 6, 0, 0, 0x40, 0, 0, 0, 0)        # PT_PHDR
    struct.pack_into("<IIQQQQQQ", mem, 0x1038, 2, 0, 0, 0x2040, 0, 32, 32, 0)   # PT_DYNAMIC
    struct.pack_into("<qQqQ", mem, 0x3000, 21, 0x5000, 0, 0)    # DT_DEBUG -> r_debug
    struct.pack_into("<Q", mem, 0x5008, 0x6000)                 # r_map
    names = {0x6000: b"", 0x6100: b"/lib/libc.so.6", 0x6200: b"/proc/9/fd/4",
             0x6300: b"linux-vdso.so.1"}
    chain = [(0x6000, 0, 0), (0x6100, 0x7000, 0), (0x6200, 0x4000, 0),
             (0x6300, 0, 0x7e00)]
    for i, (lm, l_addr, l_ld) in enumerate(chain):
        nxt = chain[i + 1][0] if i + 1 < len(chain) else 0x6100     # loops back
        name_at = lm + 0x80
        mem[name_at:name_at + len(names[lm]) + 1] = names[lm] + b"\0"
        struct.pack_into("<QQQQQ", mem, lm, l_addr, name_at, l_ld, nxt, 0)
    read = lambda addr, n: bytes(mem[addr:addr + n])  # noqa: E731
    auxv = {3: 0x1000, 4: 56, 5: 2, 7: 0x4000}
    doc = solib.library_list(read, auxv, b"/lib64/ld-linux-x86-64.so.2", (0x7e00, 0x8000))
    assert doc == (b'<library-list-svr4 version="1.0" main-lm="0x6000">'
                   b'<library name="/lib/libc.so.6" lm="0x6100" l_addr="0x7000" l_ld="0x0" '
                   b'lmid="0x0"/><library name="/lib64/ld-linux-x86-64.so.2" lm="0x6200" '
                   b'l_addr="0x4000" l_ld="0x0" lmid="0x0"/></library-list-svr4>'), doc

    def broken(addr, n):
        raise OSError("unmapped")
    assert solib.library_list(broken, auxv) == b'<library-list-svr4 version="1.0"/>'
    assert solib.library_list(read, {}) == b'<library-list-svr4 version="1.0"/>'


def test_mconsole_gdb_command_arguments():
    from umlpy.drivers.mconsole_commands import Dispatcher

    class Host:
        def gdb(self, pid, port):
            return f"stub {pid} {port}"
    d = Dispatcher(Host())
    assert d.dispatch(b"gdb 12 1234").segments == [b"stub 12 1234"]
    for bad in (b"gdb", b"gdb 12", b"gdb x 1", b"gdb 12 70000", b"gdb 12 -1", b"gdb 1 2 3"):
        assert d.dispatch(bad).err == 1, bad
    assert "gdb <pid> <port>" in d.help_text()


def test_gdb_bad_port_is_a_usage_error():
    for options in (["--gdb", "notaport"], ["--gdb-attach"]):
        res = subprocess.run(umlpy_run(["/bin/true"], options), capture_output=True,
                             text=True, timeout=60, env=guest_env())
        assert res.returncode == 2 and "--gdb" in res.stderr and \
            res.stderr.count("\n") == 1, res


def test_packet_framing():
    from umlpy.debug.gdbstub.packets import frame, unescape
    from umlpy.debug.gdbstub import regs
    assert frame(b"OK") == b"$OK#9a"
    body = frame(b"a#b$c}")[1:-3]
    assert unescape(body) == b"a#b$c}"
    xml = regs.target_xml()
    assert "org.gnu.gdb.i386.core" in xml and 'name="orig_rax"' in xml
    assert sum(size for _, size, *_ in regs.LAYOUT) * 2 == len(regs.encode(_Zero()))


class _Zero:
    def __getattr__(self, name):
        return 0
