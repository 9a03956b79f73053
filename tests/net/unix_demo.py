"""A unix-socket server and client (run natively and in the guest; the
output must be the same): stream and datagram sockets bound to paths,
abstract names, autobind, fd passing over SCM_RIGHTS, and the errors."""
import array
import os
import pathlib
import socket
import stat
import sys
import tempfile

base = tempfile.mkdtemp(prefix="unixdemo-", dir=sys.argv[1] if len(sys.argv) > 1 else None)
path = os.path.join(base, "srv.sock")
tag = os.path.basename(base)


def show(*args):
    print(*[str(a).replace(base, "BASE").replace(tag, "TAG") for a in args], flush=True)


def err(fn):
    try:
        fn()
        return "ok"
    except OSError as e:
        return f"errno {e.errno}"


old = os.umask(0o027)
srv = socket.socket(socket.AF_UNIX)
srv.bind(path)
os.umask(old)
srv.listen()
show("is_socket", pathlib.Path(path).is_socket(), oct(stat.S_IMODE(os.stat(path).st_mode)))
show("sockname", srv.getsockname())
show("bind twice", err(lambda: srv.bind(path + "2")))
show("name taken", err(lambda: socket.socket(socket.AF_UNIX).bind(path)))
show("no dir", err(lambda: socket.socket(socket.AF_UNIX).bind(base + "/no/x")))
show("no name", err(lambda: socket.socket(socket.AF_UNIX).connect(base + "/none")))
open(base + "/file", "w").close()
show("a file", err(lambda: socket.socket(socket.AF_UNIX).connect(base + "/file")))
os.mknod(base + "/stale", stat.S_IFSOCK | 0o600)
show("stale inode", err(lambda: socket.socket(socket.AF_UNIX).connect(base + "/stale")))
os.symlink(path, base + "/link")

pid = os.fork()
if pid == 0:                         # the client: sends a pipe's read end
    cli = socket.socket(socket.AF_UNIX)
    cli.connect(base + "/link")      # through a symlink
    r, w = os.pipe()
    os.write(w, b"through the passed fd")
    os.close(w)
    socket.send_fds(cli, [b"fd follows"], [r])
    show("client peer", cli.getpeername())
    cli.close()
    os._exit(0)
conn, addr = srv.accept()
os.waitpid(pid, 0)                   # the client printed and left; its data waits
msg, fds, _flags, _addr = socket.recv_fds(conn, 100, 4)
show("server got", msg, len(fds), os.read(fds[0], 100))
show("accepted sockname", conn.getsockname())

# datagrams between two bound sockets
a = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
a.bind(base + "/a")
b = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
b.bind(base + "/b")
b.sendto(b"dgram", base + "/a")
show("dgram", a.recv(100))
b.connect(base + "/a")
b.send(b"connected dgram")
show("dgram", a.recv(100), b.getpeername())

# the abstract namespace
ab = socket.socket(socket.AF_UNIX)
ab.bind("\0umlpy-demo-" + tag)
ab.listen()
show("abstract", ab.getsockname())
ac = socket.socket(socket.AF_UNIX)
ac.connect("\0umlpy-demo-" + tag)
show("abstract peer", ac.getpeername())
auto = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
auto.bind("")
name = auto.getsockname()
show("autobind", len(name), name[:1])
a.sendto(b"to autobound", name)
show("autobind got", auto.recv(100))
show("unlinked", err(lambda: (os.unlink(path), socket.socket(socket.AF_UNIX).connect(path))))
show("done")
