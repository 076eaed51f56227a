"""InfluxDB line protocol: one point to one line, escaped so that no input can forge another point.

    <measurement>[,<tag>=<value>...] <field>=<value>[,<field>=<value>...] <timestamp ns>

| part              | escaped                   | refused (`LineProtocolError`)                  |
| ----------------- | ------------------------- | ---------------------------------------------- |
| measurement       | `,` and space             | empty, control characters, backslash           |
| tag key and value | `,` `=` and space         | empty, control characters, backslash           |
| field key         | `,` `=` and space         | empty, control characters, backslash           |
| string field      | `"` and `\\`              | control characters (newline, NUL, ...)         |
| float field       | shortest repr             | NaN and infinities                             |

Backslashes are refused outside string fields because InfluxDB 1.x reads `a\\` before a separator
as an escaped separator; control characters are refused everywhere because a newline ends the
point and lets the rest forge a new one (reliability facts 8). Callers make external text safe
first (see `printable`).
"""

from __future__ import annotations

import functools
import math
import re
from collections.abc import Mapping

FieldValue = int | float | bool | str

_NAME_ESCAPES = str.maketrans({",": r"\,", " ": r"\ "})
_KEY_ESCAPES = str.maketrans({",": r"\,", "=": r"\=", " ": r"\ "})
_STRING_ESCAPES = str.maketrans({"\\": "\\\\", '"': '\\"'})
# C0 controls, DEL and the C1 controls: none has a place in a tag, a key or a stored text.
_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f]")
_UNSAFE_NAME = re.compile(r"[\x00-\x1f\x7f-\x9f\\]")
# Unicode line and paragraph separators: not line ends for InfluxDB, but for many log readers.
_PRINTABLE_EXTRA = re.compile(r"[\u2028\u2029]")


class LineProtocolError(ValueError):
    """A point that cannot be written safely; `part` names the offending part."""

    def __init__(self, message: str, part: str) -> None:
        super().__init__(message)
        self.part = part


# Names repeat endlessly (measurements, keys, device ids): escape each once. Refusals raise
# and are not cached. Bounded, so forged ids cannot grow it.
@functools.lru_cache(maxsize=65_536)
def _cached_name(value: str, part: str, keyish: bool) -> str:
    return _name(value, part, _KEY_ESCAPES if keyish else _NAME_ESCAPES)


def _name(value: str, part: str, table: dict[int, str]) -> str:
    if not value:
        raise LineProtocolError(f"empty {part}", part)
    if _UNSAFE_NAME.search(value):
        raise LineProtocolError(f"{part} {value!r} holds a control character or backslash", part)
    return value.translate(table)


def _field_value(key: str, value: FieldValue) -> str:
    kind = type(value)  # exact types first: the common path, without isinstance chains
    if kind is int:
        return f"{value}i"
    if kind is float and math.isfinite(value):  # type: ignore[arg-type]  # kind is float
        return repr(value)
    if isinstance(value, bool):  # before int: bool is an int subclass
        return "true" if value else "false"
    if isinstance(value, int):
        return f"{value}i"
    if isinstance(value, float):
        if not math.isfinite(value):
            raise LineProtocolError(f"field {key!r} is not a finite number", "field")
        return repr(value)
    if isinstance(value, str):
        if _CONTROL.search(value):
            raise LineProtocolError(f"field {key!r} holds a control character", "field")
        return '"' + value.translate(_STRING_ESCAPES) + '"'
    raise LineProtocolError(f"field {key!r} has unsupported type {type(value).__name__}", "field")


def encode_point(
    measurement: str,
    tags: Mapping[str, str],
    fields: Mapping[str, FieldValue],
    timestamp_ns: int,
) -> str:
    """One line (no trailing newline); tags sorted, as InfluxDB recommends."""
    if not fields:
        raise LineProtocolError("a point needs at least one field", "field")
    parts = [_cached_name(measurement, "measurement", False)]
    for key in sorted(tags):
        parts.append(
            f",{_cached_name(key, 'tag key', True)}={_cached_name(tags[key], 'tag value', True)}"
        )
    field_text = ",".join(
        [f"{_cached_name(k, 'field key', True)}={_field_value(k, v)}" for k, v in fields.items()]
    )
    if isinstance(timestamp_ns, bool) or not isinstance(timestamp_ns, int):
        raise LineProtocolError("timestamp must be an integer", "timestamp")
    return f"{''.join(parts)} {field_text} {timestamp_ns}"


def printable(text: str) -> str:
    """`text` with control characters as backslash escapes (`\\n`, `\\x00`), safe for a field."""

    def esc(m: re.Match[str]) -> str:
        ch = m.group()
        return {"\n": "\\n", "\r": "\\r", "\t": "\\t"}.get(ch) or f"\\x{ord(ch):02x}"

    text = _CONTROL.sub(esc, text)
    return _PRINTABLE_EXTRA.sub(lambda m: f"\\u{ord(m.group()):04x}", text)


def text_of(raw: bytes) -> str:
    """Bytes as printable text: invalid UTF-8 and control characters kept as backslash escapes."""
    return printable(raw.decode("utf-8", errors="backslashreplace"))
