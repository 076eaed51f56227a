"""Events out of the ingester (DESIGN section 9): a publisher that never blocks.

    Storer ─emit()─► bounded queue ─► EventPublisher.run ─► EventLink (MQTT v5, QoS 1)
    status watcher ─emit()─┘           (one task)              └─► PUBACK: published / refused

`emit` only appends to a list: the stored batch is acked before or whatever happens to its
events. A full queue (the broker slow or away), a refused publish (PUBACK reason >= 0x80, e.g.
an ACL without `write events/#`) or an event in flight when the connection drops: the event
is dropped and `telemetry_ingest_events_dropped_total` counts it. Events are not retained and
not kept over a restart: they say what happens now; InfluxDB keeps what happened.

What they say: `ingest.eventbodies`.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time

from ingest.eventbodies import rejected_event
from ingest.eventlink import EventLink
from ingest.eventpackets import LinkError, publish_parts
from ingest.metrics import Metrics
from telemetry.backoff import backoff
from telemetry.settings import Settings

log = logging.getLogger(__name__)

# Events waiting for the connection at most: about a second of ingest at full speed, so a
# broker pausing for a moment loses nothing, and a few MB of memory at worst.
QUEUE_EVENTS = 20_000
# Events written in one block at most, so that a long queue leaves the loop other turns: as
# many as a stored batch makes (5,000 points, 2 per uplink), so that a batch is one write.
# Not more: joining 5,000 (1.2 MB) measured 1.2 us an event, 2,500 0.02 us (page faults).
BLOCK_EVENTS = 2_500


class EventPublisher:
    """A bounded queue of events and the task that publishes them; `emit` never blocks."""

    def __init__(self, settings: Settings, metrics: Metrics, capacity: int = QUEUE_EVENTS):
        self.settings = settings
        self.prefix = settings.mqtt_events_prefix
        self.metrics = metrics
        self.capacity = capacity
        # Events as flat (head, tail) pairs of their PUBLISH (`ingest.eventpackets`): bytes
        # only, no object per event that the garbage collector would have to walk.
        self._queue: list[bytes] = []
        self._wake = asyncio.Event()
        self._closing = False
        self._refused_logged = 0.0
        self.link: EventLink | None = None
        self._task: asyncio.Task[None] | None = None
        self.connected = asyncio.Event()

    def emit(self, topic: str, payload: bytes) -> None:
        """Queue one event; dropped (and counted) when the queue is full."""
        self.emit_many(list(publish_parts(topic.encode(), payload)))

    def emit_many(self, parts: list[bytes]) -> None:
        """Queue a stored batch's events, flat (head, tail) pairs of `up_parts` or
        `publish_parts`; those past the bound are dropped and counted."""
        room = max(0, self.capacity - (len(self._queue) >> 1))
        if len(parts) >> 1 > room:
            self.metrics.events_dropped.inc((len(parts) >> 1) - room)
            parts = parts[: 2 * room]
        if parts:
            self._queue += parts
            self._wake.set()

    @property
    def queued(self) -> int:
        """Events waiting for the connection."""
        return len(self._queue) >> 1

    def on_write_refused(self, detail: str, received_ns: int) -> None:
        """A line InfluxDB refused, kept as a `write_refused` reject: its event."""
        self.emit(*rejected_event(self.prefix, "write_refused", "", None, received_ns, detail))

    def _on_ack(self, ok: int, refused: int, reason: int) -> None:
        if ok:
            self.metrics.events_published.inc(ok)
        if refused:
            self.metrics.events_dropped.inc(refused)
            now = time.monotonic()
            if now - self._refused_logged > 60:  # one line a minute, not one per event
                self._refused_logged = now
                log.warning(
                    "the MQTT broker refuses our events (PUBACK reason 0x%02x): check the "
                    "account's write access to %r; events are dropped, uplinks still stored",
                    reason,
                    f"{self.prefix}/#",
                )

    async def run(self) -> None:
        """Connect, publish what is queued, reconnect with capped jittered backoff; forever."""
        self._task = asyncio.current_task()
        attempt = 0
        while not self._closing:
            link = EventLink(self.settings, self._on_ack)
            try:
                await link.connect()
            except LinkError as exc:
                log.warning("events: MQTT connection failed: %s", exc)
            else:
                attempt = 0
                self.link = link
                self.connected.set()
                log.info("events: publishing under %r as %r", self.prefix, link.client_id)
                try:
                    await self._serve(link)
                except LinkError as exc:
                    log.warning("events: MQTT connection lost: %s", exc)
                except Exception:  # a bug here must never stop the ingester
                    log.exception("events: internal error; reconnecting")
                finally:
                    self.connected.clear()
                    self.link = None
                    lost = len(link.inflight)  # unknown fate: counted as dropped
                    if lost:
                        self.metrics.events_dropped.inc(lost)
                        link.inflight.clear()
                    await link.close()
            if self._closing:
                break
            delay = backoff(attempt)  # 0.5 s first, 30 s at most: telemetry/backoff.py
            attempt += 1
            self._wake.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wait_closing(), delay)

    async def _wait_closing(self) -> None:
        while not self._closing:
            self._wake.clear()
            await self._wake.wait()

    async def _serve(self, link: EventLink) -> None:
        reader = asyncio.create_task(link.read())
        pinger = asyncio.create_task(link.keepalive())
        try:
            while True:
                if reader.done() or pinger.done():
                    (reader if reader.done() else pinger).result()  # raises its LinkError
                if self._closing and not self._queue and not link.inflight:
                    return
                if self._queue and link.free > 0:
                    n = 2 * min(self.queued, link.free, BLOCK_EVENTS)
                    block = self._queue[:n]
                    del self._queue[:n]
                    link.send(block)
                    await link.drain()
                    await asyncio.sleep(0)  # one block per loop turn
                    continue
                # Nothing to send, or the broker's window is full (then, and when closing,
                # wait for a PUBACK). No await since the checks above: no lost wake-up.
                waiter = link.room if self._queue or self._closing else self._wake
                waiter.clear()
                wait = asyncio.ensure_future(waiter.wait())
                await asyncio.wait((wait, reader, pinger), return_when=asyncio.FIRST_COMPLETED)
                wait.cancel()
        finally:
            for task in (reader, pinger):
                task.cancel()
            for task in (reader, pinger):
                with contextlib.suppress(asyncio.CancelledError, LinkError):
                    await task

    async def close(self, budget: float) -> None:
        """Publish what is queued for at most `budget` s (PUBACKs included), then stop."""
        self._closing = True
        self._wake.set()
        deadline = time.monotonic() + budget
        while time.monotonic() < deadline:
            link = self.link
            if not self._queue and (link is None or not link.inflight):
                break
            if link is None and not self.connected.is_set():
                break  # not connected: nothing will go out
            await asyncio.sleep(0.02)
        left = self.queued
        if left:
            self.metrics.events_dropped.inc(left)
            self._queue.clear()
        if self._task is not None:
            self._task.cancel()
