"""The processing stage: a list of messages in, their points, acks and events out (`Processed`).

Per message: validate (ingest/validate.py), count gaps and rate-limit, merge copies
(ingest/merge.py, which also says when the stored point must be read first), encode
(ingest/points.py). A rejected message becomes a `rejected` point; an internal error too, with
the reason `internal`. A message held while InfluxDB cannot be read is neither: it waits,
unacked, and is retried first.
"""

from __future__ import annotations

import asyncio
import enum
import logging
import time
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass, field

from catalogue import Catalogue
from catalogue.times import NS
from influx.lineprotocol import LineProtocolError
from ingest.eventbodies import rejected_event, up_parts
from ingest.eventpackets import publish_parts
from ingest.gaps import GapCounter
from ingest.merge import UNKNOWN_STATION, Copy, Key, Merger, Transmission, add_copies
from ingest.metrics import Metrics
from ingest.points import PointKey, RejectStamper, accepted_points, copy_points, values_fields
from ingest.ratelimit import RateLimiter
from ingest.received import AckToken, Incoming
from ingest.validate import Accepted, Rejection, validate
from telemetry.settings import Settings

log = logging.getLogger(__name__)

# What is stored for some transmissions; None when InfluxDB could not be read.
Lookup = Callable[[Iterable[Key]], Awaitable[dict[Key, tuple[str, Copy]] | None]]
# Every station's copy stored for some transmissions (share groups); None: cannot be read.
CopiesLookup = Callable[[Iterable[Key]], Awaitable[dict[Key, list[Copy]] | None]]
EventKey = tuple[str, int] | None
DEFERRED_RETRY = 1.0  # s between retries of held messages when no new message comes
VERIFY_WAIT = 0.1  # s a share group's check of what was stored waits for new messages at most
# Transmissions written and not checked yet, at most (share groups): a long outage must not
# keep every one in memory. Past it the oldest go unchecked (logged); the other members'
# checks still see this member's copies.
WRITTEN_MAX = 100_000


class Held(enum.Enum):
    """A message held back: not a rejection, it is neither stored nor acked yet."""

    HELD = "held"


HELD = Held.HELD


@dataclass(slots=True)
class Processed:
    """The points of some messages and the acks they earn once stored."""

    lines: list[tuple[PointKey, str]]
    acks: list[AckToken]
    accepted: int = 0  # messages among `acks` that were accepted (not rejected)
    # Published once stored: flat (head, tail) pairs of PUBLISH packets (ingest/eventpackets.py).
    events: list[bytes] = field(default_factory=list)
    # One per event: the (device, time in ns) of the points an `up` event reports, None for
    # a reject's. An `up` event of a point InfluxDB refuses is not published (`Storer`).
    event_keys: list[EventKey] = field(default_factory=list)
    newest: int = -1  # the newest uplink time (s) among the accepted ones, -1 if none
    # Share groups: transmissions whose points these lines write, to check once stored.
    verify: list[Key] = field(default_factory=list)


@dataclass(slots=True)
class Written:
    """What a share group's member last wrote for a transmission, until it is checked."""

    acc: Accepted
    values_text: str
    state: Transmission  # its merge (the cache's own, unless evicted since)
    count: int  # `stations` and the best copy as last written
    best: Copy
    pending: int = 1  # writes of it not yet checked


class Processor:
    """Messages to points. Pure per message; awaits only the stored-copy lookup per list."""

    def __init__(
        self,
        settings: Settings,
        catalogue: Catalogue,
        metrics: Metrics,
        lookup: Lookup | None = None,
        *,
        clock: Callable[[], float] = time.time,
        known_after: int | None = None,
        taken_before: int | None = None,
        stamper: RejectStamper | None = None,
        copies: CopiesLookup | None = None,
    ) -> None:
        self.catalogue = catalogue
        self.prefix = settings.mqtt_topic_prefix
        self.tolerance = settings.ingest_future_tolerance
        self.metrics = metrics
        self.lookup = lookup
        self.clock = clock
        # The cache knows every transmission stamped after `known_after` (one ingester): the
        # newest time stored when we started, or, when that is unknown, our start plus the
        # future tolerance (an earlier process may have written up to its clock plus that).
        # `taken_before`: the newest uplink time an earlier run on our spool folder acked
        # (stored or spooled); when InfluxDB cannot say, copies up to it still wait for it.
        if known_after is not None and taken_before is not None:
            known_after = max(known_after, taken_before)
        self.merger = Merger(
            known_after=(
                known_after
                if known_after is not None
                else int(clock()) + settings.ingest_future_tolerance
            ),
            measured=known_after is not None,
            hold_horizon=taken_before,
        )
        self.limiter = RateLimiter(settings.ingest_rate_burst, settings.ingest_rate_per_hour)
        self.gaps = GapCounter()
        self.stamper = stamper or RejectStamper()  # shared with the sink by the service
        self._deferred: list[Incoming] = []
        # DESIGN section 9: the events of what is stored; None: none are made.
        self.events_prefix = settings.mqtt_events_prefix if settings.ingest_events else None
        self._events: list[bytes] = []
        self._event_keys: list[EventKey] = []
        self._newest = -1
        # Share groups: the copies of one transmission go to several members, which may all
        # miss it in their caches and find nothing stored yet, and the last `uplink` point
        # written wins. So each member also writes every copy as its own `uplink_copy` point
        # (they add up), and checks each transmission it wrote once its write is stored
        # (`stored`, then `_verify`): if the copies stored by all differ from what it wrote, it
        # rewrites the union. Whoever writes last checks last and sees every copy. So a member
        # looks up what is stored on a miss only as a lone ingester does (what was stored
        # before it started, or evicted since): the check covers what other members write.
        self.copies = copies if settings.mqtt_share_group is not None else None
        self._written: dict[Key, Written] = {}
        self._to_verify: dict[Key, int] = {}  # stored writes of each, to check
        self._verify_out: list[Key] = []
        self._verify_due = asyncio.Event()
        self._verify_after = 0.0  # monotonic: a failed read of the copies is retried then
        self.unchecked = 0  # transmissions left unchecked past `WRITTEN_MAX`

    async def process(self, messages: list[Incoming]) -> Processed:
        # Messages held back because what is stored for them could not be read: retried first.
        if self._deferred:
            messages, self._deferred = self._deferred + messages, []
        now = self.clock()
        results: list[Accepted | Rejection | Held] = [
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
            await self._look_up(self.lookup, messages, results)
        lines: list[tuple[PointKey, str]] = []
        acks: list[AckToken] = []
        accepted = 0
        events = self._events = []
        event_keys = self._event_keys = []
        verify = self._verify_out = []
        if self.copies is not None and self._verify_ready():
            await self._verify(self.copies, lines)
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
                lines.append(self._reject(m, Rejection("internal", f"internal error: {exc!r}")))
            acks.append((m.mid, m.qos, m.generation))
        newest, self._newest = self._newest, -1
        return Processed(lines, acks, accepted, events, event_keys, newest, verify)

    def stored(self, keys: list[Key]) -> None:
        """Told by the storer: the points of these transmissions are stored (or spooled)."""
        to_verify = self._to_verify
        for key in keys:
            to_verify[key] = to_verify.get(key, 0) + 1
        self._verify_due.set()  # wakes `run` if it waits for messages

    def _verify_ready(self) -> bool:
        return bool(self._to_verify) and time.monotonic() >= self._verify_after

    async def last_check(self) -> Processed | None:
        """At shutdown, once the last batch is stored: check what is left to check once more
        (a rewrite made now is not checked again); None when there is nothing to write."""
        if self.copies is None or not self._to_verify:
            return None
        self._verify_after = 0.0
        lines: list[tuple[PointKey, str]] = []
        events = self._events = []
        event_keys = self._event_keys = []
        self._verify_out = []
        await self._verify(self.copies, lines)
        return Processed(lines, [], 0, events, event_keys) if lines else None

    async def _verify(self, copies: CopiesLookup, lines: list[tuple[PointKey, str]]) -> None:
        """Check stored transmissions against every member's copies; rewrite what differs."""
        to_verify, self._to_verify = self._to_verify, {}  # `stored` may add more meanwhile
        found = await copies(to_verify)
        if found is None:  # cannot be read now (or the spool holds batches): a while later
            self._verify_after = time.monotonic() + DEFERRED_RETRY
            for key, writes in to_verify.items():
                self._to_verify[key] = self._to_verify.get(key, 0) + writes
            return
        for key, writes in to_verify.items():
            written = self._written.get(key)
            if written is None:  # left unchecked past WRITTEN_MAX
                continue
            written.pending -= writes
            state = written.state
            add_copies(state, found.get(key, []))
            best, count = state.best, state.count
            if (count, best) != (written.count, written.best):
                written.count, written.best = count, best
                written.pending += 1
                self._verify_out.append(key)
                self.metrics.merged.inc()
                lines.extend(accepted_points(written.acc, state, written.values_text))
                if self.events_prefix is not None:
                    self._up_event(self.events_prefix, written.acc, state, written.values_text)
            elif not written.pending:
                del self._written[key]

    async def _look_up(
        self, lookup: Lookup, messages: list[Incoming], results: list[Accepted | Rejection | Held]
    ) -> None:
        """Seed the merger from what is stored for the misses that may be stored already;
        when InfluxDB cannot be read, hold the copies the merger says must wait."""
        merger = self.merger
        misses = {
            k
            for r in results
            if isinstance(r, Accepted)
            and merger.needs_lookup(k := (r.device, r.uplink.seqNumber, r.uplink.time))
        }
        found = await lookup(misses) if misses else {}
        if found is not None:
            for key, (ids, best) in found.items():
                merger.seed(key, ids, best)
            return
        # InfluxDB cannot be read. Held copies wait unacked (the broker's in-flight window
        # bounds how many) until it answers; everything else goes on, spooled if need be.
        held = self._hold(messages, results, {k for k in misses if merger.must_hold(k)})
        if held:
            log.warning(
                "InfluxDB cannot be read: %d copies of transmissions that may be stored "
                "wait, unacked, until it answers",
                held,
            )

    def _hold(
        self,
        messages: list[Incoming],
        results: list[Accepted | Rejection | Held],
        keys: set[Key],
    ) -> int:
        """Move the messages of `keys` to the deferred list; their results become HELD."""
        if not keys:
            return 0
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
        self._newest = max(self._newest, up.time)
        merged = added if known else added - 1  # a new transmission's first station
        if merged:
            self.metrics.merged.inc(merged)
        values = acc.decoded.values
        try:
            values_text = values_fields(values)
            lines.extend(accepted_points(acc, state, values_text))
        except LineProtocolError as exc:  # e.g. a char field decoding to a control character
            return Rejection("decode", str(exc), acc.device)
        if prefix is not None and (not known or added or state.best != prior):
            self._up_event(prefix, acc, state, values_text)
        if self.copies is not None:
            lines.extend(copy_points(acc.device, up.seqNumber, up.time, copies))
            self._wrote(key, acc, values_text, state)
        if acc.decoded.out_of_range:
            self.metrics.out_of_range.inc(len(acc.decoded.out_of_range))
        return None

    def _up_event(self, prefix: str, acc: Accepted, state: Transmission, values_text: str) -> None:
        up = acc.uplink
        self._events += up_parts(
            prefix,
            acc.dtype,
            acc.device,
            up.time,
            up.seqNumber,
            len(state.stations) or 1,  # as stored: 1 when no copy names a station
            state.best,
            acc.decoded.values,
            values_text,
        )
        self._event_keys.append((acc.device, up.time * NS))

    def _wrote(self, key: Key, acc: Accepted, values_text: str, state: Transmission) -> None:
        """Share groups: this transmission's points are in the lines; check them once stored."""
        written = self._written.get(key)
        if written is None:
            self._written[key] = Written(acc, values_text, state, state.count, state.best)
            if len(self._written) > WRITTEN_MAX:
                del self._written[next(iter(self._written))]
                if not self.unchecked:
                    log.warning(
                        "over %d transmissions written and not checked yet (InfluxDB slow or "
                        "away?): the oldest go unchecked by this member",
                        WRITTEN_MAX,
                    )
                self.unchecked += 1
        else:
            written.state, written.count, written.best = state, state.count, state.best
            written.pending += 1
        self._verify_out.append(key)

    def _reject(self, m: Incoming, r: Rejection) -> tuple[PointKey, str]:
        self.metrics.rejected.labels(r.reason).inc()
        log.warning("rejected %s from %r: %s (%d bytes)", r.reason, m.topic, r.detail, len(m.body))
        ts, point = self.stamper.record(
            r.reason, r.device, m.topic, m.body, r.detail, m.received_ns
        )
        if self.events_prefix is not None:
            topic, body = rejected_event(
                self.events_prefix, r.reason, m.topic, r.device, ts, r.detail
            )
            self._events += publish_parts(topic.encode(), body)
            self._event_keys.append(None)
        return point

    async def _next_or_verify(
        self, inbox: asyncio.Queue[list[Incoming] | None]
    ) -> list[Incoming] | None:
        self._verify_due.clear()  # `run` calls this only with nothing to check yet
        get = asyncio.ensure_future(inbox.get())
        due = asyncio.ensure_future(self._verify_due.wait())
        try:
            await asyncio.wait((get, due), return_when=asyncio.FIRST_COMPLETED)
        finally:
            due.cancel()
            if not get.done():
                get.cancel()
        return get.result() if get.done() and not get.cancelled() else []

    async def run(
        self, inbox: asyncio.Queue[list[Incoming] | None], outbox: asyncio.Queue[Processed | None]
    ) -> None:
        while True:
            if self._deferred or self._to_verify:  # retried even when nothing new arrives
                wait = VERIFY_WAIT if self._verify_ready() else DEFERRED_RETRY
                try:
                    messages = await asyncio.wait_for(inbox.get(), wait)
                except TimeoutError:
                    messages = []
            elif self.copies is None:
                messages = await inbox.get()
            else:  # a share group: also woken when a stored batch's points are to be checked
                messages = await self._next_or_verify(inbox)
            if messages is None:  # shutdown: held messages stay unacked with the broker
                break
            processed = await self.process(messages)
            if processed.acks or processed.lines:
                await outbox.put(processed)
        await outbox.put(None)
