"""A unix-socket server and client (run natively and in the guest; the
output must be the same): stream and datagram sockets bound to paths,
abstract names, autobind, fd passing over SCM_RIGHTS, credentials
(SO_PEERCRED, SCM_CREDENTIALS), the names accept/recvfrom/recvmsg report,
sendmsg with an address, and the errors."""
import os
import pathlib
import socket
import stat
import struct
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


PEERCRED = struct.Struct("iII")


def own(uid, gid):
    return (os.getpid(), uid, gid)


def creds_of(received):
    for level, kind, data in received[1]:
        if (level, kind) == (socket.SOL_SOCKET, socket.SCM_CREDENTIALS):
            return PEERCRED.unpack(data)
    return None


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
    cli.recv(1)                      # stays until the server has seen its credentials
    cli.close()
    os._exit(0)
conn, addr = srv.accept()
peercred = PEERCRED.unpack(conn.getsockopt(socket.SOL_SOCKET, socket.SO_PEERCRED, 12))
msg, fds, _flags, _addr = socket.recv_fds(conn, 100, 4)
conn.send(b"k")
os.waitpid(pid, 0)                   # the client printed and left
show("accepted from", repr(addr))
show("peercred", peercred == (pid, os.geteuid(), os.getegid()))
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
b.sendto(b"named", base + "/a")
show("recvfrom", a.recvfrom(100))
b.sendmsg([b"sendmsg ", b"to a path"], [], 0, base + "/a")
show("recvmsg", a.recvmsg(100, 100))
show("sendmsg to none", err(lambda: b.sendmsg([b"x"], [], 0, base + "/none")))
show("sendmsg to a file", err(lambda: b.sendmsg([b"x"], [], 0, base + "/file")))

# credentials: the peer's, the sender's own, and claims that are not one's own
x, y = socket.socketpair()
show("socketpair peercred", PEERCRED.unpack(x.getsockopt(socket.SOL_SOCKET, socket.SO_PEERCRED,
                                                         12)) == own(os.geteuid(), os.getegid()))
y.setsockopt(socket.SOL_SOCKET, socket.SO_PASSCRED, 1)
x.send(b"plain")
show("passcred", creds_of(y.recvmsg(100, 100)) == own(os.getuid(), os.getgid()))
a.setsockopt(socket.SOL_SOCKET, socket.SO_PASSCRED, 1)
b.sendmsg([b"cred"], [(socket.SOL_SOCKET, socket.SCM_CREDENTIALS,
                       PEERCRED.pack(*own(os.getuid(), os.getgid())))], 0, base + "/a")
show("scm_credentials", creds_of(a.recvmsg(100, 100)) == own(os.getuid(), os.getgid()))
if os.geteuid() != 0:
    for what, claim in (("pid", (1, os.getuid(), os.getgid())),
                        ("uid", (os.getpid(), os.getuid() + 1, os.getgid()))):
        show("claim", what, err(lambda: x.sendmsg([b"x"], [(socket.SOL_SOCKET,
                                                            socket.SCM_CREDENTIALS,
                                                            PEERCRED.pack(*claim))])))

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
auto.sendto(b"from autobound", base + "/a")
data, sender = a.recvfrom(100)
show("autobound sender", data, sender == name)
ab.settimeout(10)
ac2 = socket.socket(socket.AF_UNIX)
ac2.bind("\0umlpy-demo-client-" + tag)
ac2.connect("\0umlpy-demo-" + tag)
show("abstract accepted from", ab.accept()[1], ab.accept()[1])
show("unlinked", err(lambda: (os.unlink(path), socket.socket(socket.AF_UNIX).connect(path))))
show("done")
