"""The API's events (DESIGN section 9): one MQTT subscription, a ring, per-client queues.

    broker ─`<prefix>/#`─► EventBus (aiomqtt, reconnecting) ─► Hub.publish
                                       ring of the last RING_EVENTS ◄─┤
                              Subscription (bounded queue) ◄──────────┘ one per stream client

- Ids only grow, also across restarts: the first is the process's start time in microseconds,
  then one more per event, so a `Last-Event-ID` from before a restart resumes from the ring.
- A `rejected` event has the type its uplink's topic names (`<uplink prefix>/<type>/<device>`
  in the body's `topic`) and the body's `device`, so `type=` and `device=` filters keep it.
- A `status` event whose topic and body equal one already in the ring is dropped: two
  ingesters noticing the same change publish the same event, and a client sees it once.
- A client's queue holds at most `api_stream_backlog` events. Past that it is marked
  overflowed: its stream sends `event: overflow` and ends; if its connection cannot take even
  that within OVERFLOW_GRACE (it reads nothing), the connection is cut. Fan-out only appends
  to queues, so a slow client never slows the others or the subscription.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import random
import time
import uuid
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field

import aiomqtt
from prometheus_client import CollectorRegistry, Counter, Gauge

from telemetry.settings import Settings

# Jitter from a generator of its own: background retries never touch the global `random`
# state that simulators and tests seed (Hypothesis flags strategies whose draws it changes).
_JITTER = random.Random()  # noqa: S311  # jitter, not crypto

log = logging.getLogger(__name__)

KINDS = ("up", "status", "rejected", "downlink")
# DESIGN 9: resume from the last 10,000 events at least; at ~500 bytes each, ~5 MB.
RING_EVENTS = 10_000
OVERFLOW_GRACE = 10.0  # s an overflowed stream may take to send its last words, then it is cut
CLOSE_GRACE = 1.0  # s the same at shutdown (uvicorn's own deadline is 5 s, api/command.py)
RECONNECT_BASE = 0.5  # s, first retry after a lost connection (full jitter)
RECONNECT_CAP = 30.0  # s
# Received but not yet fanned out, at most (aiomqtt drops past it): a minute at 1,000/s.
INCOMING_MAX = 60_000


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


@dataclass(eq=False, slots=True)
class Subscription:
    """One stream client: a bounded queue of frames, woken by `ready`."""

    filter: Filter
    backlog: int
    queue: deque[bytes] = field(default_factory=deque)
    ready: asyncio.Event = field(default_factory=asyncio.Event)
    # Set once half the backlog is queued: the stream stops waiting for more and writes.
    urgent: asyncio.Event = field(default_factory=asyncio.Event)
    overflowed: bool = False
    closed: bool = False  # the server is shutting down
    # Resolved OVERFLOW_GRACE after overflow or close: the stream is cut if still open.
    cut: asyncio.Future[None] = field(
        default_factory=lambda: asyncio.get_running_loop().create_future()
    )

    def offer(self, frame: bytes) -> bool:
        """Queue a frame; False when this made the client overflow."""
        if self.overflowed or self.closed:
            return True
        if len(self.queue) >= self.backlog:
            self.overflowed = True
            self.queue.clear()  # never sent: free the memory now
            self._end(OVERFLOW_GRACE)
            return False
        self.queue.append(frame)
        self.ready.set()
        if len(self.queue) >= self.backlog // 2:
            self.urgent.set()
        return True

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
    """The ring of recent events and the fan-out to subscriptions."""

    def __init__(
        self,
        registry: CollectorRegistry,
        ring_size: int = RING_EVENTS,
        *,
        uplink_prefix: str = "uplink",
    ) -> None:
        self.ring: deque[StreamEvent] = deque()
        self.ring_size = ring_size
        self.uplink_prefix = uplink_prefix
        self._status_keys: dict[int, tuple[str, bytes]] = {}  # event id -> its topic and body
        self._status_seen: set[tuple[str, bytes]] = set()
        self.next_id = time.time_ns() // 1000
        self.subscriptions: set[Subscription] = set()
        self.closing = False
        self.clients = Gauge(
            "telemetry_api_stream_clients", "Stream clients connected", registry=registry
        )
        self.received = Counter(
            "telemetry_api_stream_events",
            "Events received from the broker, by kind (duplicates and unknown topics included)",
            ["kind"],
            registry=registry,
        )
        self.overflows = Counter(
            "telemetry_api_stream_overflows",
            "Stream clients ended because they fell too far behind",
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
            self.received.labels("unknown").inc()
            return None
        kind, type_name, device, data = parsed
        self.received.labels(kind).inc()
        key = (topic, payload)
        if kind == "status" and key in self._status_seen:
            self.duplicates.inc()
            return None
        event_id = self.next_id
        self.next_id += 1
        frame = f"event: {kind}\nid: {event_id}\ndata: {data}\n\n".encode()
        event = StreamEvent(event_id, kind, type_name, device, frame)
        ring = self.ring
        if len(ring) >= self.ring_size:
            old = ring.popleft()
            if old.kind == "status":
                self._status_seen.discard(self._status_keys.pop(old.id))
        ring.append(event)
        if kind == "status":
            self._status_keys[event_id] = key
            self._status_seen.add(key)
        overflowed = [
            s for s in self.subscriptions if s.filter.matches(event) and not s.offer(frame)
        ]
        for sub in overflowed:
            self.overflows.inc()
            log.warning(
                "a stream client fell %d events behind: overflow, stream ended", sub.backlog
            )
        return event

    def subscribe(
        self, flt: Filter, backlog: int, *, tail: int = 0, after: int | None = None
    ) -> tuple[Subscription, list[bytes]]:
        """A new subscription and the frames to send first (resume after `after`, or tail).

        No await between reading the ring and registering: nothing is missed or sent twice.
        """
        if after is not None:
            first: list[bytes] = []
            for event in reversed(self.ring):
                if event.id <= after:
                    break
                if flt.matches(event):
                    first.append(event.frame)
            first.reverse()
        elif tail:
            first = []
            for event in reversed(self.ring):
                if len(first) >= tail:
                    break
                if flt.matches(event):
                    first.append(event.frame)
            first.reverse()
        else:
            first = []
        sub = Subscription(flt, backlog)
        if self.closing:
            sub.close()
        self.subscriptions.add(sub)
        self.clients.set(len(self.subscriptions))
        return sub, first

    def unsubscribe(self, sub: Subscription) -> None:
        self.subscriptions.discard(sub)
        self.clients.set(len(self.subscriptions))

    def close_all(self) -> None:
        """Server shutdown: every stream ends (and new ones end at once)."""
        if not self.closing:
            self.closing = True
            if self.subscriptions:
                log.info("ending %d open streams", len(self.subscriptions))
        for sub in self.subscriptions:
            sub.close()


def parse_event(
    prefix: str, topic: str, payload: bytes, uplink_prefix: str = "uplink"
) -> tuple[str, str | None, str | None, str] | None:
    """(kind, type, device, one-line JSON) of an events topic and body; None if it is not one.

    `<prefix>/<type>/<device>/<kind>` (up, status, downlink) or `<prefix>/rejected/<reason>`,
    whose device is the body's `device` when it names one and whose type is the one its
    uplink's topic names (the body's `topic`, `<uplink_prefix>/<type>/<device>`), if any.
    """
    head = prefix + "/"
    if not topic.startswith(head):
        return None
    parts = topic[len(head) :].split("/")
    try:
        doc = json.loads(payload)
    except (ValueError, RecursionError):
        return None
    if not isinstance(doc, dict):
        return None
    text = payload.decode()
    if "\n" in text or "\r" in text:  # one `data:` line, always
        text = json.dumps(doc, separators=(",", ":"), ensure_ascii=False)
    if len(parts) == 2 and parts[0] == "rejected":
        device = doc.get("device")
        device = device.upper() if isinstance(device, str) else None
        return "rejected", _uplink_type(doc.get("topic"), uplink_prefix), device, text
    if len(parts) == 3 and parts[2] in KINDS and parts[2] != "rejected":
        return parts[2], parts[0], parts[1].upper(), text
    return None


def _uplink_type(topic: object, uplink_prefix: str) -> str | None:
    """The `<type>` of `<uplink_prefix>/<type>/<device>`; None for any other topic.

    Not checked against the catalogue: the stream's `type=` accepts known types only, so an
    unknown one here matches no filter.
    """
    if not isinstance(topic, str) or not topic.startswith(uplink_prefix + "/"):
        return None
    parts = topic[len(uplink_prefix) + 1 :].split("/")
    return parts[0] if len(parts) == 2 and parts[0] and parts[1] else None


class EventBus:
    """The process's one subscription to `<prefix>/#`, feeding the hub, reconnecting forever."""

    def __init__(self, settings: Settings, hub: Hub) -> None:
        self.settings = settings
        self.hub = hub
        self.prefix = settings.mqtt_events_prefix
        # Random: every API process has its own subscription, and none takes another's.
        self.client_id = f"telemetry-api-{uuid.uuid4().hex[:10]}"
        self.connected = asyncio.Event()

    async def run(self) -> None:
        ep = self.settings.mqtt
        attempt = 0
        while True:
            client = aiomqtt.Client(
                ep.host,
                ep.port,
                username=ep.username,
                password=ep.password,
                identifier=self.client_id,
                protocol=aiomqtt.ProtocolVersion.V311,
                clean_session=True,  # events are now or never: nothing to keep while away
                keepalive=self.settings.mqtt_keepalive,
                tls_params=aiomqtt.TLSParameters() if ep.tls else None,
                max_queued_incoming_messages=INCOMING_MAX,
            )
            try:
                async with client:
                    await client.subscribe(f"{self.prefix}/#", qos=1)
                    attempt = 0
                    self.connected.set()
                    log.info("stream: subscribed to %r as %r", f"{self.prefix}/#", self.client_id)
                    publish, prefix = self.hub.publish, self.prefix
                    async for message in client.messages:
                        body = message.payload
                        if isinstance(body, bytes | bytearray):
                            publish(prefix, message.topic.value, bytes(body))
            except aiomqtt.MqttError as exc:
                log.warning("stream: MQTT connection lost or refused: %s", exc)
            finally:
                self.connected.clear()
            delay = _JITTER.uniform(0, min(RECONNECT_CAP, RECONNECT_BASE * 2**attempt))
            attempt += 1
            await asyncio.sleep(delay)


async def watch_exit(should_exit: Callable[[], bool], hub: Hub, period: float = 0.1) -> None:
    """End every stream once the server is asked to stop.

    uvicorn waits for open connections to finish before it runs the lifespan's shutdown, so
    streams must end on its `should_exit` flag, polled here, or a SIGTERM would wait forever.
    """
    while not should_exit():  # noqa: ASYNC110  # uvicorn's flag is a plain bool, no Event
        await asyncio.sleep(period)
    hub.close_all()


async def stop_task(task: asyncio.Task[None]) -> None:
    task.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await task
