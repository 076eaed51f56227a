"""When each device sends: uplink slots in device time, at most 140 a day, and the speed cap.

A device's uplinks are numbered by slot `k` (its sequence counter follows `k`), and slot `k`
happens at `slot_time(k)`, a pure function; so backfill and live modes agree on every uplink.
"""

from __future__ import annotations

import itertools
import math
from dataclasses import dataclass
from typing import Protocol

from simulators.localtime import DAY, local, local_midnight
from simulators.noise import key_of, signed, unit

# Seconds between uplinks, per type. Each stays under 140/day even with jitter: a 24 h window
# holds at most DAY/period + 1 slots.
PERIODS = {
    "wristband": 620.0,  # ~139/day: an activity tracker uses the whole Sigfox allowance
    "weather_station": 900.0,  # 96/day: every quarter hour
    "plant_sensor": 1800.0,  # 48/day: soil changes slowly
}
GENERIC_PERIOD = 900.0  # a type added as a file: every quarter hour at most...
# ...and at most 0.6 of its catalogue `interval`: with the jitter and one lost uplink the gap
# stays under two intervals (2 x 0.6 + 0.15 = 1.35), so its devices are `online` (DESIGN 10).
GENERIC_SHARE = 0.6
JITTER = 0.25  # a slot may start up to a quarter period late: devices are not in lockstep

# Bathroom scale: it only speaks when someone steps on it, around these local hours (seconds).
WEIGH_INS = (7.0 * 3600, 13.0 * 3600, 21.0 * 3600)
WEIGH_IN_SPREAD = 45.0 * 60  # +- 45 min around each


class Schedule(Protocol):
    @property
    def min_gap(self) -> float:
        """The shortest time between two consecutive slots, in device seconds."""
        ...

    @property
    def mean_gap(self) -> float:
        """The usual time between two slots, in device seconds."""
        ...

    def slot_time(self, k: int) -> float: ...

    def first_after(self, t: float) -> int: ...


@dataclass(frozen=True, slots=True)
class Periodic:
    """One uplink every `period` seconds, each slot starting a little late by a random amount."""

    key: int
    period: float
    phase: float

    @property
    def min_gap(self) -> float:
        return self.period * (1.0 - JITTER)

    @property
    def mean_gap(self) -> float:
        return self.period

    def slot_time(self, k: int) -> float:
        return self.phase + k * self.period + unit(self.key, k) * JITTER * self.period

    def first_after(self, t: float) -> int:
        k = math.floor((t - self.phase) / self.period) - 1
        while self.slot_time(k) <= t:
            k += 1
        return k


@dataclass(frozen=True, slots=True)
class Daily:
    """`per_day` uplinks a day around fixed local hours (a scale's weigh-ins)."""

    key: int
    per_day: int

    @property
    def hours(self) -> tuple[float, ...]:
        # two weigh-ins: morning and evening; three: add lunch time
        return (WEIGH_INS[0], WEIGH_INS[2]) if self.per_day == 2 else WEIGH_INS[: self.per_day]

    @property
    def min_gap(self) -> float:
        hours = self.hours
        gaps = [b - a for a, b in itertools.pairwise(hours)]
        gaps.append(DAY - hours[-1] + hours[0])
        return min(gaps) - 2 * WEIGH_IN_SPREAD - 3600.0  # an hour's slack for DST days

    @property
    def mean_gap(self) -> float:
        return DAY / self.per_day

    def slot_time(self, k: int) -> float:
        day, j = divmod(k, self.per_day)
        return local_midnight(day) + self.hours[j] + signed(self.key, k) * WEIGH_IN_SPREAD

    def first_after(self, t: float) -> int:
        day, _ = local(t)
        k = (day - 1) * self.per_day
        while self.slot_time(k) <= t:
            k += 1
        return k


def generic_period(interval: float) -> float:
    """The period of a type added as a file, from its catalogue `interval` (seconds)."""
    return max(1.0, min(GENERIC_PERIOD, GENERIC_SHARE * interval))


def schedule_for(type_name: str, seed: int, device_id: str, interval: float) -> Schedule:
    """A device's schedule; `interval` (its type's `[status]` interval, s) sets an added type's
    period."""
    key = key_of(seed, "schedule", type_name, device_id)
    if type_name == "scale":
        return Daily(key, 2 + int(unit(key, -1) * 2))  # 2 or 3 weigh-ins a day
    period = PERIODS.get(type_name) or generic_period(interval)
    return Periodic(key, period, unit(key, -2) * period)


def speed_cap(schedule: Schedule) -> int:
    """The largest speed-up at which two uplinks of a device are at least a second apart."""
    return max(1, math.floor(schedule.min_gap))
