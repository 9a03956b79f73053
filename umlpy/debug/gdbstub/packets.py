"""RSP framing: $data#cs packets, acks, escapes and hex."""
from __future__ import annotations

import socket
from typing import Optional

ESCAPE = 0x7D
SPECIAL = b"$#}*"
INTERRUPT = 0x03


def checksum(data: bytes) -> int:
    return sum(data) & 0xFF


def frame(data: bytes) -> bytes:
    out = bytearray()
    for b in data:
        if b in SPECIAL:
            out += bytes((ESCAPE, b ^ 0x20))
        else:
            out.append(b)
    return b"$" + bytes(out) + b"#%02x" % checksum(bytes(out))


def unescape(data: bytes) -> bytes:
    out, i = bytearray(), 0
    while i < len(data):
        if data[i] == ESCAPE and i + 1 < len(data):
            out.append(data[i + 1] ^ 0x20)
            i += 2
        else:
            out.append(data[i])
            i += 1
    return bytes(out)


class Reader:
    """Splits a gdb byte stream into packets and Ctrl-C interrupts; acks each packet."""

    def __init__(self, sock: socket.socket) -> None:
        self.sock = sock
        self.buf = bytearray()
        self.ack = True

    def next(self) -> Optional[bytes]:
        """The next packet's payload, b"\\x03" for an interrupt, None at EOF."""
        while True:
            while self.buf and self.buf[0] in b"+-":
                del self.buf[0]
            if self.buf and self.buf[0] == INTERRUPT:
                del self.buf[0]
                return b"\x03"
            if self.buf and self.buf[0] != ord("$"):
                del self.buf[0]             # line noise
                continue
            end = self.buf.find(b"#")
            if end >= 0 and len(self.buf) >= end + 3:
                body = bytes(self.buf[1:end])
                sent = bytes(self.buf[end + 1:end + 3])
                del self.buf[:end + 3]
                good = sent.lower() == b"%02x" % checksum(body)
                if self.ack:
                    self.sock.sendall(b"+" if good else b"-")
                if good:
                    return unescape(body)
                continue
            chunk = self.sock.recv(65536)
            if not chunk:
                return None
            self.buf += chunk


def hexint(text: bytes) -> int:
    return int(text, 16)


def hexstr(data: bytes) -> bytes:
    return data.hex().encode()
