"""Every device's status for the API, kept in memory and refreshed in the background.

`/v1/fleet` and `/v1/alarms` must answer in well under 200 ms for 10,000 devices, so they never
query InfluxDB: a task of the app's lifespan runs the same `status.tracker.Tracker` and rules as
the ingester's watcher, from the stored uplinks and the recorded `event` points, and keeps the
result here. The API records nothing: the ingester does.

Readings come two ways. The API's one subscription to the events (api/eventbus.py) hands every
`up` event to `observe`, which gives the tracker its uplink time and battery at once; and the
task polls InfluxDB. Every `TELEMETRY_STATUS_POLL_SECONDS` (5 s) it runs the rules (the clock's
`late`/`offline` crossings are local work), with a full poll every 5 min (old times replayed,
changes another process recorded) and an incremental poll (the last 5 min of uplinks, ~0.5 s
of InfluxDB's time for 10,000 devices) either every time or, while the events are followed,
only every `TELEMETRY_STATUS_BACKSTOP_SECONDS` (60 s).

The events are followed while (1) the subscription is up, (2) a poll has run since it was
made (events published before it are lost; the poll reads their points instead), and
(3) an `up` event came in the last EVENTS_QUIET_SECONDS. (3) tells "the ingester publishes no
events" (TELEMETRY_INGEST_EVENTS=false) from "they flow": a fleet where polling costs much sends
`up` events every second (10,000 devices at 10 min are ~17/s), and one quiet for a minute is
small, so polling it every 5 s as before costs little. Otherwise the task polls every 5 s, as
without events: nothing is slower to notice a returning device when the broker is away. The
backstop poll catches the events that are lost while everything looks up (Mosquitto dropping
under back-pressure, an ingester counting its events dropped): such a device is seen within the
backstop, still inside the incremental poll's 5 min window.

`snapshot()` is the shared view (the live page reads it too): device id -> `{"state", "since",
"alarms": [{"kind", "since"}]}`, times in RFC 3339 UTC.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import json
import logging
import math
import time
from collections.abc import AsyncIterator, Callable
from typing import Any

from api.tasks import stop_task
from catalogue import Catalogue
from catalogue.times import TimeTextError, format_time, parse_time_ns
from influx.client import InfluxClient
from influx.errors import InfluxUnavailable, ReaderError
from status.rules import ALARM_KINDS, STATES, Status, state_at
from status.tracker import FULL_POLL_SECONDS, Tracker

log = logging.getLogger(__name__)

# An `up` event's time, read once per distinct text: events come in runs of one second.
_event_time = functools.lru_cache(maxsize=4096)(parse_time_ns)

# No `up` event for this long: take it that the ingester publishes none, and poll every time.
EVENTS_QUIET_SECONDS = 60.0


class StatusCache:
    """The statuses of the last poll, per device, with each device's type."""

    def __init__(
        self,
        catalogue: Catalogue,
        reader: InfluxClient,
        gauges: Callable[[list[dict[str, Any]]], None] | None = None,
        *,
        poll_seconds: float = 5.0,
        backstop_seconds: float = 60.0,
    ) -> None:
        self.catalogue = catalogue
        self.poll_seconds = poll_seconds
        self.backstop_seconds = backstop_seconds
        self.gauges = gauges
        self.tracker = Tracker(catalogue, reader)
        self.loaded = False  # a first poll has completed
        self.error: str | None = None
        self._next_full = 0.0
        # The event subscription's number, 0 while there is none (`follow`), and the number
        # the last incremental poll started under: a new one may have missed events.
        self.subscription: Callable[[], int] = lambda: 0
        self._polled_under = 0
        self._polled_at = -math.inf
        self._last_up = -math.inf  # time.monotonic() of the last `up` event taken
        self.following = False  # the events are followed: incremental polls are a backstop
        self._snapshot: dict[str, dict[str, Any]] = {}
        # `/v1/alarms` (per `type`) and `/v1/fleet` as JSON, made once per change of status
        self._rendered: dict[tuple[str, str | None], bytes] = {}

    def follow(self, subscription: Callable[[], int]) -> None:
        """Follow the `up` events of the subscription whose number `subscription()` gives."""
        self.subscription = subscription

    def observe(self, type_name: str, device: str, doc: dict[str, Any]) -> None:
        """An `up` event's uplink (DESIGN 9) as a reading; a body it cannot read is left to the
        polls, which find its point."""
        if type_name not in self.catalogue or not isinstance(raw := doc.get("time"), str):
            return
        try:
            time_ns = _event_time(raw)
        except TimeTextError:
            return
        battery = None
        field = self.catalogue[type_name].status.battery_field
        values = doc.get("values")
        if field is not None and isinstance(values, dict):
            value = values.get(field)
            if isinstance(value, int | float) and not isinstance(value, bool):
                battery = float(value)
        self.tracker.observe(device, type_name, time_ns, battery)
        self._last_up = time.monotonic()

    def poll_due(self, now: float, subscription: int) -> bool:
        """Whether an incremental poll is due now; updates `following` (module docstring)."""
        following = (
            subscription != 0
            and subscription == self._polled_under
            and now - self._last_up < EVENTS_QUIET_SECONDS
        )
        if following != self.following:
            self.following = following
            every = self.backstop_seconds if following else self.poll_seconds
            log.debug(
                "status cache: following the up events %s, polling every %g s", following, every
            )
        return not following or now - self._polled_at >= self.backstop_seconds

    async def refresh(self) -> None:
        """Poll InfluxDB if due (module docstring) and run the rules; every update is taken at
        once (the API records nothing)."""
        now = time.monotonic()
        full = now >= self._next_full
        subscription = self.subscription()  # before the poll: events after it are received
        now_ns = time.time_ns()
        if self.poll_due(now, subscription) or full:
            await self.tracker.poll(now_ns, full=full)
            self._polled_at, self._polled_under = now, subscription
            log.debug("status cache: %s poll of InfluxDB done", "full" if full else "incremental")
        updates = await self.tracker.updates(now_ns)
        for update in updates:
            self.tracker.commit(update)
            self._snapshot[update.device] = public(update.status)
        if full:
            self._next_full = now + FULL_POLL_SECONDS
        if updates or not self.loaded:
            self._rendered = {}  # answers change only when a status does
            if self.gauges is not None:
                self.gauges(self.fleet())
        self.loaded = True
        self.error = None

    async def run(self) -> None:
        """Poll until cancelled; an InfluxDB failure is logged and the last snapshot kept."""
        while True:
            try:
                await self.refresh()
            except ReaderError as exc:
                if self.error is None:
                    log.warning("status cache: InfluxDB failed, keeping the last view: %s", exc)
                self.error = str(exc)
            except Exception:  # a bug here must not end the task: the view would freeze
                log.exception("status cache: unexpected error")
            await asyncio.sleep(self.poll_seconds)

    def require(self) -> None:
        """Raise 503 (InfluxDB unavailable) while no poll has ever completed."""
        if not self.loaded:
            raise InfluxUnavailable(self.error or "the status of the fleet is being loaded")

    def snapshot(self) -> dict[str, dict[str, Any]]:
        """device -> {"state", "since", "alarms": [{"kind", "since"}]} (RFC 3339 times).

        The cache's own dict, updated in place after each poll: read it, do not change it.
        """
        return self._snapshot

    def rendered(self, what: str, type_name: str | None = None) -> bytes:
        """The body of `/v1/alarms` (`what` "alarms") or `/v1/fleet` ("fleet"), memoised."""
        key = (what, type_name)
        body = self._rendered.get(key)
        if body is None:
            doc = (
                {"alarms": self.alarms(type_name)} if what == "alarms" else {"types": self.fleet()}
            )
            body = self._rendered[key] = json.dumps(doc, separators=(",", ":")).encode()
        return body

    def type_of(self, device: str) -> str | None:
        return self.tracker.types.get(device)

    def of(self, device: str, type_name: str, last_seen_ns: int) -> dict[str, Any]:
        """A device's status; one not polled yet (seen just now) from its newest uplink alone."""
        known = self._snapshot.get(device)
        if known is not None:
            return known
        spec = self.catalogue[type_name].status if type_name in self.catalogue else None
        if spec is None:
            return {"state": "online", "since": format_time(last_seen_ns), "alarms": []}
        state, since = state_at(spec, last_seen_ns, time.time_ns())
        return public(Status(state, since, last_seen_ns))

    def alarms(self, type_name: str | None = None) -> list[dict[str, Any]]:
        """The fleet's active alarms, oldest first."""
        out = []
        for device, status in self.tracker.status.items():
            type_ = self.tracker.types.get(device, "")
            if type_name is not None and type_ != type_name:
                continue
            for kind, since in status.alarms.items():
                out.append((since, device, kind, type_))
        out.sort()
        return [{"device": d, "type": t, "kind": k, "since": format_time(s)} for s, d, k, t in out]

    def fleet(self) -> list[dict[str, Any]]:
        """Per type of the catalogue: devices, devices per state, active alarms per kind."""
        per_type: dict[str, dict[str, Any]] = {
            t.name: {
                "type": t.name,
                "devices": 0,
                "states": dict.fromkeys(STATES, 0),
                "alarms": dict.fromkeys(ALARM_KINDS, 0),
            }
            for t in self.catalogue
        }
        for device, status in self.tracker.status.items():
            entry = per_type.get(self.tracker.types.get(device, ""))
            if entry is None:
                continue
            entry["devices"] += 1
            entry["states"][status.state] += 1
            for kind in status.alarms:
                entry["alarms"][kind] += 1
        return list(per_type.values())


def public(status: Status) -> dict[str, Any]:
    """The API's `status` object."""
    return {
        "state": status.state,
        "since": format_time(status.since_ns),
        "alarms": [{"kind": k, "since": format_time(t)} for k, t in sorted(status.alarms.items())],
    }


@contextlib.asynccontextmanager
async def running(cache: StatusCache) -> AsyncIterator[StatusCache]:
    """The cache's poll task for as long as the app lives; a first poll is tried before serving."""
    with contextlib.suppress(ReaderError, TimeoutError):
        async with asyncio.timeout(5):  # not forever: the API starts with InfluxDB down too
            await cache.refresh()
    task = asyncio.create_task(cache.run())
    try:
        yield cache
    finally:
        await stop_task(task)
