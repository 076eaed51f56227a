"""The `Query` value and the checks every piece of an InfluxQL statement passes before it is built.

Safety rules (RELIABILITY.md, fact 7: naive concatenation leaked every device and dropped a
database on 1.6.7), applied by `influx.query`'s templates through the checks here:

- Identifiers (measurements, fields) come only from the catalogue, never from the request:
  callers pass a `DeviceType` and field names already checked against it; `ident()` refuses
  anything else and double-quotes what it accepts.
- Values (device id, times, durations) travel as bound parameters (`params=` JSON to /query),
  and are also checked and escaped so that `Query.inline()` renders a safe literal statement
  for servers that ignore bound parameters (InfluxDB 3's v1 API, influxdb#24805).
- Statements are fixed templates: no request text can add a `;` or another clause.

No statement text is written here: `influx.query` holds every one.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from catalogue import DeviceType
from sigfox.limits import STORED_DEVICE_ID_RE

_IDENT_RE = re.compile(r"^[A-Za-z_][A-Za-z0-9_]{0,63}\Z")
_DATABASE_RE = re.compile(r"^[A-Za-z0-9_\-]{1,64}\Z")  # TELEMETRY_INFLUX_DATABASE's pattern

ParamValue = str | int | float | dict[str, int]


class QueryBuildError(ValueError):
    """A value that must never reach InfluxQL (a programming error upstream, or an attack)."""


@dataclass(frozen=True, slots=True)
class Query:
    """One or more fixed InfluxQL statements plus their bound parameters."""

    text: str
    params: dict[str, ParamValue] = field(default_factory=dict)

    def inline(self) -> str:
        """The statement with every `$name` replaced by its escaped literal."""

        def literal(match: re.Match[str]) -> str:
            value = self.params[match.group(1)]
            if isinstance(value, dict):
                return f"{value['duration']}ns"
            if isinstance(value, str):
                return string_literal(value)
            return repr(value)

        return re.sub(r"\$([A-Za-z_][A-Za-z0-9_]*)", literal, self.text)


def string_literal(value: str) -> str:
    """A single-quoted InfluxQL string; control characters are refused, not escaped."""
    if any(ord(c) < 0x20 or ord(c) == 0x7F for c in value):
        raise QueryBuildError("control character in a string value")
    return "'" + value.replace("\\", "\\\\").replace("'", "\\'") + "'"


def ident(name: str) -> str:
    """A double-quoted identifier; only plain names (catalogue names, our fixed names) pass."""
    if not _IDENT_RE.match(name):
        raise QueryBuildError(f"not a plain identifier: {name!r}")
    return f'"{name}"'


def device_value(device: str) -> str:
    """A stored device id (the only device text a statement takes)."""
    if not STORED_DEVICE_ID_RE.match(device):
        raise QueryBuildError(f"not a device id: {device!r}")
    return device


def database_name(name: str) -> str:
    """A database name as TELEMETRY_INFLUX_DATABASE allows it."""
    if not _DATABASE_RE.match(name):
        raise QueryBuildError(f"not a database name: {name!r}")
    return name


def check_fields(dtype: DeviceType, fields: tuple[str, ...]) -> None:
    """Every name is a field of `dtype` (the catalogue is where identifiers come from)."""
    for name in fields:
        if name not in dtype.fields:
            raise QueryBuildError(f"{name!r} is not a field of {dtype.name}")


def nanoseconds(value: int) -> int:
    """A time or duration in integer nanoseconds."""
    if not isinstance(value, int) or isinstance(value, bool):
        raise QueryBuildError("times are integer nanoseconds")
    return value


def seconds(value: int) -> int:
    """A time in integer seconds (written into the text with an `s`)."""
    if not isinstance(value, int) or isinstance(value, bool):
        raise QueryBuildError("times are integer seconds")
    return value


def order_keyword(order: str) -> str:
    """`ASC` or `DESC`."""
    if order not in ("asc", "desc"):
        raise QueryBuildError(f"bad order {order!r}")
    return order.upper()


def limit_value(limit: int) -> int:
    """A LIMIT: written into the text (InfluxQL takes no parameter there), so an int, bounded."""
    if not isinstance(limit, int) or isinstance(limit, bool) or not 1 <= limit <= 100_001:
        raise QueryBuildError(f"bad limit {limit!r}")
    return limit
