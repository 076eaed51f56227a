"""Copies of one transmission (device, seqNumber, time) from several stations become one point.

A bounded LRU of recent transmissions keeps the union of stations. After a restart, or once an
entry was evicted, a late copy may miss the cache: the caller then seeds the entry from the stored
`uplink` point (`station_ids` and the best station's values), so `stations` never goes down.
"""

from __future__ import annotations

from collections import OrderedDict
from dataclasses import dataclass, field
from typing import NamedTuple

UNKNOWN_STATION = "-"  # a copy without a station id still counts as one station

Key = tuple[str, int, int]  # device, seq, time (s)


class Copy(NamedTuple):
    """One station's hearing of a transmission (a named tuple: one or more per uplink)."""

    station: str
    rssi: float | None
    snr: float | None


@dataclass(slots=True)
class Transmission:
    """The merged state of one transmission."""

    stations: dict[str, Copy] = field(default_factory=dict)

    @property
    def best(self) -> Copy:
        """The highest RSSI (no RSSI ranks last); ties go to the smallest id, for determinism."""
        if len(self.stations) == 1:  # the common case: one station heard it
            return next(iter(self.stations.values()))
        return min(
            self.stations.values(),
            key=lambda c: (c.rssi is None, -(c.rssi or 0.0), c.station),
        )

    @property
    def station_ids(self) -> str:
        return ",".join(sorted(self.stations))


class Merger:
    """Recent transmissions by key, at most `capacity` of them."""

    def __init__(self, capacity: int = 50_000) -> None:
        self.capacity = capacity
        self._cache: OrderedDict[Key, Transmission] = OrderedDict()
        # The newest `time` ever evicted: below it the cache cannot tell "new" from "evicted".
        self.evicted_max_time = -1

    def __contains__(self, key: Key) -> bool:
        return key in self._cache

    def __len__(self) -> int:
        return len(self._cache)

    def merge(self, key: Key, copies: list[Copy]) -> tuple[Transmission, int]:
        """Add copies; returns the state and how many new stations they brought."""
        cache = self._cache
        state = cache.get(key)
        if state is None:
            state = cache[key] = Transmission()
            if len(cache) > self.capacity:
                self._evict()
        else:
            cache.move_to_end(key)
        stations = state.stations
        before = len(stations)
        for c in copies:  # a station's first copy stays, unless only a later one has an RSSI
            old = stations.get(c.station)
            if old is None or (old.rssi is None and c.rssi is not None):
                stations[c.station] = c
        return state, len(stations) - before

    def seed(self, key: Key, station_ids: str, best: Copy) -> None:
        """Union in what is already stored for `key` (ids known; only the best one's values)."""
        copies = [Copy(s, None, None) for s in station_ids.split(",") if s]
        copies.append(best)
        self.merge(key, copies)

    def _evict(self) -> None:
        while len(self._cache) > self.capacity:
            (_device, _seq, when), _ = self._cache.popitem(last=False)
            self.evicted_max_time = max(self.evicted_max_time, when)
