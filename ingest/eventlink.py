"""The ingester's second MQTT connection: events out (DESIGN section 9), MQTT v5, QoS 1.

Why a connection of its own, and why not aiomqtt on it:
- The uplink connection (`ingest.mqtt`) must be MQTT v3.1.1 with a persistent session (v5
  sessions do not survive a Mosquitto 2.0.11 restart, RELIABILITY.md). Over v3.1.1 a broker
  that refuses a publish (an ACL without `write events/#`) still answers PUBACK and drops it:
  nothing could count it. Over v5 the PUBACK carries the reason (0x87 "not authorized"), so
  here a refused event is counted as dropped.
- Events must never slow storing or acking: on their own connection they share neither the
  uplink session's in-flight window nor its socket, and a broker that is slow to take events
  holds back only events (the publisher's queue bound then drops them).
- aiomqtt awaits one future per publish and ignores the PUBACK's reason code; measured here,
  20,000 publishes at once through it did not complete (it timed out, logging one warning per
  pending publish). At ingest's 17,000 uplinks/s an event may cost a few microseconds, so
  this module speaks the little MQTT it needs itself, as `ingest.frames` reads uplinks:
  CONNECT (clean start, a random client id suffix so that two ingesters never take each
  other's connection), PUBLISH at QoS 1 written in blocks, PUBACK with its reason code,
  PINGREQ/PINGRESP, DISCONNECT. Nothing here imports aiomqtt or paho.
"""

from __future__ import annotations

import array
import asyncio
import logging
import ssl
import struct
import sys
import time
import uuid
from collections.abc import Callable

from ingest.frames import Framer
from telemetry.settings import Settings

log = logging.getLogger(__name__)

CONNECT_TIMEOUT = 10.0  # s for the TCP connection and CONNACK
# s between reads of the broker's answers: 100 reads a second at most, ~170 events in flight
# at 17,000 a second, far below the broker's window (Mosquitto's max_inflight_messages).
READ_PAUSE = 0.01
# The broker's Receive Maximum when its CONNACK names none (MQTT 5, 3.1.2.11.3).
DEFAULT_RECEIVE_MAXIMUM = 65_535

_CONNACK, _PUBACK, _PINGRESP, _DISCONNECT = 0x20, 0x40, 0xD0, 0xE0
_PINGREQ = b"\xc0\x00"
_DISCONNECT_NORMAL = b"\xe0\x00"
_H = struct.Struct("!H")


class LinkError(Exception):
    """The event connection failed or the broker refused it; `str()` says why."""


def remaining_length(n: int) -> bytes:
    """MQTT's variable byte integer."""
    out = bytearray()
    while True:
        byte, n = n & 0x7F, n >> 7
        out.append(byte | (0x80 if n else 0))
        if not n:
            return bytes(out)


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


def publish_packet(topic: bytes, payload: bytes, mid: int) -> bytes:
    """PUBLISH, QoS 1, not retained, no properties (MQTT 5). Runs for every event."""
    n = len(topic) + len(payload) + 5  # topic length, packet id, properties length
    if 128 <= n < 16_384:  # the usual event: a two-byte remaining length, packed at once
        head = _PUBLISH2.pack(0x32, (n & 0x7F) | 0x80, n >> 7, len(topic))
    else:
        head = b"\x32" + remaining_length(n) + _H.pack(len(topic))
    return b"".join((head, topic, _H.pack(mid), b"\x00", payload))


_PUBLISH2 = struct.Struct("!BBBH")  # type and flags, remaining length (2 bytes), topic length


def parse_connack(body: bytes) -> tuple[int, int]:
    """(reason code, the broker's Receive Maximum) of a v5 CONNACK."""
    if len(body) < 2:
        raise LinkError("CONNACK too short")
    reason = body[1]
    receive_max = DEFAULT_RECEIVE_MAXIMUM
    pos, end = 2, len(body)
    if pos < end:  # properties: a length, then (id, value) pairs; only 0x21 matters here
        length, shift = 0, 0
        while pos < end:
            byte = body[pos]
            pos += 1
            length |= (byte & 0x7F) << shift
            shift += 7
            if byte < 0x80:
                break
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


class EventLink:
    """One connection: `send` writes events, `on_ack(ok, refused, reason)` reports PUBACKs."""

    def __init__(
        self,
        settings: Settings,
        on_ack: Callable[[int, int, int], None],
    ) -> None:
        self.settings = settings
        self.on_ack = on_ack
        # A suffix of our own: two ingesters with one client id would disconnect each other.
        self.client_id = f"{settings.mqtt_client_id[:40]}-events-{uuid.uuid4().hex[:8]}"
        self.window = DEFAULT_RECEIVE_MAXIMUM
        self.inflight: set[int] = set()
        self._next_mid = 1
        self._reader: asyncio.StreamReader | None = None
        self._writer: asyncio.StreamWriter | None = None
        self._last_out = 0.0
        self._last_in = 0.0
        self.room = asyncio.Event()  # set when a PUBACK frees a slot of the window
        self._pending = b""  # the start of a packet not yet complete

    @property
    def free(self) -> int:
        return self.window - len(self.inflight)

    async def connect(self) -> None:
        ep = self.settings.mqtt
        ctx = ssl.create_default_context() if ep.tls else None
        try:
            async with asyncio.timeout(CONNECT_TIMEOUT):
                reader, writer = await asyncio.open_connection(ep.host, ep.port, ssl=ctx)
                writer.write(
                    connect_packet(
                        self.client_id, self.settings.mqtt_keepalive, ep.username, ep.password
                    )
                )
                framer = Framer()
                packets: list[tuple[int, bytes]] = []
                while not packets:
                    data = await reader.read(65_536)
                    if not data:
                        raise LinkError("the broker closed the connection before CONNACK")
                    packets = framer.feed(data)
        except (OSError, TimeoutError) as exc:
            raise LinkError(f"cannot connect: {exc or type(exc).__name__}") from None
        header, body = packets[0]
        if header & 0xF0 != _CONNACK:
            writer.close()
            raise LinkError(f"expected CONNACK, got packet type {header >> 4}")
        reason, receive_max = parse_connack(body)
        if reason >= 0x80:
            writer.close()
            raise LinkError(f"the broker refused the connection (reason 0x{reason:02x})")
        self.window = max(1, min(receive_max, DEFAULT_RECEIVE_MAXIMUM - 1))
        self.inflight.clear()
        self._reader, self._writer = reader, writer
        self._last_in = self._last_out = time.monotonic()
        self._pending = b""
        for header, body in packets[1:]:
            self._handle(header, body)

    def send(self, events: list[tuple[bytes, bytes]]) -> None:
        """Write these (topic, payload) events, at most `free` of them, as one block."""
        writer = self._writer
        if writer is None:
            raise LinkError("not connected")
        inflight, mid = self.inflight, self._next_mid
        packets = []
        for topic, payload in events:
            while mid in inflight:  # ids still in flight from a wrap-around are skipped
                mid = mid % 65_535 + 1
            inflight.add(mid)
            packets.append(publish_packet(topic, payload, mid))
            mid = mid % 65_535 + 1
        self._next_mid = mid
        writer.write(b"".join(packets))
        self._last_out = time.monotonic()

    async def drain(self) -> None:
        if self._writer is not None:
            try:
                await self._writer.drain()
            except OSError as exc:
                raise LinkError(f"connection lost: {exc}") from None

    async def read(self) -> None:
        """Read PUBACKs and ping until the connection ends; raises LinkError when it does."""
        reader = self._reader
        if reader is None:
            raise LinkError("not connected")
        while True:
            try:
                data = await reader.read(65_536)
            except OSError as exc:
                raise LinkError(f"connection lost: {exc}") from None
            if not data:
                raise LinkError("the broker closed the connection")
            self._last_in = time.monotonic()
            self._feed(data)
            # PUBACKs come one per event, most in a segment of their own: read them in bulk
            # (measured: about 10 us of the ingester's CPU per event when read as they came).
            await asyncio.sleep(READ_PAUSE)

    async def keepalive(self) -> None:
        """Ping after half a keepalive without sending; a keepalive without an answer ends it."""
        keepalive = float(self.settings.mqtt_keepalive)
        while True:
            await asyncio.sleep(keepalive / 4)
            now = time.monotonic()
            if now - self._last_in > 1.5 * keepalive:
                raise LinkError(f"no answer from the broker for {now - self._last_in:.0f} s")
            if self._writer is not None and now - self._last_out >= keepalive / 2:
                self._writer.write(_PINGREQ)
                self._last_out = now

    def _feed(self, data: bytes) -> None:
        """Handle every complete packet in `data`: nearly all are 4-byte PUBACKs, one per event.

        Read in place, without a bytes object per packet (`ingest.frames.Framer` makes one),
        and reported to `on_ack` once per block rather than once per event.
        """
        if not self._pending and self._plain_pubacks(data):
            return
        inflight = self.inflight
        buf = self._pending + data if self._pending else data
        end, pos = len(buf), 0
        ok = refused = last_reason = 0
        while end - pos >= 2:
            header = buf[pos]
            length, i, shift = 0, pos + 1, 0
            while i < end:  # the remaining length: one byte for everything but big packets
                byte = buf[i]
                i += 1
                length |= (byte & 0x7F) << shift
                shift += 7
                if byte < 0x80:
                    break
            else:
                break  # the length itself is not complete yet
            if end - i < length:
                break
            if header & 0xF0 == _PUBACK and length >= 2:
                mid = (buf[i] << 8) | buf[i + 1]
                if mid in inflight:
                    inflight.discard(mid)
                    # 0x10 "no matching subscribers" is a success: the broker took it.
                    reason = buf[i + 2] if length > 2 else 0
                    if reason >= 0x80:
                        refused += 1
                        last_reason = reason
                    else:
                        ok += 1
            elif header & 0xF0 == _DISCONNECT:
                self._handle(header, bytes(buf[i : i + length]))
            pos = i + length
        self._pending = buf[pos:]
        if ok or refused:
            self.on_ack(ok, refused, last_reason)
            self.room.set()

    def _plain_pubacks(self, data: bytes) -> bool:
        """The usual block, only successful v5 PUBACKs (4 bytes, no reason byte): read in C."""
        k = len(data) >> 2
        if len(data) & 3 or data[0::4] != b"\x40" * k or data[1::4] != b"\x02" * k:
            return False
        ids = array.array("H")
        ids.frombytes(data)  # 16-bit words: (type, length), (packet id), ...
        ids = ids[1::2]
        if sys.byteorder == "little":
            ids.byteswap()  # packet ids are big-endian
        inflight = self.inflight
        before = len(inflight)
        inflight.difference_update(ids)
        if len(inflight) < before:
            self.on_ack(before - len(inflight), 0, 0)
            self.room.set()
        return True

    def _handle(self, header: int, body: bytes) -> None:
        kind = header & 0xF0
        if kind == _PUBACK and len(body) >= 2:
            mid = (body[0] << 8) | body[1]
            if mid in self.inflight:
                self.inflight.discard(mid)
                reason = body[2] if len(body) > 2 else 0
                # 0x10 "no matching subscribers" is a success: the broker took it.
                if reason >= 0x80:
                    self.on_ack(0, 1, reason)
                else:
                    self.on_ack(1, 0, 0)
                self.room.set()
        elif kind == _DISCONNECT:
            reason = body[0] if body else 0
            raise LinkError(f"the broker disconnected us (reason 0x{reason:02x})")

    async def close(self) -> None:
        """DISCONNECT (normal) and close the socket."""
        writer, self._writer, self._reader = self._writer, None, None
        if writer is None:
            return
        try:
            writer.write(_DISCONNECT_NORMAL)
            writer.close()
            async with asyncio.timeout(1.0):
                await writer.wait_closed()
        except (OSError, TimeoutError):
            pass
