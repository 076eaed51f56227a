"""Events out of the ingester (DESIGN section 9): what they say, and a publisher that never blocks.

    Storer ─emit()─► bounded queue ─► EventPublisher.run ─► EventLink (MQTT v5, QoS 1)
    status watcher ─emit()─┘           (one task)              └─► PUBACK: published / refused

`emit` only appends to a list: the stored batch is acked before or whatever happens to its
events. A full queue (the broker slow or away), a refused publish (PUBACK reason >= 0x80, e.g.
an ACL without `write events/#`) or an event in flight when the connection drops: the event
is dropped and `telemetry_ingest_events_dropped_total` counts it. Events are not retained and
not kept over a restart: they say what happens now; InfluxDB keeps what happened.

Topics and bodies (times RFC 3339 UTC, as the API writes them):
- `<prefix>/<type>/<device>/up`: the merged message as stored, {"device", "type", "time",
  "seq", "stations", "station", "rssi", "snr", "values": {field: value}}; published again when
  a later copy changes `stations` or the best station;
- `<prefix>/rejected/<reason>`: {"reason", "topic", "device" (when known), "time", "detail"},
  `time` being when the message was received;
- `<prefix>/<type>/<device>/status`: made by the status watcher, handed to `emit`.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import json
import logging
import random
import time

from catalogue import DeviceType
from catalogue.codec import Value
from ingest.eventlink import EventLink, LinkError
from ingest.merge import UNKNOWN_STATION, Copy
from ingest.metrics import Metrics
from telemetry.settings import Settings

log = logging.getLogger(__name__)

# Events waiting for the connection at most: about a second of ingest at full speed, so a
# broker pausing for a moment loses nothing, and a few MB of memory at worst.
QUEUE_EVENTS = 20_000
# Events written in one block at most, so that a long queue leaves the loop other turns.
BLOCK_EVENTS = 2_000
RECONNECT_BASE = 0.5  # s, first retry (full jitter)
RECONNECT_CAP = 30.0  # s
TOPIC_KEEP_CHARS = 1024  # as the `rejected` point keeps it
DETAIL_KEEP_CHARS = 512

_dumps = json.JSONEncoder(separators=(",", ":"), ensure_ascii=False, allow_nan=False).encode


@functools.lru_cache(maxsize=4096)
def rfc3339(seconds: int) -> str:
    """Epoch seconds as `2024-05-18T02:40:00Z` (cached: uplinks arrive in runs of one second)."""
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(seconds))


def rfc3339_ns(ns: int) -> str:
    """Nanoseconds as RFC 3339 UTC with milliseconds, for receipt times."""
    seconds, frac = divmod(ns, 1_000_000_000)
    return f"{rfc3339(seconds)[:-1]}.{frac // 1_000_000:03d}Z"


def up_event(  # noqa: PLR0917  # the fields of one stored message
    prefix: str,
    dtype: DeviceType,
    device: str,
    time_s: int,
    seq: int,
    stations: int,
    best: Copy,
    values: dict[str, Value],
) -> tuple[str, bytes]:
    """Topic and body of an `up` event, made for every stored uplink, so made fast.

    Device ids and station ids are hex and type and field names identifiers (checked at
    input and at catalogue load), so only values need JSON encoding; the numbers of a point
    that was stored are finite (line protocol refuses the others), so `repr` is their JSON.
    The usual uplink (every field in range, a station with RSSI and SNR, a type of numbers
    only) is written into one template of its type; anything else goes the general way.
    """
    topic = _up_topic(prefix, dtype.name, device)
    rssi, snr, station = best.rssi, best.snr, best.station
    template = _templates.get(dtype.name)
    if template is None:
        template = _templates[dtype.name] = _template(dtype)
    if (
        template
        and rssi is not None
        and snr is not None
        and station != UNKNOWN_STATION
        and len(values) == len(dtype.fields)
    ):
        text = template % (
            device,
            rfc3339(time_s),
            seq,
            stations,
            station,
            rssi,
            snr,
            *values.values(),
        )
        return topic, text.encode()
    text = _UP % (
        device,
        dtype.name,
        rfc3339(time_s),
        seq,
        stations,
        "null" if station == UNKNOWN_STATION else f'"{station}"',
        "null" if rssi is None else repr(rssi),
        "null" if snr is None else repr(snr),
        _values_template(tuple(values)) % tuple(values.values())
        if _templates[dtype.name]
        else _dumps(values),
    )
    return topic, text.encode()


_UP = (
    '{"device":"%s","type":"%s","time":"%s","seq":%d,"stations":%d,"station":%s,"rssi":%s,'
    '"snr":%s,"values":%s}'
)


@functools.lru_cache(maxsize=1024)
def _values_template(names: tuple[str, ...]) -> str:
    """`{"name":%r,...}` for values of an all-number type (some left out as out of range)."""
    return "{" + ",".join(f'"{name}":%r' for name in names) + "}"


@functools.lru_cache(maxsize=65_536)
def _up_topic(prefix: str, type_name: str, device: str) -> str:
    return f"{prefix}/{type_name}/{device}/up"


_NUMERIC_KINDS = frozenset(("uint", "int", "float"))
_templates: dict[str, str] = {}  # type name -> its body template ("" for a type with text)


def _template(dtype: DeviceType) -> str:
    """The body of an `up` event of `dtype` with %-placeholders; "" unless all numbers."""
    if not all(f.slot.kind in _NUMERIC_KINDS for f in dtype.fields.values()):
        return ""  # bool and char values need JSON's own spelling
    fields = ",".join(f'"{name}":%r' for name in dtype.fields)
    return (
        f'{{"device":"%s","type":"{dtype.name}","time":"%s","seq":%d,"stations":%d,'
        f'"station":"%s","rssi":%r,"snr":%r,"values":{{{fields}}}}}'
    )


def rejected_event(  # noqa: PLR0917  # the fields of one reject
    prefix: str, reason: str, topic: str, device: str | None, received_ns: int, detail: str
) -> tuple[str, bytes]:
    """Topic and body of a `rejected` event."""
    doc: dict[str, object] = {"reason": reason, "topic": topic[:TOPIC_KEEP_CHARS]}
    if device:
        doc["device"] = device
    doc["time"] = rfc3339_ns(received_ns)
    doc["detail"] = detail[:DETAIL_KEEP_CHARS]
    return f"{prefix}/rejected/{reason}", _dumps(doc).encode()


class EventPublisher:
    """A bounded queue of events and the task that publishes them; `emit` never blocks."""

    def __init__(self, settings: Settings, metrics: Metrics, capacity: int = QUEUE_EVENTS):
        self.settings = settings
        self.prefix = settings.mqtt_events_prefix
        self.metrics = metrics
        self.capacity = capacity
        self._queue: list[tuple[bytes, bytes]] = []
        self._wake = asyncio.Event()
        self._closing = False
        self._refused_logged = 0.0
        self.link: EventLink | None = None
        self._task: asyncio.Task[None] | None = None
        self.connected = asyncio.Event()

    def emit(self, topic: str, payload: bytes) -> None:
        """Queue one event; dropped (and counted) when the queue is full."""
        if len(self._queue) >= self.capacity:
            self.metrics.events_dropped.inc()
            return
        self._queue.append((topic.encode(), payload))
        self._wake.set()

    def emit_many(self, events: list[tuple[str, bytes]]) -> None:
        """Queue a stored batch's events; those past the bound are dropped and counted."""
        room = max(0, self.capacity - len(self._queue))
        if len(events) > room:
            self.metrics.events_dropped.inc(len(events) - room)
            events = events[:room]
        if events:
            self._queue.extend([(t.encode(), p) for t, p in events])
            self._wake.set()

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
            delay = random.uniform(0, min(RECONNECT_CAP, RECONNECT_BASE * 2**attempt))  # noqa: S311
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
                    n = min(len(self._queue), link.free, BLOCK_EVENTS)
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
        left = len(self._queue)
        if left:
            self.metrics.events_dropped.inc(left)
            self._queue.clear()
        if self._task is not None:
            self._task.cancel()
