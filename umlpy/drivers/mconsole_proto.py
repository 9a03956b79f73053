"""The mconsole wire format: request, reply and notify datagrams.

Every field is a u32 in host byte order (the structs are shared by a
client and a kernel on the same machine), so struct's native order with
no padding ("=") is the right choice, not a fixed endianness.

  request  magic 0xcafebabe, version 2, len, data[512]   always 524 bytes
           from uml_mconsole; len excludes the NUL and is < 512
  reply    err, more, len, data                           12 + len bytes;
           len counts the NUL, so a chunk carries at most 511 bytes;
           more=1 on every chunk but the last. UML sets err on the first
           chunk only, but uml_mconsole reports the err of the *last* one,
           so we repeat err on every chunk of an error answer (a client
           reading the first chunk's err sees the same thing)
  notify   magic, version, type, len, data                16 + len bytes,
           sent to the socket named by mconsole=notify:<socket>

A datagram without the magic comes from a "version 0" client, which gets
a bare text answer instead of a reply struct.
"""
from __future__ import annotations

import enum
import struct
from dataclasses import dataclass
from typing import Iterable, Iterator, List, Optional

MCONSOLE_MAGIC = 0xCAFEBABE
MCONSOLE_VERSION = 2
MCONSOLE_MAX_DATA = 512
CHUNK_TEXT_MAX = MCONSOLE_MAX_DATA - 1          # one byte of each reply is the NUL

# request (magic, version, len) and reply (err, more, len): u32s, host order, unpadded
HEADER = struct.Struct("=III")
NOTIFY_HEADER = struct.Struct("=IIII")          # magic, version, type, len
REQUEST_SIZE = HEADER.size + MCONSOLE_MAX_DATA  # 524
REPLY_MAX_SIZE = HEADER.size + MCONSOLE_MAX_DATA
RECV_BUFFER_SIZE = 4096                         # more than any datagram: oversized ones seen whole

LEGACY_CLIENT_ANSWER = b"ERR Version 0 mconsole clients are not supported by this driver"


class NotifyKind(enum.IntEnum):
    """The type field of a notify datagram."""
    SOCKET = 0          # "my mconsole socket is ready", data = its path
    PANIC = 1
    HANG = 2
    USER_NOTIFY = 3


class MalformedRequest(Exception):
    """A datagram that is not a usable request.

    answer is what the sender gets: error text for a reply struct, or
    (legacy=True) a bare text datagram; None means drop it silently.
    """

    def __init__(self, answer: Optional[str], legacy: bool = False) -> None:
        super().__init__(answer or "dropped")
        self.answer = answer
        self.legacy = legacy


@dataclass(frozen=True)
class Reply:
    err: int
    more: bool
    data: bytes         # text without its NUL


def _cstring(data: bytes) -> bytes:
    """data up to its first NUL, as C code reading the buffer would see it."""
    nul = data.find(b"\0")
    return data if nul < 0 else data[:nul]


def decode_request(datagram: bytes) -> bytes:
    """The command text of a request datagram, or MalformedRequest."""
    if not datagram:
        raise MalformedRequest(None)
    if len(datagram) < 4 or struct.unpack_from("=I", datagram)[0] != MCONSOLE_MAGIC:
        raise MalformedRequest(LEGACY_CLIENT_ANSWER.decode(), legacy=True)
    if len(datagram) < HEADER.size:
        raise MalformedRequest("Request too short")
    _magic, version, length = HEADER.unpack_from(datagram)
    if length >= MCONSOLE_MAX_DATA:
        raise MalformedRequest("Request too large")
    if version != MCONSOLE_VERSION:
        raise MalformedRequest(f"This driver only supports version {MCONSOLE_VERSION} clients")
    if length > len(datagram) - HEADER.size:
        raise MalformedRequest("Request length is past the end of the datagram")
    return _cstring(datagram[HEADER.size:HEADER.size + length])


def encode_request(command: bytes) -> bytes:
    """A full-size request, as uml_mconsole sends it (commands over 511 bytes are cut)."""
    command = command[:CHUNK_TEXT_MAX]
    return HEADER.pack(MCONSOLE_MAGIC, MCONSOLE_VERSION, len(command)) + \
        command.ljust(MCONSOLE_MAX_DATA, b"\0")


def encode_reply(segments: Iterable[bytes], err: int = 0) -> Iterator[bytes]:
    """Reply datagrams for an answer made of segments.

    Each segment is cut into chunks of at most 511 bytes and never merged
    with its neighbour (proc's leading "\\n" travels alone, as in UML).
    Empty segments are skipped unless the answer would have no chunk at all.
    """
    chunks: List[bytes] = []
    for segment in segments:
        chunks.extend(segment[i:i + CHUNK_TEXT_MAX] for i in range(0, len(segment), CHUNK_TEXT_MAX))
    if not chunks:
        chunks = [b""]
    last = len(chunks) - 1
    for index, chunk in enumerate(chunks):
        yield HEADER.pack(err, int(index != last), len(chunk) + 1) + chunk + b"\0"


def decode_reply(datagram: bytes) -> Reply:
    """One reply chunk; ValueError if it is not a reply struct."""
    if len(datagram) < HEADER.size:
        raise ValueError(f"reply of {len(datagram)} bytes is shorter than its header")
    err, more, length = HEADER.unpack_from(datagram)
    if length > MCONSOLE_MAX_DATA or length > len(datagram) - HEADER.size or more > 1:
        raise ValueError("not an mconsole reply")
    return Reply(err, bool(more), _cstring(datagram[HEADER.size:HEADER.size + length]))


def encode_notify(kind: NotifyKind, data: bytes) -> bytes:
    """A notify datagram; data should carry its own NUL when it is a string."""
    data = data[:MCONSOLE_MAX_DATA]
    return NOTIFY_HEADER.pack(MCONSOLE_MAGIC, MCONSOLE_VERSION, int(kind), len(data)) + data


def decode_notify(datagram: bytes) -> "tuple[NotifyKind, bytes]":
    """(kind, data) of a notify datagram; ValueError if it is not one."""
    if len(datagram) < NOTIFY_HEADER.size:
        raise ValueError("notify datagram too short")
    magic, version, kind, length = NOTIFY_HEADER.unpack_from(datagram)
    if magic != MCONSOLE_MAGIC or version != MCONSOLE_VERSION:
        raise ValueError("bad notify magic or version")
    if length > len(datagram) - NOTIFY_HEADER.size:
        raise ValueError("notify length past the end of the datagram")
    return NotifyKind(kind), datagram[NOTIFY_HEADER.size:NOTIFY_HEADER.size + length]
