"""Every device's status for the API, kept in memory and refreshed in the background.

`/v1/fleet` and `/v1/alarms` must answer in well under 200 ms for 10,000 devices, so they never
query InfluxDB: a task of the app's lifespan polls it (every `TELEMETRY_STATUS_POLL_SECONDS`,
5 s) with the same `status.tracker.Tracker` and rules as the ingester's watcher, from the recorded
`event` points, and keeps the result here. The API records nothing: the ingester does.

`snapshot()` is the shared view (the live page reads it too): device id -> `{"state", "since",
"alarms": [{"kind", "since"}]}`, times in RFC 3339 UTC.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import time
from collections.abc import AsyncIterator, Callable
from typing import Any

from api.tasks import stop_task
from catalogue import Catalogue
from catalogue.times import format_time
from influx.client import InfluxClient
from influx.errors import InfluxUnavailable, ReaderError
from status.rules import ALARM_KINDS, STATES, Status, state_at
from status.tracker import FULL_POLL_SECONDS, Tracker

log = logging.getLogger(__name__)


class StatusCache:
    """The statuses of the last poll, per device, with each device's type."""

    def __init__(
        self,
        catalogue: Catalogue,
        reader: InfluxClient,
        gauges: Callable[[list[dict[str, Any]]], None] | None = None,
        *,
        poll_seconds: float = 5.0,
    ) -> None:
        self.catalogue = catalogue
        self.poll_seconds = poll_seconds
        self.gauges = gauges
        self.tracker = Tracker(catalogue, reader)
        self.loaded = False  # a first poll has completed
        self.error: str | None = None
        self._next_full = 0.0
        self._snapshot: dict[str, dict[str, Any]] = {}
        # `/v1/alarms` (per `type`) and `/v1/fleet` as JSON, made once per change of status
        self._rendered: dict[tuple[str, str | None], bytes] = {}

    async def refresh(self) -> None:
        """One poll of InfluxDB; every update is taken at once (the API records nothing)."""
        now = time.monotonic()
        full = now >= self._next_full
        now_ns = time.time_ns()
        await self.tracker.poll(now_ns, full=full)
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
