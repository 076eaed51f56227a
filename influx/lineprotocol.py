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
point and lets the rest forge a new one (RELIABILITY.md, fact 8). Callers make external text safe
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
# Quotes too: legal inside names, but a measurement or key starting with one reads as a string
# to many parsers, and no name of ours (catalogue names, hex ids, fixed reasons) has one.
_UNSAFE_NAME = re.compile(r'[\x00-\x1f\x7f-\x9f\\"]')
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
        raise LineProtocolError(
            f"{part} {value!r} holds a control character, backslash or quote", part
        )
    return value.translate(table)


def float_text(key: str, value: float) -> str:
    """A float field's value (an int is written as a float); NaN and infinities are refused."""
    value = float(value)
    if not math.isfinite(value):
        raise LineProtocolError(f"field {key!r} is not a finite number", "field")
    return repr(value)


def string_text(key: str, value: str) -> str:
    """A string field's value, quoted and escaped; control characters are refused."""
    text = _STRINGS.get(value)
    if text is not None:
        return text
    if _CONTROL.search(value):
        raise LineProtocolError(f"field {key!r} holds a control character", "field")
    text = '"' + value.translate(_STRING_ESCAPES) + '"'
    if len(value) <= _STRINGS_KEEP and len(_STRINGS) < _STRINGS_MAX:
        _STRINGS[value] = text
    return text


# Short texts that repeat (station ids, lists of them) escaped once. Only escaped texts enter;
# bounded, so varied input cannot grow it.
_STRINGS: dict[str, str] = {}
_STRINGS_MAX = 4096
_STRINGS_KEEP = 64


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
        return float_text(key, value)
    if isinstance(value, str):
        return string_text(key, value)
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
    prefix = series(measurement, tuple(sorted(tags.items())))
    field_text = encode_fields(fields)
    if isinstance(timestamp_ns, bool) or not isinstance(timestamp_ns, int):
        raise LineProtocolError("timestamp must be an integer", "timestamp")
    return f"{prefix} {field_text} {timestamp_ns}"


@functools.lru_cache(maxsize=65_536)
def series(measurement: str, tags: tuple[tuple[str, str], ...]) -> str:
    """`<measurement>[,<tag>=<value>...]` escaped, tags in the given (sorted) order.

    Cached: a device's series repeats for every uplink. Refusals raise and are not cached.
    """
    parts = [_cached_name(measurement, "measurement", False)]
    for key, value in tags:
        parts.append(
            f",{_cached_name(key, 'tag key', True)}={_cached_name(value, 'tag value', True)}"
        )
    return "".join(parts)


# Escaped field keys: a plain dict is cheaper than the lru_cache on this path (~10 keys an
# uplink). Only keys that passed `_name` enter it; bounded, so forged keys cannot grow it.
_FIELD_KEYS: dict[str, str] = {}
_FIELD_KEYS_MAX = 4096


def encode_fields(fields: Mapping[str, FieldValue]) -> str:
    """`<key>=<value>[,...]` in the mapping's order; raises as `encode_point` does."""
    keys = _FIELD_KEYS
    out = []
    for k, v in fields.items():
        key = keys.get(k)
        if key is None:
            key = _cached_name(k, "field key", True)
            if len(keys) < _FIELD_KEYS_MAX:
                keys[k] = key
        kind = type(v)  # exact types first: the common path, without isinstance chains
        if kind is int:
            out.append(f"{key}={v}i")
        elif kind is float and math.isfinite(v):  # type: ignore[arg-type]  # kind is float
            out.append(f"{key}={v!r}")
        else:
            out.append(f"{key}={_field_value(k, v)}")
    return ",".join(out)


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
