"""Per-device sequence gaps, for the `lost` metric (the API derives loss from stored `seq`)."""

from __future__ import annotations

from collections import OrderedDict

from sigfox.sequence import is_newer, lost_between

MAX_DEVICES = 100_000  # bounds memory; a forgotten device just starts counting afresh


class GapCounter:
    """The last sequence number per device; `observe` returns the uplinks lost just before."""

    def __init__(self, max_devices: int = MAX_DEVICES) -> None:
        self.max_devices = max_devices
        self._last: OrderedDict[str, int] = OrderedDict()

    def observe(self, device: str, seq: int) -> int:
        prev = self._last.get(device)
        if prev is None:
            self._last[device] = seq
            self._trim()
            return 0
        if not is_newer(prev, seq):  # a reordered or repeated arrival: not a loss
            return 0
        self._last[device] = seq
        self._last.move_to_end(device)
        return lost_between(prev, seq)

    def _trim(self) -> None:
        if len(self._last) > self.max_devices:
            self._last.popitem(last=False)
