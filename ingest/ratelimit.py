"""A token bucket per device: `burst` uplinks back to back, then `per_hour` sustained."""

from __future__ import annotations

from collections import OrderedDict

# Devices remembered; a forgotten device starts again with a full bucket, which is what an idle
# one would have anyway. Bounds memory under a flood of forged device ids.
MAX_DEVICES = 100_000


class RateLimiter:
    """`allow(device, now)` takes one token; the clock is a parameter, in seconds.

    Ingest passes the uplink's `time`, so the rate is that of the device's own history (a
    backfill passes) and time running backwards refills nothing. The future-time check bounds
    how far a device can push its clock ahead to refill its bucket.
    """

    def __init__(self, burst: int, per_hour: float, max_devices: int = MAX_DEVICES) -> None:
        self.burst = float(burst)
        self.rate = per_hour / 3600.0
        self.max_devices = max_devices
        self._buckets: OrderedDict[str, tuple[float, float]] = OrderedDict()  # tokens, at

    def allow(self, device: str, now: float) -> bool:
        tokens, at = self._buckets.pop(device, (self.burst, now))
        tokens = min(self.burst, tokens + max(0.0, now - at) * self.rate)
        allowed = tokens >= 1.0
        if allowed:
            tokens -= 1.0
        self._buckets[device] = (tokens, now)
        if len(self._buckets) > self.max_devices:
            self._buckets.popitem(last=False)
        return allowed
