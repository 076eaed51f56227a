"""The status rules: a device's state and alarms from its newest uplink, its battery and the clock.

Pure: no I/O, no clock of its own. The ingester's watcher (which records every change) and the
API's cache (which shows the status) both run `step`, so they cannot disagree.

| state     | newest uplink's `time`               | `since`                          |
| --------- | ------------------------------------ | -------------------------------- |
| `online`  | at most two intervals ago            | the uplink that ended a silence  |
| `late`    | more than two intervals ago          | last uplink + 2 intervals        |
| `offline` | more than `offline_after` ago        | last uplink + `offline_after`    |

Alarms: `offline` (raised with the state, cleared by the next uplink) and `battery_low` (raised
by the uplink whose battery is at or below `battery_low`, cleared by the first one above).

Every change carries the moment the rule was crossed, never the moment it was noticed: two
processes noticing the same change compute the same time, so the `event` point they write is
the same point (InfluxDB keys a point by measurement, tags and time) and is stored once.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import Literal

from catalogue.devicetype import StatusSpec
from catalogue.times import NS, format_time

State = Literal["online", "late", "offline"]
STATES: tuple[State, ...] = ("online", "late", "offline")
ALARM_KINDS = ("offline", "battery_low")
STATE_KIND = "state"  # the `kind` tag of a change of state
RAISED, CLEARED = "raised", "cleared"


def ns(seconds: float) -> int:
    """Seconds to integer nanoseconds, the one conversion every crossing time goes through."""
    return round(seconds * NS)


@dataclass(frozen=True, slots=True)
class Status:
    """What is known of a device: its state since when, its active alarms, its newest uplink."""

    state: State
    since_ns: int
    last_ns: int  # the newest uplink's time this status was computed from
    alarms: dict[str, int] = field(default_factory=dict)  # kind -> since (ns)


@dataclass(frozen=True, slots=True)
class Change:
    """One change, as one `event` point: `kind` is `state` or an alarm kind."""

    kind: str
    state: str  # the new state, or `raised` / `cleared`
    previous: str  # the old state, or the alarm's old condition
    time_ns: int  # when the rule was crossed
    detail: str


@dataclass(frozen=True, slots=True)
class Reading:
    """What storage says of a device now."""

    last_ns: int  # newest uplink's `time`
    battery: float | None = None  # the latest battery value (None: none, or no battery field)
    battery_ns: int = 0  # the time of that value
    returned_ns: int | None = None  # first uplink after `Status.last_ns`, when the caller knows it


def state_at(spec: StatusSpec, last_ns: int, now_ns: int) -> tuple[State, int]:
    """The state from the newest uplink's time and the clock, and when it began if not online."""
    offline_at = last_ns + ns(spec.offline_after)
    late_at = last_ns + ns(spec.late_after)
    if now_ns > offline_at:
        return "offline", offline_at
    if now_ns > late_at:
        return "late", late_at
    return "online", last_ns


def battery_low(spec: StatusSpec, value: float | None) -> bool:
    return spec.battery_field is not None and value is not None and value <= spec.battery_low


def initial(reading: Reading) -> Status:
    """A device never recorded: online from its newest uplink (being heard is the baseline)."""
    return Status("online", reading.last_ns, reading.last_ns)


def step(
    spec: StatusSpec, prev: Status | None, reading: Reading, now_ns: int
) -> tuple[Status, list[Change]]:
    """The status now and every change since `prev`, oldest first, each at its crossing time."""
    cur = prev if prev is not None else initial(reading)
    changes: list[Change] = []
    alarms = dict(cur.alarms)
    if reading.last_ns > cur.last_ns and cur.state != "online":
        # an uplink ended the silence: the first one after it, when the caller found it
        back = reading.returned_ns if reading.returned_ns is not None else reading.last_ns
        # Never at the very instant the silence was declared: an uplink stamped that same
        # second (it arrived just after we looked) would overwrite that change's point.
        back = max(min(max(back, cur.last_ns + 1), reading.last_ns), cur.since_ns + 1)
        changes.append(Change(STATE_KIND, "online", cur.state, back, "uplink received"))
        if "offline" in alarms:
            del alarms["offline"]
            changes.append(Change("offline", CLEARED, RAISED, back, "uplink received"))
        cur = Status("online", back, reading.last_ns, alarms)
    state, crossed = state_at(spec, reading.last_ns, now_ns)
    last_text = format_time(reading.last_ns)
    if state != "online" and cur.state == "online":
        late_at = reading.last_ns + ns(spec.late_after)
        detail = f"no uplink since {last_text}: two intervals of {spec.interval:g} s passed"
        changes.append(Change(STATE_KIND, "late", "online", late_at, detail))
        cur = Status("late", late_at, reading.last_ns, alarms)
    if state == "offline" and cur.state == "late":
        detail = f"no uplink since {last_text}: offline after {spec.offline_after:g} s"
        changes.append(Change(STATE_KIND, "offline", "late", crossed, detail))
        if "offline" not in alarms:
            alarms["offline"] = crossed
            changes.append(Change("offline", RAISED, CLEARED, crossed, detail))
        cur = Status("offline", crossed, reading.last_ns, alarms)
    low = battery_low(spec, reading.battery)
    if low != ("battery_low" in alarms) and reading.battery_ns:
        when = max(reading.battery_ns, 1)
        detail = f"{spec.battery_field} {reading.battery:g}, alarm at or below {spec.battery_low:g}"
        if low:
            alarms["battery_low"] = when
            changes.append(Change("battery_low", RAISED, CLEARED, when, detail))
        else:
            del alarms["battery_low"]
            changes.append(Change("battery_low", CLEARED, RAISED, when, detail))
    cur = replace(cur, last_ns=max(cur.last_ns, reading.last_ns), alarms=alarms)
    changes.sort(key=lambda c: c.time_ns)  # stable: a state change stays before its alarm
    return cur, changes


def recorded(spec: StatusSpec, last: dict[str, tuple[str, int]]) -> Status | None:
    """The status the `event` points left, from the newest point of each kind (state, time).

    The newest uplink behind a recorded `late`/`offline` is its crossing time less the rule's
    span (exact: both are integer nanoseconds from `ns`); behind `online`, the returning uplink.
    None when no change of state was ever recorded.
    """
    entry = last.get(STATE_KIND)
    if entry is None or entry[0] not in STATES:
        return None
    state_name, since = entry
    if state_name == "late":
        last_ns = since - ns(spec.late_after)
    elif state_name == "offline":
        last_ns = since - ns(spec.offline_after)
    else:
        last_ns = since
    return Status(_as_state(state_name), since, last_ns, _raised(last))


def _raised(last: dict[str, tuple[str, int]]) -> dict[str, int]:
    """The alarms whose last record is `raised`, with when they were raised."""
    return {k: t for k, (s, t) in last.items() if k in ALARM_KINDS and s == RAISED}


def seed(spec: StatusSpec, last: dict[str, tuple[str, int]], reading: Reading) -> Status:
    """`recorded`, or for a device with only alarms recorded, its baseline with those alarms."""
    status = recorded(spec, last)
    if status is not None:
        return status
    return replace(initial(reading), alarms=_raised(last))


@dataclass(frozen=True, slots=True)
class Moment:
    """The status after the changes of one instant: one `status` event of DESIGN section 9."""

    time_ns: int
    state: State
    previous: State
    alarms: dict[str, int]


def moments(prev: Status, changes: list[Change]) -> list[Moment]:
    """Group `changes` (oldest first) by instant, with the state and alarms after each."""
    out: list[Moment] = []
    state: State = prev.state
    alarms = dict(prev.alarms)
    i = 0
    while i < len(changes):
        t = changes[i].time_ns
        before = state
        while i < len(changes) and changes[i].time_ns == t:
            c = changes[i]
            if c.kind == STATE_KIND:
                state = _as_state(c.state)
            elif c.state == RAISED:
                alarms[c.kind] = t
            else:
                alarms.pop(c.kind, None)
            i += 1
        out.append(Moment(t, state, before, dict(alarms)))
    return out


def _as_state(name: str) -> State:
    for s in STATES:
        if s == name:
            return s
    raise ValueError(f"not a state: {name!r}")
