"""The few MQTT 5 packets the event connection (`ingest.eventlink`) writes and reads.

    A PUBLISH at QoS 1, as an event waits to be sent (head, tail) and as it is written:

    | 0x32 | remaining length | topic length | topic | packet id | 0x00   | payload |
    | 1    | 1-4 bytes        | 2 bytes      |       | 2 bytes   | (props)|         |
    |<---------------------- head ------------------->|           |<---- tail ------>|

The packet id is the connection's to choose, so an event is made as (head, tail) by whoever
makes it, and the connection puts the id between the halves when it writes a block of them.
"""

from __future__ import annotations

import functools
import struct

# The broker's Receive Maximum when its CONNACK names none (MQTT 5, 3.1.2.11.3).
DEFAULT_RECEIVE_MAXIMUM = 65_535

_H = struct.Struct("!H")


class LinkError(Exception):
    """The event connection failed or the broker refused it; `str()` says why."""


def disconnected(body: bytes) -> LinkError:
    """The error for a DISCONNECT from the broker, its reason code named."""
    return LinkError(f"the broker disconnected us (reason 0x{body[0] if body else 0:02x})")


def remaining_length(n: int) -> bytes:
    """MQTT's variable byte integer."""
    out = bytearray()
    while True:
        byte, n = n & 0x7F, n >> 7
        out.append(byte | (0x80 if n else 0))
        if not n:
            return bytes(out)


def read_varint(buf: bytes, pos: int) -> tuple[int, int]:
    """MQTT's variable byte integer at `pos`: (value, position after it); (0, -1) if `buf`
    ends before it does."""
    value, shift, end = 0, 0, len(buf)
    while pos < end:
        byte = buf[pos]
        pos += 1
        value |= (byte & 0x7F) << shift
        shift += 7
        if byte < 0x80:
            return value, pos
    return 0, -1


def _string(data: bytes) -> bytes:
    return _H.pack(len(data)) + data


def connect_packet(
    client_id: str, keepalive: int, username: str | None, password: str | None
) -> bytes:
    """CONNECT, MQTT 5, clean start, no will, no properties."""
    flags = 0x02 | (0x80 if username is not None else 0) | (0x40 if password is not None else 0)
    body = _string(b"MQTT") + bytes([5, flags]) + _H.pack(keepalive) + b"\x00"
    body += _string(client_id.encode())
    if username is not None:
        body += _string(username.encode())
    if password is not None:
        body += _string(password.encode())
    return b"\x10" + remaining_length(len(body)) + body


def publish_header(remaining: int) -> bytes:
    """PUBLISH's fixed header, QoS 1, not retained, for a packet of `remaining` bytes after it."""
    if 128 <= remaining < 16_384:  # the usual event: a two-byte remaining length
        return _headers(remaining)
    return b"\x32" + remaining_length(remaining)


@functools.lru_cache(maxsize=1024)  # bodies of a type differ in length by a few bytes at most
def _headers(remaining: int) -> bytes:
    return bytes((0x32, (remaining & 0x7F) | 0x80, remaining >> 7))


def topic_field(topic: bytes) -> bytes:
    """The topic as PUBLISH carries it: its length, then its bytes."""
    return _H.pack(len(topic)) + topic


def publish_parts(topic: bytes, payload: bytes) -> tuple[bytes, bytes]:
    """A QoS 1 PUBLISH (MQTT 5, no properties) cut where its packet id goes: (head, tail).

    An event waits for the connection as this pair: `EventLink.send` puts a packet id
    between the two halves when it writes it (see there).
    """
    tail = b"\x00" + payload  # properties length 0, then the payload
    field = topic_field(topic)
    return publish_header(len(field) + 2 + len(tail)) + field, tail


def publish_packet(topic: bytes, payload: bytes, mid: int) -> bytes:
    """PUBLISH, QoS 1, not retained, no properties (MQTT 5), as `send` writes it."""
    head, tail = publish_parts(topic, payload)
    return head + MIDS[mid] + tail


# Every packet id as its two bytes (2.3 MB): `send` joins them between the halves of the
# events in C, where packing each id in Python cost about 0.3 us an event.
MIDS = [mid.to_bytes(2, "big") for mid in range(65_536)]


def parse_connack(body: bytes) -> tuple[int, int]:
    """(reason code, the broker's Receive Maximum) of a v5 CONNACK."""
    if len(body) < 2:
        raise LinkError("CONNACK too short")
    reason = body[1]
    receive_max = DEFAULT_RECEIVE_MAXIMUM
    if len(body) > 2:  # properties: a length, then (id, value) pairs; only 0x21 matters here
        length, pos = read_varint(body, 2)
        if pos < 0:
            raise LinkError("CONNACK properties cut short")
        props = body[pos : pos + length]
        i = 0
        while i < len(props):
            pid = props[i]
            i += 1
            size = _PROPERTY_SIZES.get(pid)
            if size is None:  # variable-length property: string or binary (2-byte length)
                if pid == 0x26:  # user property: two strings
                    for _ in range(2):
                        i += 2 + _H.unpack_from(props, i)[0]
                else:
                    i += 2 + _H.unpack_from(props, i)[0]
                continue
            if pid == 0x21:
                receive_max = _H.unpack_from(props, i)[0]
            i += size
    return reason, receive_max


# Fixed-size CONNACK properties (MQTT 5, 3.2.2.3): id -> value bytes.
_PROPERTY_SIZES = {
    0x11: 4,  # session expiry interval
    0x21: 2,  # receive maximum
    0x24: 1,  # maximum QoS
    0x25: 1,  # retain available
    0x27: 4,  # maximum packet size
    0x13: 2,  # server keep alive
    0x22: 2,  # topic alias maximum
    0x28: 1,  # wildcard subscription available
    0x29: 1,  # subscription identifiers available
    0x2A: 1,  # shared subscription available
}
