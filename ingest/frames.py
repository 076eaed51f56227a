"""MQTT 3.1.1 framing: a received byte stream split into packets, PUBLISH packets parsed.

Why not paho's reader: it reads one packet per call with three or four `recv` calls (command
byte, each length byte, the rest), and builds an `MQTTMessage` with its own
`threading.Condition` for each PUBLISH. Measured here, that was about 30% of the ingester's time.
`ingest.mqttshim` reads the socket in large blocks, splits them here, keeps the PUBLISH packets and
hands every other packet (CONNACK, SUBACK, PINGRESP, ...) back to paho's own handlers.

Pure: no I/O, no paho.
"""

from __future__ import annotations

PUBLISH = 0x30
_MAX_LENGTH_BYTES = 4  # the remaining length takes at most 4 bytes (MQTT 3.1.1, 2.2.3)


class FrameError(ValueError):
    """The stream is not MQTT: the connection must be dropped."""


class Framer:
    """Accumulates received bytes; `feed` returns the packets completed so far."""

    __slots__ = ("_buf",)

    def __init__(self) -> None:
        self._buf = bytearray()

    def __len__(self) -> int:
        """Bytes held of a packet not yet complete."""
        return len(self._buf)

    def feed(self, data: bytes) -> list[tuple[int, bytes]]:
        """(first byte of the fixed header, bytes after the remaining length) per packet."""
        buf = self._buf
        buf += data
        end = len(buf)
        packets: list[tuple[int, bytes]] = []
        pos = 0
        while end - pos >= 2:  # a fixed header is at least 2 bytes
            length = 0
            shift = 0
            i = pos + 1
            while True:
                if i == end:
                    length = -1  # the length itself is incomplete
                    break
                byte = buf[i]
                i += 1
                length |= (byte & 0x7F) << shift
                if byte < 0x80:  # no continuation bit
                    break
                shift += 7
                if i - pos > _MAX_LENGTH_BYTES:
                    msg = "remaining length longer than 4 bytes"
                    raise FrameError(msg)
            if length < 0 or end - i < length:
                break
            packets.append((buf[pos], bytes(buf[i : i + length])))
            pos = i + length
        if pos:
            del buf[:pos]
        return packets


def parse_publish(header: int, body: bytes) -> tuple[str, bytes, int, int]:
    """Topic, payload, packet id (0 at QoS 0) and QoS of a PUBLISH packet.

    A topic that is not UTF-8 (the broker should refuse those) is decoded with replacement
    characters, so that the ingester keeps it as a `topic` reject rather than failing.
    """
    qos = (header >> 1) & 0x03
    if len(body) < 2:
        msg = "PUBLISH without a topic"
        raise FrameError(msg)
    end = 2 + ((body[0] << 8) | body[1])
    if qos:
        if len(body) < end + 2:
            msg = "PUBLISH shorter than its topic and packet id"
            raise FrameError(msg)
        mid = (body[end] << 8) | body[end + 1]
        payload = body[end + 2 :]
    else:
        if len(body) < end:
            msg = "PUBLISH shorter than its topic"
            raise FrameError(msg)
        mid = 0
        payload = body[end:]
    return body[2:end].decode("utf-8", "replace"), payload, mid, qos
