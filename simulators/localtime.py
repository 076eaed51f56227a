"""Local time of the simulated homes: rhythms follow Toulouse's clock (demo stand), pure of `t`."""

from __future__ import annotations

import functools
from datetime import datetime, timedelta, timezone, tzinfo
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

DAY = 86400.0

# The demo is in Toulouse; Grafana shows the visitor's local time, so sleep and meals must
# happen at local hours. Without tz data, Central European Time without DST is close enough.
try:
    HOME_TZ: tzinfo = ZoneInfo("Europe/Paris")
except ZoneInfoNotFoundError:  # pragma: no cover - depends on the host's tz data
    HOME_TZ = timezone(timedelta(hours=1))


def utc_offset(t: float) -> float:
    """Seconds to add to epoch `t` to get local wall-clock seconds."""
    return _offset_in_hour(int(t // 3600))


@functools.lru_cache(maxsize=4096)  # models ask many times per hour; offsets change on the hour
def _offset_in_hour(hour: int) -> float:
    offset = datetime.fromtimestamp(hour * 3600, HOME_TZ).utcoffset()
    return offset.total_seconds() if offset is not None else 0.0


def local(t: float) -> tuple[int, float]:
    """(local day number since the epoch, seconds since local midnight) for epoch `t`."""
    lt = t + utc_offset(t)
    day = int(lt // DAY)
    return day, lt - day * DAY


def local_midnight(day: int) -> float:
    """Epoch seconds of local midnight starting local day `day`."""
    guess = day * DAY
    return guess - utc_offset(guess - 3600.0 * 3)


def weekday(day: int) -> int:
    """0 Monday .. 6 Sunday for a local day number (1970-01-01 was a Thursday)."""
    return (day + 3) % 7
