"""Sequence loss per device, folded in incrementally so a device's detail never rescans history.

A device's `lost` is the sum of wrap-aware gaps between consecutive `seq` in time order
(`sigfox.sequence.lost_between`). The first request folds the whole history once; later ones
fold only the points from the newest one already folded (a few, for a live device). A mark is
trusted only while the number of points it covers plus those after it equals the device's
message count: a backfill or a late uplink stored before the mark makes them differ, and the
whole history is folded again.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Sequence
from dataclasses import dataclass

from sigfox.sequence import lost_between

# Devices whose mark is kept; the least recently asked is forgotten first (it costs one full
# fold the next time). 100,000 marks are a few MB.
MAX_DEVICES = 100_000


@dataclass(frozen=True, slots=True)
class LossMark:
    """What is folded so far: up to and including the point at `time_ns`."""

    time_ns: int
    seq: int
    lost: int
    count: int


def advance(mark: LossMark | None, rows: Sequence[tuple[int, int]]) -> LossMark | None:
    """Fold `(time_ns, seq)` rows, in time order, into `mark`.

    With a mark, the rows must start at the mark's own point (a query from `mark.time_ns` on);
    None when they do not (that point was rewritten) or when there is nothing at all.
    """
    if mark is None:
        prev, lost, count, last = None, 0, 0, 0
        rest = rows
    else:
        if not rows or (rows[0][0], rows[0][1]) != (mark.time_ns, mark.seq):
            return None
        prev, lost, count, last = mark.seq, mark.lost, mark.count, mark.time_ns
        rest = rows[1:]
    for time_ns, seq in rest:
        if prev is not None:
            lost += lost_between(prev, seq)
        prev, count, last = seq, count + 1, time_ns
    if prev is None:
        return None
    return LossMark(last, prev, lost, count)


class LossCache:
    """Marks by device, least recently used forgotten first."""

    def __init__(self, max_devices: int = MAX_DEVICES) -> None:
        self.max_devices = max_devices
        self._marks: OrderedDict[str, LossMark] = OrderedDict()

    def get(self, device: str) -> LossMark | None:
        mark = self._marks.get(device)
        if mark is not None:
            self._marks.move_to_end(device)
        return mark

    def put(self, device: str, mark: LossMark) -> None:
        self._marks[device] = mark
        self._marks.move_to_end(device)
        while len(self._marks) > self.max_devices:
            self._marks.popitem(last=False)

    def forget(self, device: str) -> None:
        self._marks.pop(device, None)
