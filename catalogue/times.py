"""Times written as text, the one parser for the API's `start`/`end` and `telemetry redecode`.

The grammar (DESIGN 4): RFC 3339 with a time zone (`2024-05-18T02:40:00Z`, `...+02:00`, up to
nine fraction digits, `T`/`t`/space and `Z`/`z`) or epoch seconds (`1716000000`, `1716000000.25`),
between 1970 and 2255 so that `end + every` arithmetic in int64 nanoseconds never overflows
(InfluxDB stores years 1677..2262). Hand-parsed rather than `datetime.fromisoformat`, which also
reads forms RFC 3339 does not have (`20240518`, a missing zone) and keeps only microseconds.
A failure is a `TimeTextError` whose text completes "<name> ...": each caller wraps it in its own
error (an RFC 9457 problem in the API, a StartupError in `redecode`).
"""

from __future__ import annotations

import functools
import re
from datetime import UTC, datetime

NS = 1_000_000_000  # nanoseconds in a second: InfluxDB's and the API's time unit
MIN_NS = 0
MAX_NS = 9_000_000_000 * NS

_EPOCH_RE = re.compile(r"^(\d{1,11})(?:\.(\d{1,9}))?\Z")
_RFC3339_RE = re.compile(
    r"^(\d{4})-(\d{2})-(\d{2})[Tt ](\d{2}):(\d{2}):(\d{2})(?:\.(\d{1,9}))?"
    r"(?:([Zz])|([+-])(\d{2}):(\d{2}))\Z"
)


class TimeTextError(ValueError):
    """The text is not a time we read; `str()` completes a sentence that starts with its name."""


def parse_time_ns(raw: str) -> int:
    """RFC 3339 (with an offset) or epoch seconds, to integer nanoseconds."""
    text = raw.strip()
    m = _EPOCH_RE.match(text)
    if m:
        ns = int(m.group(1)) * NS + int((m.group(2) or "").ljust(9, "0") or 0)
    else:
        m = _RFC3339_RE.match(text)
        if not m:
            raise TimeTextError("must be RFC 3339 (2024-05-18T02:40:00Z) or epoch seconds")
        year, month, day, hour, minute, second = (int(g) for g in m.groups()[:6])
        try:
            base = datetime(year, month, day, hour, minute, second, tzinfo=UTC)
        except ValueError:
            raise TimeTextError("is not a real date and time") from None
        offset = 0
        if m.group(9):
            hours, minutes = int(m.group(10)), int(m.group(11))
            if hours > 23 or minutes > 59:
                raise TimeTextError("has a bad UTC offset")
            offset = (hours * 60 + minutes) * 60 * (1 if m.group(9) == "+" else -1)
        seconds = int(base.timestamp()) - offset
        ns = seconds * NS + int((m.group(7) or "").ljust(9, "0") or 0)
    if not MIN_NS <= ns < MAX_NS:
        raise TimeTextError("must lie between 1970 and 2255")
    return ns


def format_time(ns: int) -> str:
    """RFC 3339 UTC with Z; a fraction only when the time has one: how the API, the events and
    the status engine write every time."""
    seconds, frac = divmod(ns, NS)
    day, in_day = divmod(seconds, 86_400)
    minutes, sec = divmod(in_day, 60)
    hour, minute = divmod(minutes, 60)
    # strftime per point was the API's largest own cost on big pages; the date part repeats
    text = f"{_date(day)}T{hour:02d}:{minute:02d}:{sec:02d}"
    if frac:
        text += "." + f"{frac:09d}".rstrip("0")
    return text + "Z"


@functools.lru_cache(maxsize=4096)
def _date(day: int) -> str:
    return datetime.fromtimestamp(day * 86_400, UTC).strftime("%Y-%m-%d")
