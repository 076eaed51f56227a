"""The status watcher: notices silence and low batteries, records each change once, announces it.

It runs inside `telemetry ingest` (the API's MQTT account may only publish uplinks, so the
ingester is the process that can announce). Every `TELEMETRY_STATUS_POLL_SECONDS` (5 s) it
polls InfluxDB through `status.tracker.Tracker`, runs the rules of `status.rules`, and for every
change:

1. writes one point in `event` at the change's crossing time: a second ingester noticing the
   same change writes the same point, which InfluxDB stores once;
2. then emits the `status` event of DESIGN section 9 through `emit(topic, payload)`, which must
   not block (it queues for the MQTT client).

A change is committed to memory only once its points are stored: a failed write is tried again
on the next poll, so a change is never lost and never announced before it is recorded.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
from collections import Counter
from collections.abc import Callable, Iterable

from catalogue import Catalogue
from catalogue.times import format_time
from influx.client import InfluxClient
from influx.errors import ReaderError, WriteError
from influx.lineprotocol import encode_point
from influx.schema import EVENT, TAG_DEVICE, TAG_KIND, TAG_TYPE
from status.rules import ALARM_KINDS, STATES, Status, moments
from status.tracker import FULL_POLL_SECONDS, Tracker, Update

log = logging.getLogger(__name__)

Emit = Callable[[str, bytes], None]


def log_emit(topic: str, payload: bytes) -> None:
    """The stand-in until ingest publishes events over MQTT: the event, at DEBUG."""
    log.debug("status event %s %s", topic, payload.decode())


def event_lines(update: Update) -> list[str]:
    """One `event` point per change (tags device, type, kind; fields state, previous, detail)."""
    return [
        encode_point(
            EVENT,
            {TAG_DEVICE: update.device, TAG_TYPE: update.type, TAG_KIND: c.kind},
            {"state": c.state, "previous": c.previous, "detail": c.detail},
            c.time_ns,
        )
        for c in update.changes
    ]


def status_events(prefix: str, update: Update) -> list[tuple[str, bytes]]:
    """The `status` events of DESIGN section 9, one per instant at which something changed."""
    topic = f"{prefix}/{update.type}/{update.device}/status"
    out = []
    for m in moments(update.previous, update.changes):
        body = {
            "device": update.device,
            "type": update.type,
            "time": format_time(m.time_ns),
            "state": m.state,
            "previous": m.previous,
            "alarms": [{"kind": k, "since": format_time(t)} for k, t in sorted(m.alarms.items())],
        }
        out.append((topic, json.dumps(body, separators=(",", ":")).encode()))
    return out


class StatusWatcher:
    """Polls, records and announces; `gauges` (if given) gets counts per state and alarm kind."""

    def __init__(
        self,
        catalogue: Catalogue,
        influx: InfluxClient,
        emit: Emit,
        *,
        events_prefix: str,
        gauges: Callable[[dict[str, int], dict[str, int]], None] | None = None,
        poll_seconds: float = 5.0,
        caught_up: Callable[[], bool] = lambda: True,
    ) -> None:
        self.tracker = Tracker(catalogue, influx)
        self.influx = influx
        self.emit = emit
        self.prefix = events_prefix
        self.gauges = gauges
        self.poll_seconds = poll_seconds
        # Whether InfluxDB holds every uplink received so far (ingest/service.py): until it
        # does, the watcher neither polls nor runs the rules.
        self.caught_up = caught_up
        self._next_full = 0.0
        self._behind_logged = False

    async def run(self, stop: asyncio.Event) -> None:
        """Until `stop`: poll, record, announce. InfluxDB failures are logged and retried."""
        failing = False
        while not stop.is_set():
            try:
                if not self._behind():
                    await self.once()
            except (ReaderError, WriteError) as exc:
                if not failing:  # one line per outage, not one per poll
                    log.warning("status watcher: InfluxDB failed, retrying quietly: %s", exc)
                failing = True
            except Exception:  # a bug here must not stop uplinks being stored
                log.exception("status watcher: unexpected error, retrying")
            else:
                if failing:
                    log.info("status watcher: InfluxDB answers again")
                failing = False
            try:
                async with asyncio.timeout(self.poll_seconds):
                    await stop.wait()
            except TimeoutError:
                pass

    def _behind(self) -> bool:
        """Whether to skip this poll: uplinks received may not all be in InfluxDB yet."""
        behind = not self.caught_up()
        if behind and not self._behind_logged:
            log.info("status watcher: waiting until the uplinks received are stored")
        self._behind_logged = behind
        return behind

    async def once(self) -> int:
        """One poll; returns the number of changes recorded."""
        now = time.monotonic()
        full = now >= self._next_full
        now_ns = time.time_ns()
        await self.tracker.poll(now_ns, full=full)
        if full:
            self._next_full = now + FULL_POLL_SECONDS
        recorded = 0
        for update in await self.tracker.updates(now_ns):
            lines = event_lines(update)
            if lines:
                refused = await self.influx.write(lines)
                for r in refused:  # our own lines: a bug, never retried forever
                    log.error("event point refused by InfluxDB: %s: %r", r.message, r.line)
                for c in update.changes:
                    log.info(
                        "device %s (%s): %s %s (was %s) at %s",
                        update.device,
                        update.type,
                        c.kind,
                        c.state,
                        c.previous,
                        format_time(c.time_ns),
                    )
            self.tracker.commit(update)
            for topic, payload in status_events(self.prefix, update):
                self.emit(topic, payload)
            recorded += len(update.changes)
        states, alarms = counts(self.tracker.status.values())
        if self.gauges is not None:
            self.gauges(states, alarms)
        if full:  # one line every few minutes; tests also wait for it after a restart
            log.info("status watcher: full poll done, devices %s, alarms %s", states, alarms)
        return recorded


def counts(statuses: Iterable[Status]) -> tuple[dict[str, int], dict[str, int]]:
    """Devices per state and active alarms per kind, every state and kind present (zero too)."""
    states: Counter[str] = Counter(dict.fromkeys(STATES, 0))
    alarms: Counter[str] = Counter(dict.fromkeys(ALARM_KINDS, 0))
    for status in statuses:
        states[status.state] += 1
        for kind in status.alarms:
            alarms[kind] += 1
    return dict(states), dict(alarms)
