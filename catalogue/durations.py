"""Durations written as text (`90`, `30s`, `10m`, `2h`, `7d`): the catalogue's and the simulators'.

One parser for both, so a cadence in a catalogue file and a `telemetry simulate` flag read the
same way (the API's `every` has its own, stricter InfluxQL-style rules in api/params.py).
"""

from __future__ import annotations

import re

_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([smhd]?)\s*\Z")
_UNITS = {"": 1, "s": 1, "m": 60, "h": 3600, "d": 86400}


def parse_seconds(text: object) -> float | None:
    """Seconds in `text` (a number is seconds already); None when it is not a positive duration."""
    if isinstance(text, bool):
        return None
    if isinstance(text, int | float):
        return float(text) if text > 0 else None
    match = _DURATION.match(str(text))
    if match is None or float(match[1]) <= 0:
        return None
    return float(match[1]) * _UNITS[match[2]]
