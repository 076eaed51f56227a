"""The aiomqtt and paho internals `ingest.mqtt` relies on: every one of them here, none elsewhere.

Why private API at all:
- Manual acks: paho's manual ack is on, so a PUBACK goes out only when `MqttSource.ack()` is
  called, after the message's points are stored in InfluxDB or fsynced to the spool. aiomqtt 2.5
  has no public API for it (empicano/aiomqtt#345, draft PR #346): we reach the private
  `Client._client` (paho). The PUBACKs for a stored batch go out as one write (`queue_pubacks`).
- Reading in blocks (measured: aiomqtt's per-message `Message` and queue hop, and paho's three
  or four `recv` calls and `MQTTMessage` per packet, cost more than the whole decoding): the
  socket's reader callback (`_BlockReader`) reads up to `READ_CALLS` blocks of `READ_BYTES` per
  loop turn, `ingest.frames` splits them into packets, PUBLISH packets become `Incoming` records
  in a plain list and every other packet goes to paho's own handlers; the source's reader is
  woken once per turn.
- The link watchdog (`watch_link`) reads paho's keepalive state to notice a half-open link sooner.
`tests/unit/test_ingest_mqtt.py` is the canary: it fails if an aiomqtt or paho upgrade breaks
any of this.

The way out of the private API (decided; until then everything private stays in this module):
- aiomqtt is now only a connect/subscribe shell around our own reader, so the receive stage rests
  on two libraries' internals (14 private names: aiomqtt's `Client._client`/`_disconnected`, and
  paho's `_in_packet`, `_sock`, `_sock_recv`, `_sock_close`, `_packet_read`, `_packet_handle`,
  `_packet_queue`, `_loop_rc_handle`, `_last_bytes_received`, `_ping_t`, `_send_pingreq`,
  `_InPacket`). The pin `aiomqtt>=2.5.1,<2.6` and the canary hold that in place.
- The exit is an own small MQTT 3.1.1 client on `ingest.frames` (which already parses every
  packet we read) over `asyncio.open_connection`: CONNECT with `clean_session=False`,
  SUBSCRIBE, PUBACK in blocks, PINGREQ and DISCONNECT encoders, TLS through `ssl`. The
  ingester's events connection (`ingest.eventlink`) already speaks MQTT that way, so the
  encoders and their golden packet tests have a home. It is taken the first time the canary
  fails on an upgrade we need, or when reconnect or TLS needs a change here, whichever comes
  first. aiomqtt 3's public manual acks (draft PR #346) would remove the private ack but not
  the block reader, so they are no longer the exit on their own. Taking it replaces this module;
  `ingest.mqtt` keeps its session, reconnect and ack accounting.
"""

from __future__ import annotations

import asyncio
import struct
import time
from collections.abc import Callable
from typing import Any

import aiomqtt
import paho.mqtt.client as paho
from paho.mqtt.enums import MQTTErrorCode

from ingest.frames import PUBLISH, Framer, parse_publish
from ingest.received import Incoming
from telemetry.mqttclient import mqtt_client
from telemetry.settings import Settings

# Socket reads per loop turn at most, so that acks and writes still get their turns: up to
# READ_CALLS * READ_BYTES (about 6,000 uplinks) at once.
READ_CALLS = 16
READ_BYTES = 65_536


def make_client(
    settings: Settings, received: list[Incoming], generation: int, wake: Callable[[], None]
) -> aiomqtt.Client:
    """An aiomqtt client with manual acks whose PUBLISH packets land in `received`."""
    client = mqtt_client(
        settings,
        settings.mqtt_client_id,
        clean_session=False,
        # never fed (_BlockReader takes every PUBLISH before on_message); unlimited so
        # it could not discard one if it were (RELIABILITY.md, fact 1)
        max_queued_incoming_messages=None,
    )
    # Before connecting: the session's queued messages arrive right after CONNACK and would
    # be auto-acked otherwise. Private API, empicano/aiomqtt#345.
    client._client.manual_ack_set(True)
    _install_block_reader(client, _BlockReader(client, received, generation, wake))
    return client


def _install_block_reader(client: aiomqtt.Client, read: _BlockReader) -> None:
    """Read the socket in blocks, split them with `ingest.frames`, keep PUBLISH packets.

    Replaces aiomqtt's reader callback once the socket is open (aiomqtt's reads one packet
    per loop turn through paho's `loop_read`, which takes 3-4 `recv` calls and builds an
    `MQTTMessage` with a `threading.Condition` per message) and paho's on_message path. A
    QoS 0/1 PUBLISH becomes an `Incoming` in our list; any other packet is handed to paho's
    `_packet_handle` as paho's `_packet_read` would. Errors end the connection as aiomqtt's
    callback does: by failing `client._disconnected`.
    """
    inner = client._client
    loop = asyncio.get_running_loop()
    aiomqtt_open = inner.on_socket_open

    def on_socket_open(c: paho.Client, userdata: object, sock: Any) -> None:
        aiomqtt_open(c, userdata, sock)  # type: ignore[misc]  # registers its reader
        fd = sock.fileno()
        loop.call_soon_threadsafe(loop.add_reader, fd, read)  # runs after, replaces it

    inner.on_socket_open = on_socket_open


def disconnected(client: aiomqtt.Client) -> asyncio.Future[None]:
    """The future aiomqtt fails when the connection ends (its message iterator waits on it)."""
    return client._disconnected


_PUBACK = struct.Struct("!BBH")  # type, remaining length 2, packet id


def queue_pubacks(client: aiomqtt.Client, mids: list[int]) -> None:
    """PUBACK `mids` in one queued write.

    paho's `ack()` queues one packet per PUBACK (a dict, a deque append and a write
    registration each). A PUBACK is all paho's `ack` sends in manual-ack mode at QoS 1, and it
    keeps no state for it.
    """
    packet = b"".join([_PUBACK.pack(paho.PUBACK, 2, mid) for mid in mids])
    client._client._packet_queue(paho.PUBACK, packet, 0, 1)


async def watch_link(client: aiomqtt.Client, keepalive: float) -> None:
    """Notice a dead (half-open) link within ~0.75 keepalive of silence, then drop it.

    paho alone pings after a whole keepalive K of silence and waits another K for the
    answer, and resets its silence clock whenever it has sent nothing for K: a stalled link
    under load was dropped only after ~2 K (measured 8-10 s for K = 5). Here: ping after
    K/4 of silence; if nothing at all arrives in the K/2 after that ping, the link is dead.
    Any byte received proves the link alive, so a busy link is never pinged.
    """
    inner = client._client
    pinged_at = 0.0
    while True:
        await asyncio.sleep(min(0.25, keepalive / 16))
        if client._disconnected.done():
            # paho dropped the link; the reader may be blocked handing a chunk downstream
            # (back-pressure) and would only notice once that frees up.
            raise aiomqtt.MqttError("connection lost: the broker stopped answering")
        now = time.monotonic()
        last_in = inner._last_bytes_received
        if pinged_at and last_in < pinged_at and now - pinged_at >= keepalive / 2:
            inner._sock_close()  # so that aiomqtt's exit does not wait on a dead socket
            raise aiomqtt.MqttError(
                f"connection lost: no answer from the broker for {now - last_in:.1f} s"
            )
        if last_in >= pinged_at:
            pinged_at = 0.0
        if not pinged_at and now - last_in >= keepalive / 4 and inner._ping_t == 0:
            inner._send_pingreq()
            pinged_at = now


class _BlockReader:
    """The socket's reader callback: every available block read, split, dispatched.

    A QoS 0/1 PUBLISH becomes an `Incoming` in `received`; any other packet (CONNACK, SUBACK,
    PINGRESP, a QoS 2 PUBLISH) goes to paho's `_packet_handle`, set up as paho's `_packet_read`
    would. Errors end the connection as aiomqtt's own callback does: by failing
    `client._disconnected`.
    """

    def __init__(
        self,
        client: aiomqtt.Client,
        received: list[Incoming],
        generation: int,
        wake: Callable[[], None],
    ) -> None:
        self.client = client
        self.inner = client._client
        self.received = received
        self.generation = generation
        self.wake = wake
        self.framer = Framer()

    def __call__(self) -> None:
        before = len(self.received)
        inner = self.inner
        try:
            rc = self._pump()
            if rc > 0:
                # as loop_read: closes, calls on_disconnect
                inner._loop_rc_handle(MQTTErrorCode(rc))
        except Exception as exc:  # as aiomqtt: a broken link (FrameError included)
            inner._sock_close()
            if not self.client._disconnected.done():
                self.client._disconnected.set_exception(exc)
        if len(self.received) > before:
            self.wake()

    def _pump(self) -> int:
        """Read and dispatch what the socket has; a paho error code (0: none)."""
        inner = self.inner
        for _ in range(READ_CALLS):
            if inner._sock is None:
                return 0
            if inner._in_packet["command"]:  # a packet paho began before we took over
                rc = inner._packet_read()
                if rc:
                    return max(rc, 0)  # MQTT_ERR_AGAIN is negative: wait for more
                continue
            try:
                data = inner._sock_recv(READ_BYTES)
            except BlockingIOError:
                return 0
            except OSError:
                data = b""
            if not data:  # closed by the broker, or a socket error
                return paho.MQTT_ERR_CONN_LOST
            inner._last_bytes_received = time.monotonic()  # paho's keepalive and our watchdog
            failed = self._dispatch(data)
            if failed:
                return failed
        pending = getattr(inner._sock, "pending", None)  # TLS: bytes decrypted but unread
        if pending is not None and pending():
            asyncio.get_running_loop().call_soon(self)
        return 0

    def _dispatch(self, data: bytes) -> int:
        now = time.time_ns()
        append, generation = self.received.append, self.generation
        for header, body in self.framer.feed(data):
            if header & 0xF0 == PUBLISH and header & 0x06 != 0x04:  # QoS 0/1
                topic, payload, mid, qos = parse_publish(header, body)
                append(Incoming(topic, payload, mid, qos, generation, now))
                continue
            inner = self.inner
            packet = _idle_packet()  # then filled in as paho's `_packet_read` leaves it
            packet["command"] = header
            packet["have_remaining"] = 1
            packet["remaining_length"] = len(body)
            packet["packet"] = bytearray(body)
            inner._in_packet = packet
            try:
                handled = inner._packet_handle()
            finally:
                inner._in_packet = _idle_packet()  # as paho resets it after a packet
            if handled:
                return int(handled)
        return 0


def _idle_packet() -> paho._InPacket:
    """paho's `_in_packet` between packets, as its `_packet_read` leaves it."""
    return {
        "command": 0,
        "have_remaining": 0,
        "remaining_count": [],
        "remaining_mult": 1,
        "remaining_length": 0,
        "packet": bytearray(b""),
        "to_process": 0,
        "pos": 0,
    }
