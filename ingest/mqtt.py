"""The MQTT boundary: the only module that imports aiomqtt (and, through it, paho).

Delivery is at least once end to end:
- MQTT v3.1.1, `clean_session=False`, a fixed client id, QoS 1: the broker keeps our session
  and the uplinks queued for it while we are away (v5 sessions do not survive a Mosquitto 2.0.11
  restart, RELIABILITY.md fact 4).
- paho's manual ack is on, so a PUBACK goes out only when `ack()` is called, after the message's
  points are stored in InfluxDB or fsynced to the spool. aiomqtt 2.5 has no public API for it
  (empicano/aiomqtt#345, draft PR #346): we reach the private `Client._client` (paho) here and
  nowhere else; `tests/unit/test_ingest_mqtt.py` fails if an aiomqtt upgrade breaks this.
- `mid`s are per connection: an ack for a message of an earlier connection is dropped, the
  broker redelivers it and the idempotent write makes that harmless.

In-flight window and batch size go together: the broker sends at most `max_inflight_messages`
unacked QoS 1 messages (Mosquitto's default 20, `telemetry/servers.py` sets 10,000). The batcher
flushes at `ingest_batch_size` points (a message gives 1 or 2 points), so the window must be
at least the batch size or a batch never fills and only the flush timer writes. The window is
also our memory bound: the received list stays unlimited (a bounded one would have to discard
messages that then hold an in-flight slot until reconnect) and never holds more than the window.

Reading is done in blocks (measured: aiomqtt's per-message `Message` and queue hop, and paho's
three or four `recv` calls and `MQTTMessage` per packet, cost more than the whole decoding): the
socket's reader callback (`_BlockReader`) reads up to `READ_CALLS` blocks of `READ_BYTES` per
loop turn, `ingest.frames` splits them into packets, PUBLISH packets become `Incoming` records in
a plain list and every other packet goes to paho's own handlers; `_read` is woken once per turn.
The PUBACKs for a stored batch go out as one write. All of this is private API (aiomqtt#345
canary in tests/unit/test_ingest_mqtt.py).

The way out of the private API (decided; until then everything private stays in this module):
- aiomqtt is now only a connect/subscribe shell around our own reader, so the module rests on
  two libraries' internals (14 private names: aiomqtt's `Client._client`/`_disconnected`, and
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
  the block reader, so they are no longer the exit on their own.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
import struct
import time
from collections.abc import Callable, Sequence
from typing import Any, NamedTuple

import aiomqtt
import paho.mqtt.client as paho
from paho.mqtt.enums import MQTTErrorCode

from ingest.frames import PUBLISH, Framer, parse_publish
from sigfox.topics import subscription
from telemetry.errors import StartupError
from telemetry.settings import Settings

log = logging.getLogger(__name__)

RECONNECT_BASE = 0.5  # s, first retry after a lost connection (full jitter)
RECONNECT_CAP = 30.0  # s, a broker down for long is retried twice a minute
BARRIER_TIMEOUT = 5.0  # s, for the SUBACK that confirms our last acks at shutdown
# Messages handed downstream at once: one queue hop per chunk, not per message. At most half a
# batch (a message gives up to 2 points), so a batch stays under about twice the batch size.
CHUNK = 500
# Socket reads per loop turn at most, so that acks and writes still get their turns: up to
# READ_CALLS * READ_BYTES (about 6,000 uplinks) at once.
READ_CALLS = 16
READ_BYTES = 65_536


class Incoming(NamedTuple):
    """One received message, with what is needed to ack it on the same connection.

    A named tuple: one is made per message, and it is the cheapest record to make.
    """

    topic: str
    body: bytes
    mid: int
    qos: int
    generation: int
    received_ns: int


AckToken = tuple[int, int, int]  # mid, qos, generation


class MqttSource:
    """Keeps a persistent session, hands received messages downstream in chunks, acks on demand."""

    def __init__(
        self,
        settings: Settings,
        out: asyncio.Queue[list[Incoming] | None],
        on_received: Callable[[int], None] = lambda n: None,
    ) -> None:
        self.settings = settings
        self.on_received = on_received
        self.out = out
        self.topic = subscription(settings.mqtt_topic_prefix, settings.mqtt_share_group)
        self.chunk = max(1, min(CHUNK, settings.ingest_batch_size // 2))
        self.generation = 0
        self.connected = asyncio.Event()
        self.barrier_timeout = BARRIER_TIMEOUT  # shortened by the shutdown deadline
        self.acks_dropped = 0  # acks for messages of an earlier connection (redelivered)
        self._subscribed_once = False
        self._client: aiomqtt.Client | None = None
        self._intake = True
        self._reader: asyncio.Task[None] | None = None
        self._closed = asyncio.Event()
        self._received: list[Incoming] = []  # of the current connection, unread
        # Handed downstream, not acked yet (current connection): mid -> receipt time (ns), in
        # the order handed down, so the first is the oldest.
        self._unacked: dict[int, int] = {}
        self._wake: asyncio.Future[None] | None = None

    def _make_client(self) -> aiomqtt.Client:
        ep = self.settings.mqtt
        client = aiomqtt.Client(
            ep.host,
            ep.port,
            username=ep.username,
            password=ep.password,
            identifier=self.settings.mqtt_client_id,
            protocol=aiomqtt.ProtocolVersion.V311,
            clean_session=False,
            keepalive=self.settings.mqtt_keepalive,
            tls_params=aiomqtt.TLSParameters() if ep.tls else None,
            # never fed (_BlockReader takes every PUBLISH before on_message); unlimited so
            # it could not discard one if it were (RELIABILITY.md, fact 1)
            max_queued_incoming_messages=None,
        )
        # Before connecting: the session's queued messages arrive right after CONNACK and would
        # be auto-acked otherwise. Private API, empicano/aiomqtt#345.
        client._client.manual_ack_set(True)
        self._install_batched_reading(client)
        return client

    def _install_batched_reading(self, client: aiomqtt.Client) -> None:
        """Read the socket in blocks, split them with `ingest.frames`, keep PUBLISH packets.

        Replaces aiomqtt's reader callback once the socket is open (aiomqtt's reads one packet
        per loop turn through paho's `loop_read`, which takes 3-4 `recv` calls and builds an
        `MQTTMessage` with a `threading.Condition` per message) and paho's on_message path. A
        QoS 0/1 PUBLISH becomes an `Incoming` in our list; any other packet is handed to paho's
        `_packet_handle` as paho's `_packet_read` would. Errors end the connection as aiomqtt's
        callback does: by failing `client._disconnected`. Private API, aiomqtt#345 canary.
        """
        inner = client._client
        self._received = []
        self._unacked = {}  # an earlier connection's messages are redelivered, not acked
        loop = asyncio.get_running_loop()
        read = _BlockReader(client, self._received, self.generation, self._wake_reader)

        aiomqtt_open = inner.on_socket_open

        def on_socket_open(c: paho.Client, userdata: object, sock: Any) -> None:
            aiomqtt_open(c, userdata, sock)  # type: ignore[misc]  # registers its reader
            fd = sock.fileno()
            loop.call_soon_threadsafe(loop.add_reader, fd, read)  # runs after, replaces it

        inner.on_socket_open = on_socket_open

    def _check_granted(self, granted: Sequence[object]) -> None:
        """Raise when the SUBACK refused our subscription (0x80 or above).

        The broker's answer to this account and topic (an ACL, a policy). At start it is a
        setting to fix: stop with one line. Later (a reconnect) it may pass, as an auth plugin
        or a restarting broker comes back: retry with the backoff, loudly.
        """
        if not any(_refused(code) for code in granted):
            self._subscribed_once = True
            return
        msg = (
            f"the MQTT broker refused the subscription to {self.topic!r} for "
            f"{self.settings.mqtt.username or 'an anonymous client'!r}: check "
            "the account's read access to the uplink topics (its ACL)"
        )
        if not self._subscribed_once:
            raise StartupError(msg)
        log.error("%s; retrying", msg)
        raise aiomqtt.MqttError(msg)

    def _wake_reader(self) -> None:
        wake = self._wake
        if wake is not None and not wake.done():
            wake.set_result(None)

    async def run(self) -> None:
        """Connect, subscribe, read; reconnect with capped, jittered backoff until `close()`."""
        attempt = 0
        while not self._closed.is_set():
            self.generation += 1  # before connecting: the session's messages come first
            client = self._make_client()
            try:
                async with client:
                    self._check_granted(await client.subscribe(self.topic, qos=1))
                    self._client = client
                    self.connected.set()
                    attempt = 0
                    log.info(
                        "connected to MQTT %s:%d as %r, subscribed to %r",
                        self.settings.mqtt.host,
                        self.settings.mqtt.port,
                        self.settings.mqtt_client_id,
                        self.topic,
                    )
                    await self._serve(client)
            except aiomqtt.MqttError as exc:
                log.warning("MQTT connection lost or refused: %s", exc)
            finally:
                self._client = None
                self.connected.clear()
            if self._closed.is_set():
                break
            delay = random.uniform(0, min(RECONNECT_CAP, RECONNECT_BASE * 2**attempt))  # noqa: S311
            attempt += 1
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._closed.wait(), delay)

    async def _serve(self, client: aiomqtt.Client) -> None:
        """Read until the connection drops (raises) or `close()` (returns)."""
        self._reader = asyncio.create_task(self._read(client)) if self._intake else None
        closed = asyncio.create_task(self._closed.wait())
        watchdog = asyncio.create_task(self._watch_link(client))
        waiting: set[asyncio.Task[None] | asyncio.Task[bool]] = {closed, watchdog}
        if self._reader is not None:
            waiting.add(self._reader)
        try:
            done, _ = await asyncio.wait(waiting, return_when=asyncio.FIRST_COMPLETED)
            reader = self._reader
            if reader is not None and reader in done and not reader.cancelled():
                reader.result()  # re-raises the MqttError that ended it
            if watchdog in done:
                watchdog.result()  # the link died while the reader waited on downstream
            if not self._closed.is_set():
                await closed  # intake stopped: stay connected to send the last acks
            await self._barrier(client)
        finally:
            closed.cancel()
            watchdog.cancel()
            if self._reader is not None:
                self._reader.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await self._reader
                self._reader = None

    async def _watch_link(self, client: aiomqtt.Client) -> None:
        """Notice a dead (half-open) link within ~0.75 keepalive of silence, then drop it.

        paho alone pings after a whole keepalive K of silence and waits another K for the
        answer, and resets its silence clock whenever it has sent nothing for K: a stalled link
        under load was dropped only after ~2 K (measured 8-10 s for K = 5). Here: ping after
        K/4 of silence; if nothing at all arrives in the K/2 after that ping, the link is dead.
        Any byte received proves the link alive, so a busy link is never pinged. Private paho
        state (aiomqtt#345 canary in tests/unit/test_ingest_mqtt.py).
        """
        paho = client._client
        keepalive = float(self.settings.mqtt_keepalive)
        pinged_at = 0.0
        while True:
            await asyncio.sleep(min(0.25, keepalive / 16))
            if client._disconnected.done():
                # paho dropped the link; the reader may be blocked handing a chunk downstream
                # (back-pressure) and would only notice once that frees up.
                raise aiomqtt.MqttError("connection lost: the broker stopped answering")
            now = time.monotonic()
            last_in = paho._last_bytes_received
            if pinged_at and last_in < pinged_at and now - pinged_at >= keepalive / 2:
                paho._sock_close()  # so that aiomqtt's exit does not wait on a dead socket
                raise aiomqtt.MqttError(
                    f"connection lost: no answer from the broker for {now - last_in:.1f} s"
                )
            if last_in >= pinged_at:
                pinged_at = 0.0
            if not pinged_at and now - last_in >= keepalive / 4 and paho._ping_t == 0:
                paho._send_pingreq()
                pinged_at = now

    async def _barrier(self, client: aiomqtt.Client) -> None:
        """Wait until the broker has processed our last PUBACKs before we disconnect.

        Measured on Mosquitto 2.0.11: acks sent just before DISCONNECT were sometimes not
        applied and the messages came back. The broker handles a connection's packets in order,
        so a SUBACK for the same (idempotent) subscription proves the acks before it arrived.
        """
        with contextlib.suppress(aiomqtt.MqttError, TimeoutError):
            await asyncio.wait_for(client.subscribe(self.topic, qos=1), self.barrier_timeout)

    async def _read(self, client: aiomqtt.Client) -> None:
        received = self._received
        disconnected = client._disconnected
        loop = asyncio.get_running_loop()
        while True:
            if not received:
                wake = self._wake = loop.create_future()
                await asyncio.wait((wake, disconnected), return_when=asyncio.FIRST_COMPLETED)
                self._wake = None
            else:
                batch = received[: self.chunk]
                del received[: self.chunk]
                self.on_received(len(batch))
                self._unacked.update({m.mid: m.received_ns for m in batch if m.qos})
                await self.out.put(batch)
            if disconnected.done():  # as aiomqtt's message iterator
                msg = "Disconnected during message iteration"
                raise aiomqtt.MqttError(msg) from disconnected.exception()

    def stop_intake(self) -> None:
        """Stop handing messages downstream; unread ones stay unacked and come back later."""
        self._intake = False
        if self._reader is not None:
            self._reader.cancel()

    def close(self) -> None:
        """Disconnect (after the last acks were sent)."""
        self._closed.set()

    def ack(self, tokens: list[AckToken]) -> int:
        """PUBACK messages of the current connection, in order; returns how many were sent.

        All in one queued write: paho's `ack()` queues one packet per PUBACK (a dict, a deque
        append and a write registration each). A PUBACK is all paho's `ack` sends in manual-ack
        mode at QoS 1, and it keeps no state for it. Private API, aiomqtt#345.
        """
        client = self._client
        unacked = self._unacked
        mids = []
        for mid, qos, generation in tokens:
            if client is None or generation != self.generation or qos == 0:
                self.acks_dropped += qos > 0
                continue
            mids.append(mid)
            unacked.pop(mid, None)
        if client is not None and mids:
            packet = b"".join([_PUBACK.pack(paho.PUBACK, 2, mid) for mid in mids])
            client._client._packet_queue(paho.PUBACK, packet, 0, 1)
        return len(mids)

    def oldest_unacked(self) -> float:
        """Seconds since the oldest message still unacked was received (0 when none is).

        Messages read but not handed downstream yet, and those handed down and not acked:
        waiting for their batch, held until InfluxDB can be read, or stuck behind a full
        spool. Called from the metrics thread while the event loop changes both structures.
        """
        oldest = [m.received_ns for m in self._received[:1]]  # a slice: one atomic read
        for _ in range(3):
            try:
                first = next(iter(self._unacked.values()), None)
            except RuntimeError:  # resized by the event loop between iter() and next()
                continue
            if first is not None:
                oldest.append(first)
            break
        return (time.time_ns() - min(oldest)) / 1e9 if oldest else 0.0


class _BlockReader:
    """The socket's reader callback: every available block read, split, dispatched.

    A QoS 0/1 PUBLISH becomes an `Incoming` in `received`; any other packet (CONNACK, SUBACK,
    PINGRESP, a QoS 2 PUBLISH) goes to paho's `_packet_handle`, set up as paho's `_packet_read`
    would. Errors end the connection as aiomqtt's own callback does: by failing
    `client._disconnected`. Private API, aiomqtt#345 canary.
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


def _refused(code: object) -> bool:
    """A SUBACK return code of 0x80 (MQTT 3.1.1: failure) or above."""
    value = getattr(code, "value", code)
    return isinstance(value, int) and value >= 0x80


_PUBACK = struct.Struct("!BBH")  # type, remaining length 2, packet id


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
