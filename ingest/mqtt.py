"""The receive stage's MQTT session: connect, subscribe, hand messages downstream, ack on demand.

Delivery is at least once end to end:
- MQTT v3.1.1, `clean_session=False`, a fixed client id, QoS 1: the broker keeps our session
  and the uplinks queued for it while we are away (v5 sessions do not survive a Mosquitto 2.0.11
  restart, RELIABILITY.md fact 4).
- A PUBACK goes out only when `ack()` is called, after the message's points are stored in
  InfluxDB or fsynced to the spool (manual acks: private aiomqtt/paho API, contained in
  `ingest.mqttshim`, whose docstring says why and which way out the project takes).
- `mid`s are per connection: an ack for a message of an earlier connection is dropped, the
  broker redelivers it and the idempotent write makes that harmless.

In-flight window and batch size go together: the broker sends at most `max_inflight_messages`
unacked QoS 1 messages (Mosquitto's default 20, `telemetry/servers.py` sets 10,000). The batcher
flushes at `ingest_batch_size` points (a message gives 1 or 2 points), so the window must be
at least the batch size or a batch never fills and only the flush timer writes. The window is
also our memory bound: the received list stays unlimited (a bounded one would have to discard
messages that then hold an in-flight slot until reconnect) and never holds more than the window.

In the ingester, this module and `ingest.mqttshim` are the only ones that import aiomqtt (and,
through it, paho); this one uses only its public names (`Client`, `MqttError`).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable, Sequence

import aiomqtt

from ingest import mqttshim
from ingest.received import AckToken, Incoming
from sigfox.topics import subscription
from telemetry.backoff import backoff
from telemetry.errors import StartupError
from telemetry.settings import Settings

# The records of this stage are re-exported, for callers that import them with the source.
__all__ = ["AckToken", "Incoming", "MqttSource"]

log = logging.getLogger(__name__)

BARRIER_TIMEOUT = 5.0  # s, for the SUBACK that confirms our last acks at shutdown
# Messages handed downstream at once: one queue hop per chunk, not per message. At most half a
# batch (a message gives up to 2 points), so a batch stays under about twice the batch size.
CHUNK = 500


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
        self._connected_at = 0.0  # monotonic time of the current connection's subscription
        self._received: list[Incoming] = []  # of the current connection, unread
        # Handed downstream, not acked yet (current connection): mid -> receipt time (ns), in
        # the order handed down, so the first is the oldest.
        self._unacked: dict[int, int] = {}
        self._wake: asyncio.Future[None] | None = None

    def _make_client(self) -> aiomqtt.Client:
        self._received = []
        self._unacked = {}  # an earlier connection's messages are redelivered, not acked
        return mqttshim.make_client(
            self.settings, self._received, self.generation, self._wake_reader
        )

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
                    self._connected_at = time.monotonic()
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
            delay = backoff(attempt)  # 0.5 s first, 30 s at most: telemetry/backoff.py
            attempt += 1
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._closed.wait(), delay)

    async def _serve(self, client: aiomqtt.Client) -> None:
        """Read until the connection drops (raises) or `close()` (returns)."""
        self._reader = asyncio.create_task(self._read(client)) if self._intake else None
        closed = asyncio.create_task(self._closed.wait())
        watchdog = asyncio.create_task(
            mqttshim.watch_link(client, float(self.settings.mqtt_keepalive))
        )
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
        disconnected = mqttshim.disconnected(client)
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

        All in one queued write (`mqttshim.queue_pubacks`: paho would queue one per PUBACK).
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
            mqttshim.queue_pubacks(client, mids)
        return len(mids)

    def connected_for(self) -> float:
        """Seconds since the current connection subscribed; 0 while there is none."""
        return time.monotonic() - self._connected_at if self.connected.is_set() else 0.0

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


def _refused(code: object) -> bool:
    """A SUBACK return code of 0x80 (MQTT 3.1.1: failure) or above."""
    value = getattr(code, "value", code)
    return isinstance(value, int) and value >= 0x80
