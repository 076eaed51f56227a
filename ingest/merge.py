"""Copies of one transmission (device, seqNumber, time) from several stations become one point.

`stations` counts the distinct stations NAMED by any copy, in `station` or in `duplicates` (a
DATA ADVANCED body has no `station`: its `duplicates` are every station). A copy that names none,
such as a bare DATA callback forwarded beside a DATA ADVANCED one, adds none: it may well be one
of the stations already named. A transmission that no copy names a station for counts 1. The
best station is the named one with the highest RSSI; a copy naming no station lends its RSSI
and SNR only while no station is named (the station that gave them is unknown).

A bounded LRU of recent transmissions keeps the union of stations. After a restart, or once an
entry was evicted, a late copy may miss the cache: the caller then seeds the entry from the stored
`uplink` point (`station_ids` and the best station's values), so it merges as it would have
in the cache, and `stations` never goes down.

The merger also holds the policy of that lookup (`needs_lookup`) and of what waits while
InfluxDB cannot be read (`must_hold`, below the hold horizon); the processor asks it and
awaits the lookup.
"""

from __future__ import annotations

from collections import OrderedDict
from dataclasses import dataclass, field
from typing import NamedTuple

# The station of a copy that names none. Never counted, never stored in `station_ids`; points
# written before counting was by named stations may still hold it there, so `seed` skips it.
UNKNOWN_STATION = "-"

Key = tuple[str, int, int]  # device, seq, time (s)


class Copy(NamedTuple):
    """One station's hearing of a transmission (a named tuple: one or more per uplink)."""

    station: str
    rssi: float | None
    snr: float | None


NO_COPY = Copy(UNKNOWN_STATION, None, None)


@dataclass(slots=True)
class Transmission:
    """The merged state of one transmission."""

    stations: dict[str, Copy] = field(default_factory=dict)  # named stations only
    unnamed: Copy | None = None  # the best copy that named no station

    @property
    def count(self) -> int:
        """`stations` as stored: the named stations, or 1 when none is named."""
        return len(self.stations) or 1

    @property
    def best(self) -> Copy:
        """The highest RSSI (no RSSI ranks last); ties go to the smallest id, for determinism."""
        stations = self.stations
        if len(stations) == 1:  # the common case: one station heard it
            return next(iter(stations.values()))
        if not stations:
            return self.unnamed or NO_COPY
        return min(
            stations.values(),
            key=lambda c: (c.rssi is None, -(c.rssi or 0.0), c.station),
        )

    @property
    def station_ids(self) -> str:
        return ",".join(sorted(self.stations))


def add_copies(state: Transmission, copies: list[Copy]) -> None:
    """Union `copies` into `state`: a station's first copy stays, unless only a later one has
    an RSSI; of the copies naming no station, the one with the highest RSSI."""
    stations = state.stations
    for c in copies:
        if c.station == UNKNOWN_STATION:
            old = state.unnamed
            if old is None or (c.rssi is not None and (old.rssi is None or c.rssi > old.rssi)):
                state.unnamed = c
            continue
        old = stations.get(c.station)
        if old is None or (old.rssi is None and c.rssi is not None):
            stations[c.station] = c


class Merger:
    """Recent transmissions by key, at most `capacity` of them."""

    def __init__(
        self,
        capacity: int = 50_000,
        *,
        known_after: int = -1,
        measured: bool = False,
        hold_horizon: int | None = None,
    ) -> None:
        self.capacity = capacity
        self._cache: OrderedDict[Key, Transmission] = OrderedDict()
        # The newest `time` ever evicted: below it the cache cannot tell "new" from "evicted".
        self.evicted_max_time = -1
        # The cache knows every transmission stamped after `known_after` (one ingester). Only
        # a `measured` one (the newest time stored at start) says which transmissions are
        # surely stored already: it is then the hold horizon. Unmeasured, the caller may still
        # know one (what an earlier run on the same spool folder acked).
        self.known_after = known_after
        self.hold_horizon: int | None = known_after if measured else hold_horizon

    def needs_lookup(self, key: Key) -> bool:
        """Whether the stored point of `key` must be read before merging: a cache miss that
        may be stored already (at or before `known_after`, or evicted from the cache since)."""
        if key in self._cache:
            return False
        return key[2] <= max(self.known_after, self.evicted_max_time)

    def must_hold(self, key: Key) -> bool:
        """Whether a copy of `key` waits, unacked, while InfluxDB cannot be read.

        A transmission at or before the hold horizon was heard before (a copy redelivered
        after a restart): merging it with the cache alone could lower its `stations`. With
        no horizon (InfluxDB unreachable at the first start on a spool folder) copies merge
        with the cache only.
        """
        return self.hold_horizon is not None and key[2] <= self.hold_horizon

    def __contains__(self, key: Key) -> bool:
        return key in self._cache

    def __len__(self) -> int:
        return len(self._cache)

    def merge(self, key: Key, copies: list[Copy]) -> tuple[Transmission, int]:
        """Add copies; returns the state and how much its `count` grew (from 0 when new)."""
        cache = self._cache
        state = cache.get(key)
        if state is None:
            state = cache[key] = Transmission()
            before = 0
            if len(cache) > self.capacity:
                self._evict()
        else:
            cache.move_to_end(key)
            before = len(state.stations) or 1
        add_copies(state, copies)
        return state, (len(state.stations) or 1) - before

    def seed(self, key: Key, station_ids: str, best: Copy) -> None:
        """Union in what is already stored for `key` (ids known; only the best one's values).

        `best` is the stored `station` (or `UNKNOWN_STATION` when the point has none) with the
        stored RSSI and SNR: with no station named, those came from a copy naming none.
        """
        copies = [Copy(s, None, None) for s in station_ids.split(",") if s and s != UNKNOWN_STATION]
        copies.append(best)
        self.merge(key, copies)

    def _evict(self) -> None:
        while len(self._cache) > self.capacity:
            (_device, _seq, when), _ = self._cache.popitem(last=False)
            self.evicted_max_time = max(self.evicted_max_time, when)
