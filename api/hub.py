"""The stream's events in one log, read by every client at its own pace (DESIGN section 9).

    api/eventbus.py ─► Hub.publish ─► log of the last events (ids 1 apart) ◄─ Subscription.cursor
                                                                              one per client

- Ids only grow, also across restarts: the first is the process's start time in microseconds,
  then one more per event, so a `Last-Event-ID` from before a restart resumes from the log.
- Publishing appends to the log and wakes only the clients asleep on a matching event: its cost
  does not grow with the clients (measured: 114 µs an event with 100 per-client queues, most of
  the API's share of a core at 1,000 events/s). Each client's pump takes every event after its
  cursor that matches its filter, in one write (api/routes/stream.py).
- A `rejected` event has the type its uplink's topic names (`<uplink prefix>/<type>/<device>`
  in the body's `topic`) and the body's `device`, so `type=` and `device=` filters keep it.
- Every `up` event's type, device and parsed body also go to `on_up`: the status cache takes
  them as readings (api/statuscache.py), so the one subscription serves both.
- A `status` event whose topic and body equal one in the log is dropped: two ingesters noticing
  the same change publish the same event, and a client sees it once.
- A client may be at most `api_stream_backlog` matching events behind (counted every
  `_check_every` events, a quarter of the smallest backlog). Past that it is marked overflowed:
  its stream sends `event: overflow` and ends; if its connection cannot take even that within
  OVERFLOW_GRACE (it reads nothing), the connection is cut. A slow client never slows the
  others or the subscription: nothing waits for it, and the log is trimmed whatever it has read.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

from api.eventparse import KINDS, parse_event

log = logging.getLogger(__name__)

# DESIGN 9: resume from the last 10,000 events at least; at ~500 bytes each, ~5 MB.
RING_EVENTS = 10_000
OVERFLOW_GRACE = 10.0  # s an overflowed stream may take to send its last words, then it is cut
CLOSE_GRACE = 1.0  # s the same at shutdown (uvicorn's own deadline is 5 s, api/command.py)
# The log is cut back to its size once it is this much longer: one `del` per 1,000 events.
TRIM_SLACK = 1000


@dataclass(frozen=True, slots=True)
class Filter:
    """What a client asked for; None means any."""

    kinds: frozenset[str] = frozenset(KINDS)
    types: frozenset[str] | None = None
    devices: frozenset[str] | None = None

    def matches(self, event: StreamEvent) -> bool:
        if event.kind not in self.kinds:
            return False
        if self.types is not None and event.type not in self.types:
            return False
        return self.devices is None or event.device in self.devices


@dataclass(frozen=True, slots=True)
class StreamEvent:
    """One event as the stream sends it: `frame` is its `event:`/`id:`/`data:` lines."""

    id: int
    kind: str
    type: str | None
    device: str | None
    frame: bytes
    at: float = 0.0  # time.monotonic() when it was published: the fan-out delay starts here


@dataclass(eq=False, slots=True)
class Subscription:
    """One stream client: where it is in the log, woken by `ready`."""

    filter: Filter
    backlog: int
    cursor: int  # the id of the last event it was given or skipped
    ready: asyncio.Event = field(default_factory=asyncio.Event)
    # Set once half the backlog is pending: the stream stops waiting for more and writes.
    urgent: asyncio.Event = field(default_factory=asyncio.Event)
    overflowed: bool = False
    closed: bool = False  # the server is shutting down
    # Matching events after `cursor` up to the id `counted_to`, for the backlog's check.
    pending: int = 0
    counted_to: int = 0
    # Resolved OVERFLOW_GRACE after overflow or close: the stream is cut if still open.
    cut: asyncio.Future[None] = field(
        default_factory=lambda: asyncio.get_running_loop().create_future()
    )

    def overflow(self) -> None:
        if not (self.overflowed or self.closed):
            self.overflowed = True
            self._end(OVERFLOW_GRACE)

    def close(self) -> None:
        if not self.closed:
            self.closed = True
            self._end(CLOSE_GRACE)

    def _end(self, grace: float) -> None:
        self.ready.set()
        self.urgent.set()
        asyncio.get_running_loop().call_later(grace, self._cut)

    def _cut(self) -> None:
        if not self.cut.done():
            self.cut.set_result(None)


class Hub:
    """The log of recent events, the clients' cursors into it, and their backlog checks."""

    def __init__(
        self,
        registry: CollectorRegistry,
        ring_size: int = RING_EVENTS,
        *,
        uplink_prefix: str = "uplink",
        on_up: Callable[[str, str, dict[str, Any]], None] | None = None,
    ) -> None:
        self.log: list[StreamEvent] = []  # log[i].id == first_id + i
        self.keep = ring_size  # the log keeps at least this many, more for a big backlog
        self.uplink_prefix = uplink_prefix
        # Given (type, device, parsed body) of every `up` event: the status cache's readings.
        self.on_up = on_up
        self._status_keys: dict[int, tuple[str, bytes]] = {}  # event id -> its topic and body
        self._status_seen: set[tuple[str, bytes]] = set()
        self.next_id = time.time_ns() // 1000
        self.first_id = self.next_id
        self.subscriptions: set[Subscription] = set()
        self.sleepers: set[Subscription] = set()  # pumps waiting for a matching event
        self._check_every = ring_size
        self._until_check = ring_size
        self.closing = False
        self._metrics(registry)

    def _metrics(self, registry: CollectorRegistry) -> None:
        self.clients = Gauge(
            "telemetry_api_stream_clients", "Stream clients connected", registry=registry
        )
        received = Counter(
            "telemetry_api_stream_events",
            "Events received from the broker, by kind (duplicates and unknown topics included)",
            ["kind"],
            registry=registry,
        )
        self.received = {kind: received.labels(kind) for kind in (*KINDS, "unknown")}
        self.overflows = Counter(
            "telemetry_api_stream_overflows",
            "Stream clients ended because they fell too far behind",
            registry=registry,
        )
        # From an event's publish here to the end of the write that sent it, for the oldest
        # event of each write: the API's own share of the publish-to-client latency.
        self.delay = Histogram(
            "telemetry_api_stream_delay_seconds",
            "Time from an event's arrival to the end of its write to a client (oldest per write)",
            buckets=(0.01, 0.025, 0.05, 0.1, 0.2, 0.3, 0.5, 0.75, 1.0, 1.5, 2.5, 5.0),
            registry=registry,
        )
        # How late a 50 ms timer fires: the loop busy elsewhere delays reading the broker too
        # (aiomqtt reads one MQTT packet per loop iteration), so every stream falls behind.
        self.loop_lag = Histogram(
            "telemetry_api_loop_lag_seconds",
            "How late the API's event loop runs a timer (sampled every 50 ms)",
            buckets=(0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0),
            registry=registry,
        )
        self.duplicates = Counter(
            "telemetry_api_stream_duplicates",
            "Status events dropped as already in the ring (several ingesters)",
            registry=registry,
        )

    def publish(self, prefix: str, topic: str, payload: bytes) -> StreamEvent | None:
        """Add one message from the broker; None when it is not an event or a duplicate."""
        parsed = parse_event(prefix, topic, payload, self.uplink_prefix)
        if parsed is None:
            self.received["unknown"].inc()
            return None
        kind, type_name, device, data, doc = parsed
        self.received[kind].inc()
        if kind == "up" and self.on_up is not None and type_name and device:
            try:
                self.on_up(type_name, device, doc)
            except Exception:  # a bug there must not cost the stream its subscription
                log.exception("the up event of %s could not be taken as a reading", device)
        key = (topic, payload)
        if kind == "status":
            if key in self._status_seen:
                self.duplicates.inc()
                return None
            self._status_keys[self.next_id] = key
            self._status_seen.add(key)
        event_id = self.next_id
        self.next_id += 1
        frame = f"event: {kind}\nid: {event_id}\ndata: {data}\n\n".encode()
        event = StreamEvent(event_id, kind, type_name, device, frame, time.monotonic())
        self.log.append(event)
        if len(self.log) >= self.keep + TRIM_SLACK:
            self._trim()
        if self.sleepers:
            woken = [s for s in self.sleepers if s.filter.matches(event)]
            for sub in woken:
                self.sleepers.discard(sub)
                sub.ready.set()
        self._until_check -= 1
        if self._until_check <= 0:
            self._until_check = self._check_every
            self._check_backlogs()
        return event

    def take(self, sub: Subscription) -> tuple[list[bytes], float]:
        """The frames of the events after `sub`'s cursor that it wants, and the oldest's time."""
        if sub.overflowed or sub.closed or sub.cursor >= self.next_id - 1:
            return [], 0.0
        if sub.cursor < self.first_id - 1:  # trimmed before it took them: they are lost
            self._overflow(sub)
            return [], 0.0
        start = max(0, sub.cursor + 1 - self.first_id)
        flt = sub.filter
        events = [e for e in self.log[start:] if flt.matches(e)]
        sub.cursor = self.next_id - 1
        sub.pending, sub.counted_to = 0, sub.cursor
        sub.urgent.clear()
        return [e.frame for e in events], events[0].at if events else 0.0

    def sleep(self, sub: Subscription) -> None:
        """`sub` waits for its next matching event: `ready` is set when one comes."""
        sub.ready.clear()
        self.sleepers.add(sub)

    def _check_backlogs(self) -> None:
        """Mark urgent the clients half their backlog behind, overflowed those past it."""
        newest = self.next_id - 1
        for sub in self.subscriptions:
            if sub.overflowed or sub.closed or newest - sub.cursor <= sub.backlog // 2:
                continue  # nothing to count: it cannot have more pending than that
            if sub.cursor < self.first_id - 1:  # behind the log's start: events are lost
                sub.pending = sub.backlog + 1
            else:
                start = max(sub.cursor, sub.counted_to) + 1 - self.first_id
                flt = sub.filter
                sub.pending += sum(1 for e in self.log[start:] if flt.matches(e))
            sub.counted_to = newest
            if sub.pending > sub.backlog:
                self._overflow(sub)
            elif sub.pending >= sub.backlog // 2:
                sub.urgent.set()
                sub.ready.set()

    def _overflow(self, sub: Subscription) -> None:
        sub.overflow()
        self.overflows.inc()
        log.warning("a stream client fell %d events behind: overflow, stream ended", sub.backlog)

    def _trim(self) -> None:
        drop = len(self.log) - self.keep
        for event in self.log[:drop]:
            if event.kind == "status":
                self._status_seen.discard(self._status_keys.pop(event.id))
        del self.log[:drop]
        self.first_id += drop

    def subscribe(
        self, flt: Filter, backlog: int, *, tail: int = 0, after: int | None = None
    ) -> tuple[Subscription, list[bytes]]:
        """A new subscription and the frames to send first (resume after `after`, or tail).

        No await between reading the log and registering: nothing is missed or sent twice.
        """
        first: list[bytes] = []
        if after is not None or tail:
            for event in reversed(self.log):
                if (after is not None and event.id <= after) or (
                    after is None and len(first) >= tail
                ):
                    break
                if flt.matches(event):
                    first.append(event.frame)
            first.reverse()
        sub = Subscription(flt, backlog, cursor=self.next_id - 1)
        sub.counted_to = sub.cursor
        # The log holds what the biggest backlog may need; the check runs often enough that
        # no client gets past its backlog by more than a quarter of it.
        self.keep = max(self.keep, 2 * backlog)
        self._check_every = min(self._check_every, max(1, backlog // 4))
        self._until_check = min(self._until_check, self._check_every)
        if self.closing:
            sub.close()
        self.subscriptions.add(sub)
        self.clients.set(len(self.subscriptions))
        return sub, first

    def unsubscribe(self, sub: Subscription) -> None:
        self.subscriptions.discard(sub)
        self.sleepers.discard(sub)
        self.clients.set(len(self.subscriptions))

    def close_all(self) -> None:
        """Server shutdown: every stream ends (and new ones end at once)."""
        if not self.closing:
            self.closing = True
            if self.subscriptions:
                log.info("ending %d open streams", len(self.subscriptions))
        for sub in self.subscriptions:
            sub.close()
