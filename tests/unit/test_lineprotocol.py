"""Line protocol: golden cases, and properties checked with a small parser written here."""

from __future__ import annotations

import math
import tomllib
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from influx.lineprotocol import LineProtocolError, encode_point, printable, text_of

CASES = sorted((Path(__file__).parents[1] / "cases" / "lineprotocol").glob("*.toml"))


def _split(text: str, sep: str) -> list[str]:
    """Split on `sep` outside quotes and not after a backslash escape."""
    out, cur, quoted, i = [], [], False, 0
    while i < len(text):
        ch = text[i]
        if ch == "\\" and i + 1 < len(text):
            cur.append(text[i : i + 2])
            i += 2
            continue
        if ch == '"':
            quoted = not quoted
        if ch == sep and not quoted:
            out.append("".join(cur))
            cur = []
        else:
            cur.append(ch)
        i += 1
    out.append("".join(cur))
    return out


def _unescape(text: str) -> str:
    out, i = [], 0
    while i < len(text):
        if text[i] == "\\" and i + 1 < len(text) and text[i + 1] in ", =":
            out.append(text[i + 1])
            i += 2
        else:
            out.append(text[i])
            i += 1
    return "".join(out)


def _value(text: str) -> Any:
    if text.startswith('"'):
        assert len(text) >= 2
        assert text.endswith('"')
        body, out, i = text[1:-1], [], 0
        while i < len(body):
            if body[i] == "\\" and i + 1 < len(body) and body[i + 1] in '"\\':
                out.append(body[i + 1])
                i += 2
            else:
                assert body[i] != '"', "unescaped quote inside a string"
                out.append(body[i])
                i += 1
        return "".join(out)
    if text in ("true", "false"):
        return text == "true"
    if text.endswith("i"):
        return int(text[:-1])
    return float(text)


def parse(line: str) -> tuple[str, dict[str, str], dict[str, Any], int]:
    """An independent reader of one line (InfluxDB 1.x rules)."""
    assert "\n" not in line
    parts = _split(line, " ")
    assert len(parts) == 3, parts
    series, fields, ts = parts
    head, *tag_parts = _split(series, ",")
    tags = {}
    for tp in tag_parts:
        k, v = _split(tp, "=")
        tags[_unescape(k)] = _unescape(v)
    values = {}
    for fp in _split(fields, ","):
        k, v = _split(fp, "=")
        values[_unescape(k)] = _value(v)
    return _unescape(head), tags, values, int(ts)


@pytest.mark.parametrize("case", CASES, ids=[c.stem for c in CASES])
def test_golden(case: Path) -> None:
    doc = tomllib.loads(case.read_text())
    args = (doc["measurement"], doc.get("tags", {}), doc.get("fields", {}), doc["time"])
    if "error" in doc:
        with pytest.raises(LineProtocolError) as info:
            encode_point(*args)
        assert info.value.part == doc["error"]
    else:
        line = encode_point(*args)
        assert line == doc["expected"]
        assert parse(line) == args


names = st.text(min_size=1, max_size=20)
field_values = st.one_of(
    st.integers(min_value=-(2**63), max_value=2**63 - 1),
    st.floats(allow_nan=False, allow_infinity=False),
    st.booleans(),
    st.text(max_size=40),
)


@given(
    measurement=names,
    tags=st.dictionaries(names, names, max_size=4),
    fields=st.dictionaries(names, field_values, min_size=1, max_size=4),
    ts=st.integers(min_value=0, max_value=2**62),
)
def test_any_accepted_point_is_one_line_that_parses_back(
    measurement: str, tags: dict[str, str], fields: dict[str, Any], ts: int
) -> None:
    try:
        line = encode_point(measurement, tags, fields, ts)
    except LineProtocolError:
        return
    assert line.count("\n") == 0
    m, t, f, when = parse(line)
    assert (m, t, when) == (measurement, tags, ts)
    assert f.keys() == fields.keys()
    for key, value in fields.items():
        if isinstance(value, float):
            assert math.isclose(f[key], value, rel_tol=0, abs_tol=0) or f[key] == value
        else:
            assert f[key] == value
            assert type(f[key]) is type(value)


@given(st.binary(max_size=300))
def test_any_bytes_become_a_storable_string_field(raw: bytes) -> None:
    text = text_of(raw)
    line = encode_point("rejected", {"reason": "json"}, {"body": text}, 1)
    assert parse(line)[2]["body"] == text
    if raw.isascii() and raw.decode().isprintable():
        assert text == raw.decode()


def test_printable_escapes_controls() -> None:
    assert printable("a\nb\x00c\u2028") == "a\\nb\\x00c\\u2028"
    assert text_of(b"\xff{") == "\\xff{"


def test_non_finite_float_refused() -> None:
    with pytest.raises(LineProtocolError):
        encode_point("m", {}, {"f": math.inf}, 1)


def test_a_quote_in_a_name_is_refused() -> None:
    # found by Hypothesis: a measurement named '"' made a line that reads as a string
    for measurement, tags in (('"', {}), ("m", {"device": 'A"B'}), ("m", {'k"': "v"})):
        with pytest.raises(LineProtocolError, match="quote"):
            encode_point(measurement, tags, {"f": 1}, 1)
