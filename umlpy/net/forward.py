"""Port forwarding from the host into a guest with a network namespace of
its own: the kernel listens on the host port and, for each connection (or
each UDP peer), relays to the guest port on the guest's loopback through a
socket the namespace agent made in there."""
from __future__ import annotations

import selectors
import socket
import threading
from typing import Dict, Tuple

from umlpy.net.policy import Forward

CHUNK = 65536
UDP_IDLE = 120.0        # seconds a UDP peer's mapping lives without traffic


def _relay(a: socket.socket, b: socket.socket) -> None:
    """Copy both ways until both sides are done; half-closes pass through."""
    sel = selectors.DefaultSelector()
    peers = {a: b, b: a}
    for s in peers:
        sel.register(s, selectors.EVENT_READ)
    open_ = 2
    try:
        while open_:
            for key, _ in sel.select():
                src = key.fileobj
                dst = peers[src]
                try:
                    data = src.recv(CHUNK)
                except OSError:
                    data = b""
                if data:
                    try:
                        dst.sendall(data)
                        continue
                    except OSError:
                        return
                sel.unregister(src)
                open_ -= 1
                try:
                    dst.shutdown(socket.SHUT_WR)
                except OSError:
                    pass
    finally:
        sel.close()
        a.close()
        b.close()


class Forwarder:
    """One --forward rule, served by a daemon thread."""

    def __init__(self, rule: Forward, agent) -> None:
        self.rule = rule
        self.agent = agent
        kind = socket.SOCK_STREAM if rule.proto == "tcp" else socket.SOCK_DGRAM
        family = socket.AF_INET6 if ":" in rule.host_addr else socket.AF_INET
        self.sock = socket.socket(family, kind)
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            self.sock.bind((rule.host_addr, rule.host_port))
            if kind == socket.SOCK_STREAM:
                self.sock.listen(64)
        except OSError:
            self.sock.close()
            raise
        self.closed = False
        target = self._serve_tcp if kind == socket.SOCK_STREAM else self._serve_udp
        self.thread = threading.Thread(target=target, name=f"umlpy-fwd-{rule.host_port}",
                                       daemon=True)
        self.thread.start()

    def _inside(self, kind: int) -> socket.socket:
        s = self.agent.socket(socket.AF_INET, kind)
        s.connect(("127.0.0.1", self.rule.guest_port))
        return s

    def _serve_tcp(self) -> None:
        while not self.closed:
            try:
                client, _addr = self.sock.accept()
            except OSError:
                return
            try:
                inner = self._inside(socket.SOCK_STREAM)
            except OSError:
                client.close()          # nothing listens in the guest: refuse as a reset
                continue
            threading.Thread(target=_relay, args=(client, inner), daemon=True,
                             name="umlpy-fwd-relay").start()

    def _serve_udp(self) -> None:
        sel = selectors.DefaultSelector()
        sel.register(self.sock, selectors.EVENT_READ)
        inner: Dict[Tuple, socket.socket] = {}
        back: Dict[socket.socket, Tuple] = {}
        try:
            while not self.closed:
                events = sel.select(UDP_IDLE)
                if not events:          # idle: forget every peer
                    for s in back:
                        sel.unregister(s)
                        s.close()
                    inner.clear()
                    back.clear()
                for key, _ in events:
                    s = key.fileobj
                    if s is self.sock:
                        data, peer = self.sock.recvfrom(CHUNK)
                        t = inner.get(peer)
                        if t is None:
                            t = inner[peer] = self._inside(socket.SOCK_DGRAM)
                            back[t] = peer
                            sel.register(t, selectors.EVENT_READ)
                        t.send(data)
                    else:
                        try:
                            self.sock.sendto(s.recv(CHUNK), back[s])
                        except OSError:
                            pass
        except OSError:
            return
        finally:
            sel.close()

    def close(self) -> None:
        self.closed = True
        try:
            self.sock.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass
        self.sock.close()
