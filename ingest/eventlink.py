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
import sys
import time
import uuid
from collections.abc import Callable

from ingest.eventpackets import (
    DEFAULT_RECEIVE_MAXIMUM,
    MIDS,
    LinkError,
    connect_packet,
    disconnected,
    parse_connack,
    read_varint,
)
from ingest.frames import Framer
from telemetry.settings import Settings

log = logging.getLogger(__name__)

CONNECT_TIMEOUT = 10.0  # s for the TCP connection and CONNACK
# s between reads of the broker's answers: 100 reads a second at most, ~170 events in flight
# at 17,000 a second, far below the broker's window (Mosquitto's max_inflight_messages).
READ_PAUSE = 0.01

_CONNACK, _PUBACK, _PINGRESP, _DISCONNECT = 0x20, 0x40, 0xD0, 0xE0
_PINGREQ = b"\xc0\x00"
_DISCONNECT_NORMAL = b"\xe0\x00"


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
        for header, body in packets[1:]:  # nothing was sent yet: only a DISCONNECT matters
            if header & 0xF0 == _DISCONNECT:
                raise disconnected(body)

    def send(self, parts: list[bytes]) -> None:
        """Write events, flat (head, tail) pairs of `publish_parts`, at most `free`, in one write.

        Packet ids go between the halves by slice assignment and one join, all in C: no
        Python step per event (each used to cost a packet built and a set probe in Python).
        """
        writer = self._writer
        if writer is None:
            raise LinkError("not connected")
        ids = self._take_ids(len(parts) >> 1)
        block = [b""] * (3 * len(ids))
        block[0::3] = parts[0::2]
        block[1::3] = map(MIDS.__getitem__, ids)
        block[2::3] = parts[1::2]
        writer.write(b"".join(block))
        self._last_out = time.monotonic()

    def _take_ids(self, n: int) -> list[int]:
        """`n` packet ids not in flight, now in flight: as a rule the next `n` in order."""
        inflight, first = self.inflight, self._next_mid
        ids = list(range(first, min(first + n, 65_536)))
        ids += range(1, n - len(ids) + 1)  # wrapped around
        if not inflight.isdisjoint(ids):  # an id of 65,535 publishes ago is still unacked
            ids, mid = [], first
            while len(ids) < n:  # ends: `n` is at most `free`, the ids not in flight
                if mid not in inflight:
                    ids.append(mid)
                mid = mid % 65_535 + 1
        inflight.update(ids)
        if ids:
            self._next_mid = ids[-1] % 65_535 + 1
        return ids

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
        """Handle every complete packet in `data`: nearly all are PUBACKs, one per event.

        The usual read is a run of successful PUBACKs of one size, read in C (`_bulk`);
        anything else is walked packet by packet, in place, reported to `on_ack` once.
        """
        buf = self._pending + data if self._pending else data
        rest = self._bulk(buf)
        if rest is not None:
            self._pending = rest
            return
        inflight = self.inflight
        end, pos = len(buf), 0
        ok = refused = last_reason = 0
        while end - pos >= 2:
            header = buf[pos]
            length, i = read_varint(buf, pos + 1)  # the remaining length
            if i < 0 or end - i < length:
                break  # the rest is not complete yet
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
                raise disconnected(buf[i : i + length])
            pos = i + length
        self._pending = buf[pos:]
        if ok or refused:
            self.on_ack(ok, refused, last_reason)
            self.room.set()

    def _bulk(self, buf: bytes) -> bytes | None:
        """Successful PUBACKs of one size, handled in C; what follows them, or None if not so.

        Mosquitto answers an MQTT 5 PUBLISH with `40 02 <id>` when someone subscribes to its
        topic and `40 03 <id> 10` ("no matching subscribers", a success) when no one does.
        """
        if len(buf) < 4 or buf[0] != 0x40 or buf[1] not in {2, 3}:
            return None
        size = buf[1] + 2
        k = len(buf) // size
        whole = buf[: k * size]
        if whole[0::size] != b"\x40" * k or whole[1::size] != bytes((size - 2,)) * k:
            return None
        if size == 5:
            if max(whole[4::5]) >= 0x80:
                return None  # a refusal among them: counted packet by packet
            words = bytearray(4 * k)  # as 4-byte PUBACKs: (type, length), (packet id)
            words[2::4] = whole[2::5]
            words[3::4] = whole[3::5]
            whole = bytes(words)
        ids = array.array("H")
        ids.frombytes(whole)
        ids = ids[1::2]
        if sys.byteorder == "little":
            ids.byteswap()  # packet ids are big-endian
        inflight = self.inflight
        before = len(inflight)
        inflight.difference_update(ids)
        if len(inflight) < before:
            self.on_ack(before - len(inflight), 0, 0)
            self.room.set()
        return buf[k * size :]

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
