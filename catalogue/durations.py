"""Durations written as text, the one parser for the whole project.

Two grammars over one table of units, because two contracts use them:
- `parse_seconds`: the catalogue's cadences, the simulators' `--backfill`/`--duration` flags and
  `telemetry dev --backfill`: `90`, `30s`, `10m`, `2h`, `7d` (a fraction allowed, a bare number is
  seconds);
- `parse_influxql_ns`: the API's `every` (DESIGN 4), InfluxQL-style: an integer and a unit
  `s m h d w`, nothing else (`30s`, `5m`, `1w`), so it can be passed on to a GROUP BY unchanged.
Both answer None for text they cannot read; each caller raises its own error (an RFC 9457
problem in the API, a click usage error in `simulate`, a StartupError in `telemetry dev`).
"""

from __future__ import annotations

import re

HINT = "a duration such as 30s, 10m, 2h or 7d"  # the words every caller's error uses

_SECONDS = {"": 1, "s": 1, "m": 60, "h": 3600, "d": 86400, "w": 7 * 86400}
_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([smhd]?)\s*\Z")
_INFLUXQL = re.compile(r"^(\d{1,9})(s|m|h|d|w)\Z")
_NS = 1_000_000_000


def parse_seconds(text: object) -> float | None:
    """Seconds in `text` (a number is seconds already); None when it is not a positive duration."""
    if isinstance(text, bool):
        return None
    if isinstance(text, int | float):
        return float(text) if text > 0 else None
    match = _DURATION.match(str(text))
    if match is None or float(match[1]) <= 0:
        return None
    return float(match[1]) * _SECONDS[match[2]]


def parse_influxql_ns(text: str) -> int | None:
    """Nanoseconds in an InfluxQL-style duration (`30s`, `1w`, spaces around allowed); else None."""
    match = _INFLUXQL.match(text.strip())
    if match is None:
        return None
    return int(match[1]) * _SECONDS[match[2]] * _NS
