"""The ingest stages: process (validate, rate-limit, merge, encode), batch, store and ack.

    MqttSource ─list[Incoming]─► Processor ─Chunk─► Batcher ─Batch─► Storer ─acks─► MqttSource
                 (bounded)                (bounded)        (bounded)   │
                                                                      └─► InfluxDB or Spool

Every queue is bounded, so a slow InfluxDB stops the reading and leaves uplinks in the broker.
Work is done a chunk at a time: one queue hop per chunk, plain functions per message.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass, field

from catalogue import Catalogue
from influx.lineprotocol import LineProtocolError
from ingest.events import rejected_event, up_event
from ingest.gaps import GapCounter
from ingest.merge import UNKNOWN_STATION, Copy, Key, Merger
from ingest.metrics import Metrics
from ingest.mqtt import AckToken, Incoming
from ingest.points import PointKey, accepted_points, rejected_point
from ingest.ratelimit import RateLimiter
from ingest.sink import NotStored, Sink
from ingest.validate import Accepted, Rejection, validate
from telemetry.settings import Settings

log = logging.getLogger(__name__)

# What is stored for some transmissions; None when InfluxDB could not be read.
Lookup = Callable[[Iterable[Key]], Awaitable[dict[Key, tuple[str, Copy]] | None]]
# Stands for a message held back (not a rejection: it is neither stored nor acked yet).
HELD = Rejection("held", "waiting until InfluxDB can be read")
DEFERRED_RETRY = 1.0  # s between retries of held messages when no new message comes


@dataclass(slots=True)
class Chunk:
    """The points of some messages and the acks they earn once stored."""

    lines: list[tuple[PointKey, str]]
    acks: list[AckToken]
    accepted: int = 0  # messages among `acks` that were accepted (not rejected)
    events: list[tuple[str, bytes]] = field(default_factory=list)  # published once stored


@dataclass(slots=True)
class Batch:
    """Points keyed by identity (a later line for one point replaces the earlier one)."""

    points: dict[PointKey, str] = field(default_factory=dict)
    acks: list[AckToken] = field(default_factory=list)
    started: float = 0.0
    accepted: int = 0
    events: list[tuple[str, bytes]] = field(default_factory=list)

    def add(self, chunk: Chunk) -> None:
        for key, line in chunk.lines:
            self.points.pop(key, None)  # keep write order = arrival order of the newest state
            self.points[key] = line
        self.acks.extend(chunk.acks)
        self.accepted += chunk.accepted
        self.events += chunk.events

    def __bool__(self) -> bool:
        return bool(self.points or self.acks)


class Processor:
    """Messages to points. Pure per message; awaits only the stored-copy lookup per chunk."""

    def __init__(
        self,
        settings: Settings,
        catalogue: Catalogue,
        metrics: Metrics,
        lookup: Lookup | None = None,
        *,
        clock: Callable[[], float] = time.time,
        known_after: int | None = None,
    ) -> None:
        self.catalogue = catalogue
        self.prefix = settings.mqtt_topic_prefix
        self.tolerance = settings.ingest_future_tolerance
        self.metrics = metrics
        self.lookup = lookup
        self.clock = clock
        self.merger = Merger()
        self.limiter = RateLimiter(settings.ingest_rate_burst, settings.ingest_rate_per_hour)
        self.gaps = GapCounter()
        # The cache knows every transmission stamped after `known_after` (one ingester): the
        # newest time stored when we started, or, when that is unknown, our start plus the
        # future tolerance (an earlier process may have written up to its clock plus that).
        # Only a measured `known_after` says which transmissions are surely stored already.
        self.known_after_measured = known_after is not None
        if known_after is None:
            known_after = int(clock()) + settings.ingest_future_tolerance
        self.known_after = known_after
        # In a share group other ingesters write copies too: always look up on a miss.
        self.always_lookup = settings.mqtt_share_group is not None
        self._last_reject_ns = 0
        self._deferred: list[Incoming] = []
        # DESIGN section 9: the events of what is stored; None: none are made.
        self.events_prefix = settings.mqtt_events_prefix if settings.ingest_events else None
        self._events: list[tuple[str, bytes]] = []

    async def process(self, messages: list[Incoming]) -> Chunk:
        # Messages held back because what is stored for them could not be read: retried first.
        if self._deferred:
            messages, self._deferred = self._deferred + messages, []
        now = self.clock()
        results: list[Accepted | Rejection] = [
            validate(
                m.topic,
                m.body,
                catalogue=self.catalogue,
                prefix=self.prefix,
                now=now,
                future_tolerance=self.tolerance,
            )
            for m in messages
        ]
        if self.lookup is not None:
            merger, always = self.merger, self.always_lookup
            # A transmission not in the cache is looked up when it may be stored already: at or
            # before the newest time known stored at start, or evicted from the cache since.
            horizon = max(self.known_after, merger.evicted_max_time)
            misses = {
                k
                for r in results
                if isinstance(r, Accepted)
                and (k := (r.device, r.uplink.seqNumber, r.uplink.time)) not in merger
                and (always or k[2] <= horizon)
            }
            found = await self.lookup(misses) if misses else {}
            if found is None:
                # InfluxDB cannot be read. Transmissions older than the newest point stored when
                # we started were heard before (a copy redelivered after a restart): merging
                # them with the cache alone could lower their `stations`, so hold them, unacked
                # (the broker's in-flight window bounds how many), until InfluxDB answers.
                # Everything else goes on, spooled if need be. When InfluxDB was unreachable at
                # start that point is unknown, and copies are merged with the cache only.
                held = (
                    self._hold(messages, results, {k for k in misses if k[2] <= self.known_after})
                    if self.known_after_measured
                    else 0
                )
                if held:
                    log.warning(
                        "InfluxDB cannot be read: %d copies of transmissions that may be stored "
                        "wait, unacked, until it answers",
                        held,
                    )
            else:
                for key, (ids, best) in found.items():
                    self.merger.seed(key, ids, best)
        lines: list[tuple[PointKey, str]] = []
        acks: list[AckToken] = []
        accepted = 0
        events = self._events = []
        for m, r in zip(messages, results, strict=True):
            if r is HELD:
                continue
            try:
                rejection = self._accept(m, r, lines) if isinstance(r, Accepted) else r
                if rejection is None:
                    accepted += 1
                else:
                    lines.append(self._reject(m, rejection))
            except Exception as exc:  # a bug must not stop the loop; keep the message aside
                log.exception("internal error on a message from %r", m.topic)
                lines.append(self._reject(m, Rejection("decode", f"internal error: {exc!r}")))
            acks.append((m.mid, m.qos, m.generation))
        return Chunk(lines, acks, accepted, events)

    def _hold(
        self, messages: list[Incoming], results: list[Accepted | Rejection], keys: set[Key]
    ) -> int:
        """Move the messages of `keys` to the deferred list; their results become HELD."""
        held = 0
        for i, (m, r) in enumerate(zip(messages, results, strict=True)):
            if isinstance(r, Accepted) and (r.device, r.uplink.seqNumber, r.uplink.time) in keys:
                self._deferred.append(m)
                results[i] = HELD
                held += 1
        return held

    def _accept(
        self, m: Incoming, acc: Accepted, lines: list[tuple[PointKey, str]]
    ) -> Rejection | None:
        up = acc.uplink
        key = (acc.device, up.seqNumber, up.time)
        # A body without `station` (DATA ADVANCED, or a bare DATA callback) names no station
        # of its own: the merger counts its copy as none (DESIGN section 1).
        copies = [Copy(up.station or UNKNOWN_STATION, up.rssi, up.snr)]
        if up.duplicates:
            copies += [Copy(d.bsId, d.rssi, d.snr) for d in up.duplicates]
        known = key in self.merger
        if not known:  # copies and redeliveries of a known transmission cost no token
            # A rate-limited uplink was heard by the network: it is no sequence gap.
            lost = self.gaps.observe(acc.device, up.seqNumber)
            if lost:  # a Counter.inc takes a lock: not for the usual 0
                self.metrics.lost.inc(lost)
            # The bucket runs on the uplinks' own clock: a backfill of days of history at
            # 140 a day passes, a device sending many uplinks within the same seconds does not.
            if not self.limiter.allow(acc.device, float(up.time)):
                return Rejection("rate_limited", "device over its uplink rate", acc.device)
        prefix = self.events_prefix
        # A copy of a known transmission is an event only if it changes what is stored.
        prior = self.merger.merge(key, [])[0].best if known and prefix is not None else None
        state, added = self.merger.merge(key, copies)
        merged = added if known else added - 1  # a new transmission's first station
        if merged:
            self.metrics.merged.inc(merged)
        try:
            lines.extend(accepted_points(acc, state))
        except LineProtocolError as exc:  # e.g. a char field decoding to a control character
            return Rejection("decode", str(exc), acc.device)
        if prefix is not None and (not known or added or state.best != prior):
            self._events.append(
                up_event(
                    prefix,
                    acc.dtype,
                    acc.device,
                    up.time,
                    up.seqNumber,
                    len(state.stations) or 1,  # as stored: 1 when no copy names a station
                    state.best,
                    acc.decoded.values,
                )
            )
        if acc.decoded.out_of_range:
            self.metrics.out_of_range.inc(len(acc.decoded.out_of_range))
        return None

    def _reject(self, m: Incoming, r: Rejection) -> tuple[PointKey, str]:
        self.metrics.rejected.labels(r.reason).inc()
        log.warning("rejected %s from %r: %s (%d bytes)", r.reason, m.topic, r.detail, len(m.body))
        # Receipt time in ns, made strictly increasing so that no two rejects share a point.
        ts = max(m.received_ns, self._last_reject_ns + 1)
        self._last_reject_ns = ts
        point = rejected_point(r.reason, r.device, m.topic, m.body, r.detail, ts)
        if self.events_prefix is not None:
            self._events.append(
                rejected_event(self.events_prefix, r.reason, m.topic, r.device, ts, r.detail)
            )
        return point

    async def run(
        self, inbox: asyncio.Queue[list[Incoming] | None], outbox: asyncio.Queue[Chunk | None]
    ) -> None:
        while True:
            if self._deferred:  # retry held messages even when nothing new arrives
                try:
                    messages = await asyncio.wait_for(inbox.get(), DEFERRED_RETRY)
                except TimeoutError:
                    messages = []
            else:
                messages = await inbox.get()
            if messages is None:  # shutdown: held messages stay unacked with the broker
                break
            chunk = await self.process(messages)
            if chunk.acks:
                await outbox.put(chunk)
        await outbox.put(None)


class Batcher:
    """Chunks into batches: flushed at `size` points or `interval` seconds, whichever first."""

    def __init__(self, size: int, interval: float) -> None:
        self.size = size
        self.interval = interval

    async def run(
        self, inbox: asyncio.Queue[Chunk | None], outbox: asyncio.Queue[Batch | None]
    ) -> None:
        batch = Batch()
        loop = asyncio.get_running_loop()
        while True:
            if batch:
                remaining = batch.started + self.interval - loop.time()
                try:
                    chunk = await asyncio.wait_for(inbox.get(), max(0.0, remaining))
                except TimeoutError:
                    await outbox.put(batch)
                    batch = Batch()
                    continue
            else:
                chunk = await inbox.get()
            if chunk is None:
                if batch:
                    await outbox.put(batch)
                await outbox.put(None)
                return
            if not batch:
                batch.started = loop.time()
            batch.add(chunk)
            if len(batch.points) >= self.size:
                await outbox.put(batch)
                batch = Batch()


class Storer:
    """Stores batches in order and acks each batch's messages once it is stored or spooled."""

    def __init__(
        self,
        sink: Sink,
        ack: Callable[[list[AckToken]], int],
        metrics: Metrics,
        publish: Callable[[list[tuple[str, bytes]]], None] | None = None,
    ):
        self.sink = sink
        self.ack = ack
        self.metrics = metrics
        self.publish = publish  # the batch's events, once it is stored and acked; never blocks

    async def run(self, inbox: asyncio.Queue[Batch | None]) -> None:
        while (batch := await inbox.get()) is not None:
            try:
                await self.sink.store(list(batch.points.values()))
            except NotStored as exc:  # deadline with a full spool: the broker keeps them
                log.error(  # noqa: TRY400  # an expected condition, no traceback
                    "%d messages not stored before the deadline (%s); not acked",
                    len(batch.acks),
                    exc,
                )
                return
            self.metrics.stored.inc(batch.accepted)
            self.metrics.acks.inc(self.ack(batch.acks))
            if self.publish is not None and batch.events:
                self.publish(batch.events)
