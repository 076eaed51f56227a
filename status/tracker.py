"""Following every device's status from InfluxDB: what the ingester's watcher and the API share.

Each `poll` reads, with a few grouped queries, every device's newest uplink time and latest
battery value: the whole history on a full poll (at start and every few minutes), only the last
few minutes otherwise, so a poll of 10,000 devices reads what changed rather than everything.
A full poll also reads the newest `event` point of each device and kind, the status recorded
before (by this process before a restart, or by another process), and starts from it.

`observe` takes one uplink as a poll would (the API's cache feeds it every `up` event it
receives, api/statuscache.py): only a newer time counts, a battery value only if newer, and the
device is marked for the rules, so a reading is the same whichever way it came.

`updates()` then runs the rules for every device and returns those whose status changed; the
caller commits each one (the watcher after the `event` points are stored, so a failed write is
tried again on the next poll; the API at once, it records nothing).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

from catalogue import Catalogue
from influx import query as q
from influx.client import InfluxClient
from status.rules import Change, Reading, Status, ns, seed, step

log = logging.getLogger(__name__)

# A full poll (all history and the recorded events) this often: uplinks stored with old times
# (a spool replayed, a backfill) and changes another process recorded are taken in.
FULL_POLL_SECONDS = 300.0
# An incremental poll reads uplinks newer than this: wide enough to cover a slow poll or a
# stalled InfluxDB; anything older (a spool replayed, a backfill) is seen by the next full poll.
WINDOW_NS = 300 * 1_000_000_000


@dataclass(frozen=True, slots=True)
class Update:
    """A device whose status changed, with the changes to record, oldest first."""

    device: str
    type: str
    previous: Status
    status: Status
    changes: list[Change]
    # The reading it was computed from: one taken since (`observe` runs while `updates` awaits
    # a query) leaves the device marked for the rules on commit.
    reading: Reading | None = None


class Tracker:
    """Readings, recorded events and the current status of every device seen."""

    def __init__(self, catalogue: Catalogue, reader: InfluxClient) -> None:
        self.catalogue = catalogue
        self.reader = reader
        self.types: dict[str, str] = {}
        self.readings: dict[str, Reading] = {}
        self.status: dict[str, Status] = {}
        self._records: dict[str, dict[str, tuple[str, int]]] = {}
        # Only devices whose reading changed, or whose next crossing has come, need the rules
        # run again: with 10,000 devices that is a few per poll instead of all of them.
        self._dirty: set[str] = set()
        self._due: dict[str, int] = {}

    async def poll(self, now_ns: int, *, full: bool) -> None:
        """Read the newest uplinks and batteries (and, when `full`, the recorded events)."""
        start = None if full else now_ns - WINDOW_NS
        (uplinks,) = await self.reader.query(q.newest_uplinks(start))
        for s in uplinks:
            device, type_name = s.tags.get("device", ""), s.tags.get("type", "")
            if s.values and type_name in self.catalogue:
                self._take_uplink(device, type_name, int(s.values[0][0]))
        for dtype in self.catalogue:
            field_name = dtype.status.battery_field
            if field_name is None:
                continue
            (batteries,) = await self.reader.query(q.latest_values(dtype, field_name, start))
            for s in batteries:
                device = s.tags.get("device", "")
                if s.values and self.types.get(device) == dtype.name:
                    t, value = int(s.values[0][0]), s.values[0][1]
                    if value is not None:
                        self._take_battery(device, t, float(value))
        if full:
            await self._load_records()

    def observe(
        self, device: str, type_name: str, time_ns: int, battery: float | None = None
    ) -> None:
        """One uplink known otherwise than by a poll (an `up` event), taken as a poll takes it.

        `battery` is its value of the type's battery field, None when it has none."""
        if type_name not in self.catalogue:
            return
        self._take_uplink(device, type_name, time_ns)
        if battery is not None and self.types.get(device) == type_name:
            self._take_battery(device, time_ns, battery)

    def _take_uplink(self, device: str, type_name: str, last_ns: int) -> None:
        """A device's newest uplink, when newer than the one known."""
        known = self.readings.get(device)
        if known is None or last_ns > known.last_ns:
            self.types[device] = type_name
            self.readings[device] = Reading(
                last_ns, known.battery if known else None, known.battery_ns if known else 0
            )
            self._dirty.add(device)

    def _take_battery(self, device: str, t: int, value: float) -> None:
        """A known device's battery value at `t`, when newer than the one known."""
        reading = self.readings.get(device)
        if reading is not None and t > reading.battery_ns:
            self.readings[device] = Reading(reading.last_ns, value, t)
            self._dirty.add(device)

    async def _load_records(self) -> None:
        (series,) = await self.reader.query(q.recorded_events())
        records: dict[str, dict[str, tuple[str, int]]] = {}
        for s in series:
            if not s.values:
                continue
            device, kind = s.tags.get("device", ""), s.tags.get("kind", "")
            records.setdefault(device, {})[kind] = (str(s.values[0][1]), int(s.values[0][0]))
        # Start again from what is recorded where it changed (another process, or we, recorded
        # something): the rules give the same answer from there as from our own memory. Where
        # nothing new is recorded our memory stays, so an online device keeps its `since`.
        for device in set(records) | set(self._records):
            if records.get(device) != self._records.get(device):
                self.status.pop(device, None)
        self._records = records
        self._dirty = set(self.readings)

    async def updates(self, now_ns: int) -> list[Update]:
        """Every device whose status changed since the last commit."""
        out: list[Update] = []
        due = [d for d, t in self._due.items() if t < now_ns and d not in self._dirty]
        for device in [*self._dirty, *due]:
            reading = source = self.readings[device]
            spec = self.catalogue[self.types[device]].status
            prev = self.status.get(device)
            if prev is None:
                prev = seed(spec, self._records.get(device, {}), reading)
            if reading.last_ns > prev.last_ns and prev.state != "online":
                reading = await self._with_return(device, reading, prev)
            status, changes = step(spec, prev, reading, now_ns)
            if status != self.status.get(device):
                out.append(Update(device, self.types[device], prev, status, changes, source))
            else:  # nothing new: look again when it next crosses a rule
                self._settle(device, self.types[device], status, source)
        return out

    async def _with_return(self, device: str, reading: Reading, prev: Status) -> Reading:
        """The reading with the time of the first uplink after the silence (not the newest)."""
        (series,) = await self.reader.query(q.first_uplink_after(device, prev.last_ns))
        for s in series:
            if s.values:
                return Reading(
                    reading.last_ns, reading.battery, reading.battery_ns, int(s.values[0][0])
                )
        return reading

    def commit(self, update: Update) -> None:
        """Take `update` as the device's status; its rules run again at its next crossing."""
        self.status[update.device] = update.status
        self._settle(update.device, update.type, update.status, update.reading)

    def _settle(self, device: str, type_name: str, status: Status, reading: Reading | None) -> None:
        if reading is None or self.readings.get(device) is reading:
            self._dirty.discard(device)
        spec = self.catalogue[type_name].status
        if status.state == "online":
            self._due[device] = status.last_ns + ns(spec.late_after)
        elif status.state == "late":
            self._due[device] = status.last_ns + ns(spec.offline_after)
        else:
            self._due.pop(device, None)
