"""The simulation modes: backfill, live (real time or sped up) and load, over any sink and clock.

Kept apart from MQTT and the real clock so that tests can drive it with a recorded sink and a
fake clock. Timestamps: a backfilled uplink carries its historical time; a live or load uplink
carries the wall clock when it is published, never a time ahead of it, and never the same second
twice for one device (the `time` key is in seconds).
"""

from __future__ import annotations

import heapq
import math
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Protocol

from sigfox.topics import uplink_topic
from simulators.fleet import Device, Transmission, bodies, transmit
from simulators.schedule import speed_cap

MIN_SECONDS_PER_DEVICE = 2.0  # load mode: each device sends at most every 2 s (1 s is the floor)


class Sink(Protocol):
    def publish(self, topic: str, payload: bytes, stop: threading.Event) -> bool: ...


class Clock(Protocol):
    def now(self) -> float: ...

    def wait_until(self, t: float, stop: threading.Event) -> bool:
        """Sleep until wall time `t`; False when `stop` was set first."""
        ...


class WallClock:
    def now(self) -> float:
        return time.time()

    def wait_until(self, t: float, stop: threading.Event) -> bool:
        while (left := t - time.time()) > 0:
            if stop.wait(min(left, 0.5)):
                return False
        return not stop.is_set()


@dataclass
class Counts:
    """What a run did: transmissions made, lost on the radio, uplinks heard, messages sent."""

    transmissions: int = 0
    lost: int = 0
    uplinks: int = 0
    messages: int = 0
    per_type: dict[str, int] = field(default_factory=dict)


Progress = Callable[[int, int], None]
# The bodies of one transmission: MQTT uplinks (one per station) or Sigfox callbacks.
Shape = Callable[[Transmission, int], list[bytes]]


class Runner:
    """Publishes a fleet's uplinks to `sink` under `prefix`; `stop` ends any mode early."""

    def __init__(  # noqa: PLR0917  # the parts of a run
        self,
        fleet: list[Device],
        prefix: str,
        sink: Sink,
        clock: Clock,
        stop: threading.Event,
        shape: Shape = bodies,
    ) -> None:
        self.fleet = fleet
        self.shape = shape
        self.prefix = prefix
        self.sink = sink
        self.clock = clock
        self.stop = stop
        self.counts = Counts()
        self._last_stamp: dict[str, int] = {}
        # `--silent`: these devices send nothing from wall time `silent_at` on
        self.silent: frozenset[str] = frozenset()
        self.silent_at: float | None = None

    def _silenced(self, device: Device, due: float) -> bool:
        return (
            self.silent_at is not None and due >= self.silent_at and device.device_id in self.silent
        )

    # --- one transmission -------------------------------------------------------------------
    def emit(self, tx: Transmission, stamp: int) -> bool:
        """Publish every station's copy of `tx`, stamped `stamp`; False when stopped."""
        c = self.counts
        c.transmissions += 1
        self._last_stamp[tx.device.device_id] = stamp
        if not tx.receptions:
            c.lost += 1
            return True
        topic = uplink_topic(self.prefix, tx.device.dtype.name, tx.device.device_id)
        for body in self.shape(tx, stamp):
            if not self.sink.publish(topic, body, self.stop):
                return False
            c.messages += 1
        c.uplinks += 1
        c.per_type[tx.device.dtype.name] = c.per_type.get(tx.device.dtype.name, 0) + 1
        return True

    # --- backfill ---------------------------------------------------------------------------
    def backfill(self, start: float, progress: Progress | None = None) -> float:
        """History from `start` up to now with historical times; repeated until caught up.

        Returns the wall time the history ends at, where live modes take over.
        """
        end = self.clock.now()
        total = self._slots_between(start, end)
        done = 0
        while not self.stop.is_set():
            for tx in self._history(start, end):
                if not self.emit(tx, math.floor(tx.device_time)):
                    return end
                done += 1
                if progress is not None and done % 200 == 0:
                    progress(done, total)
            start, end = end, self.clock.now()
            if end - start < 1.0:  # caught up: what is left belongs to the live mode
                break
            total += self._slots_between(start, end)
        if progress is not None:
            progress(done, total)
        return start

    def _slots_between(self, start: float, end: float) -> int:
        return sum(d.schedule.first_after(end) - d.schedule.first_after(start) for d in self.fleet)

    def _history(self, start: float, end: float) -> Iterator[Transmission]:
        """Every transmission with a time in (start, end], oldest first across the fleet."""

        def one(device: Device) -> Iterator[tuple[float, int, Device]]:
            k = device.schedule.first_after(start)
            while (t := device.schedule.slot_time(k)) <= end:
                yield t, k, device
                k += 1

        for t, k, device in heapq.merge(*(one(d) for d in self.fleet), key=lambda x: x[0]):
            yield transmit(device, k, t)

    # --- live, real time or sped up ---------------------------------------------------------
    def live(self, t0: float, speed: float, until: float | None) -> None:
        """Devices run `speed` times faster than the wall clock (capped per device) from `t0`."""
        speeds = [min(speed, float(speed_cap(d.schedule))) for d in self.fleet]
        heap: list[tuple[float, int, int]] = []
        for i, d in enumerate(self.fleet):
            k = d.schedule.first_after(t0)
            heap.append((t0 + (d.schedule.slot_time(k) - t0) / speeds[i], i, k))
        heapq.heapify(heap)
        while heap:
            due, i, k = heapq.heappop(heap)
            if not self._wait(due, until):
                return
            device = self.fleet[i]
            if self._silenced(device, due):
                continue  # out of the heap: it never sends again
            stamp = self._stamp(device)
            if stamp is None:  # this device already sent this second: try again next second
                heapq.heappush(heap, (math.floor(self.clock.now()) + 1.0, i, k))
                continue
            if not self.emit(transmit(device, k), stamp):
                return
            next_time = device.schedule.slot_time(k + 1)
            heapq.heappush(heap, (t0 + (next_time - t0) / speeds[i], i, k + 1))

    # --- load -------------------------------------------------------------------------------
    def load(self, t0: float, rate: float, until: float | None) -> None:
        """`rate` transmissions a second in all, round-robin over the fleet; each device steps
        through its own slots, so sequence numbers and rhythms stay realistic, only faster."""
        ks = [d.schedule.first_after(t0) for d in self.fleet]
        n = 0
        while True:
            i = n % len(self.fleet)
            if not self._wait(t0 + n / rate, until):
                return
            device = self.fleet[i]
            if self._silenced(device, t0 + n / rate):
                n += 1  # its turn passes to the next device
                continue
            stamp = self._stamp(device)
            if stamp is None:
                if not self._wait(math.floor(self.clock.now()) + 1.0, until):
                    return
                continue
            if not self.emit(transmit(device, ks[i]), stamp):
                return
            ks[i] += 1
            n += 1

    # --- helpers ----------------------------------------------------------------------------
    def _wait(self, due: float, until: float | None) -> bool:
        if until is not None and due >= until:
            self.clock.wait_until(until, self.stop)
            return False
        return self.clock.wait_until(due, self.stop)

    def _stamp(self, device: Device) -> int | None:
        """The wall clock in whole seconds (so never ahead of it), unless already used."""
        stamp = math.floor(self.clock.now())
        if stamp <= self._last_stamp.get(device.device_id, -1):
            return None
        return stamp


def devices_for_rate(rate: float) -> int:
    """How many devices a load of `rate` transmissions a second needs in all."""
    return math.ceil(rate * MIN_SECONDS_PER_DEVICE)


def capped_speeds(fleet: list[Device], speed: float) -> dict[str, int]:
    """Per type, the speed-up cap when `speed` exceeds it (empty: no device is capped)."""
    caps: dict[str, int] = {}
    for d in fleet:
        cap = speed_cap(d.schedule)
        if speed > cap:
            caps[d.dtype.name] = min(cap, caps.get(d.dtype.name, cap))
    return caps


def misbehaving(
    fleet: list[Device], silent: int, low_battery: int
) -> tuple[list[Device], list[Device]]:
    """The devices that go silent (the last `silent`) and those whose battery drains (the first
    `low_battery` with a battery field, never a silent one); deterministic for a seed."""
    loud = max(0, len(fleet) - silent)  # more silent than devices (`--rate` sized it): all
    quiet = fleet[loud:]
    draining = [d for d in fleet[:loud] if d.dtype.status.battery_field][:low_battery]
    return quiet, draining
