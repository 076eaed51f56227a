"""Query parameters parsed and checked: device ids, times, durations, fields, paging cursors.

Pure functions; each failure is an `ApiError` naming the parameter, so bad input is a 4xx.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
from dataclasses import dataclass
from typing import Any

from api.problems import bad_parameter
from catalogue import Catalogue, DeviceType
from catalogue.durations import parse_influxql_ns
from catalogue.times import MAX_NS, MIN_NS, NS, TimeTextError, format_time, parse_time_ns
from sigfox.limits import STORED_DEVICE_ID_RE

DAY_NS = 86_400 * NS
DEFAULT_SPAN_NS = DAY_NS  # DESIGN 4: the last 24 h when no range is given
# Buckets from one second (the time key's precision) to a year.
MIN_EVERY_NS = NS
MAX_EVERY_NS = 366 * DAY_NS


def parse_device(raw: str) -> str:
    """1 to 8 hex digits, any case; returned upper-case."""
    device = raw.upper()
    if not STORED_DEVICE_ID_RE.match(device):
        raise bad_parameter("device", "device ids are 1 to 8 hex digits")
    return device


def check_type(name: str, catalogue: Catalogue) -> str:
    """`name` when the catalogue has that device type; else a 400 naming the known ones."""
    if name not in catalogue:
        raise bad_parameter("type", f"unknown device type; known: {', '.join(catalogue.names())}")
    return name


def parse_time(raw: str, parameter: str) -> int:
    """RFC 3339 (with an offset) or epoch seconds, to integer nanoseconds (catalogue/times.py)."""
    try:
        return parse_time_ns(raw)
    except TimeTextError as exc:
        raise bad_parameter(parameter, f"{parameter} {exc}") from None


def parse_duration(raw: str, parameter: str = "every") -> int:
    """An InfluxQL-style duration (`30s`, `5m`, `1h`, `1d`, `1w`) to nanoseconds."""
    ns = parse_influxql_ns(raw)
    if ns is None:
        raise bad_parameter(parameter, f"{parameter} must be a number and a unit s, m, h, d or w")
    if not MIN_EVERY_NS <= ns <= MAX_EVERY_NS:
        raise bad_parameter(parameter, f"{parameter} must be between 1s and 366d")
    return ns


def parse_fields(raw: str | None, dtype: DeviceType) -> tuple[str, ...]:
    """A comma list of the type's field names (default: all of them), de-duplicated in order."""
    if raw is None or not raw.strip():
        return tuple(dtype.fields)
    names: list[str] = []
    for part in raw.split(","):
        name = part.strip()
        if name not in dtype.fields:
            raise bad_parameter(
                "fields",
                f"{name[:40]!r} is not a field of {dtype.name}; known: {', '.join(dtype.fields)}",
            )
        if name not in names:
            names.append(name)
    return tuple(names)


def point_row(row: dict[str, Any], floats: tuple[str, ...] = ()) -> dict[str, Any]:
    """A result row for the API: RFC 3339 time, float fields as floats.

    InfluxDB's JSON writes a float field's whole values as integers (72.0 -> 72).
    """
    row["time"] = format_time(row["time"])
    for name in floats:
        if type(row.get(name)) is int:
            row[name] = float(row[name])
    return row


@dataclass(frozen=True, slots=True)
class Window:
    """The time range [start, end) still to be read, in nanoseconds."""

    start: int
    end: int


def resolve_window(start: str | None, end: str | None, now_ns: int) -> Window:
    """Defaults: end now, start 24 h before end. An inverted range is an error."""
    end_ns = parse_time(end, "end") if end is not None else now_ns
    start_ns = parse_time(start, "start") if start is not None else max(0, end_ns - DEFAULT_SPAN_NS)
    if start_ns >= end_ns:
        raise bad_parameter("start", "start must be before end")
    return Window(start_ns, end_ns)


def fingerprint(*parts: object) -> str:
    """What a cursor is bound to, so a cursor cannot be replayed against another query."""
    return hashlib.sha256(json.dumps(parts, default=str).encode()).hexdigest()[:16]


def encode_cursor(fp: str, window: Window) -> str:
    doc = {"v": 1, "f": fp, "s": window.start, "e": window.end}
    return base64.urlsafe_b64encode(json.dumps(doc, separators=(",", ":")).encode()).decode()


def decode_cursor(raw: str, fp: str) -> Window:
    """The window left to read, from a cursor made by `encode_cursor` for the same query."""
    bad = bad_parameter("cursor", "cursor is not one this API made")
    try:
        doc = json.loads(base64.urlsafe_b64decode(raw.encode("ascii")))
    except (ValueError, binascii.Error, UnicodeError):
        raise bad from None
    if not isinstance(doc, dict) or doc.get("v") != 1 or not {"s", "e", "f"} <= doc.keys():
        raise bad
    start, end, bound = doc["s"], doc["e"], doc["f"]
    if bound != fp:
        raise bad_parameter("cursor", "cursor belongs to another query; send the same parameters")
    ok = all(type(v) is int and MIN_NS <= v <= MAX_NS for v in (start, end))
    if not ok or start >= end:
        raise bad
    return Window(start, end)
