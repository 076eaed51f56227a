"""The InfluxQL builder: only catalogue identifiers, values bound, literals escaped."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from catalogue import load_catalogue
from influx import query as q

CATALOGUE = load_catalogue()
WRIST = CATALOGUE["wristband"]
HOSTILE = [
    "x' OR device =~ /.*/ AND '1'='1",
    "x'; DROP DATABASE t; --",
    'a"b',
    "a\\",
    "a\nb",
    "1A2B\n",  # Python's `$` would match before a final newline
    "/.*/",
    "",
    "1A2B3C4D5",
    "1a2b",
]


def test_history_binds_values_and_quotes_identifiers() -> None:
    query = q.history(
        WRIST,
        "1A2B",
        fields=("heart_rate", "steps"),
        start_ns=10,
        end_ns=20,
        order="desc",
        limit=11,
        every_ns=3_600_000_000_000,
        agg="max",
    )
    assert query.text == (
        'SELECT max("heart_rate") AS "heart_rate", max("steps") AS "steps" FROM "wristband" '
        'WHERE "device" = $device AND time >= $start AND time < $end '
        "GROUP BY time($every) fill(none) ORDER BY time DESC LIMIT 11"
    )
    assert query.params == {
        "device": "1A2B",
        "start": 10,
        "end": 20,
        "every": {"duration": 3_600_000_000_000},
    }
    assert query.inline() == (
        'SELECT max("heart_rate") AS "heart_rate", max("steps") AS "steps" FROM "wristband" '
        "WHERE \"device\" = '1A2B' AND time >= 10 AND time < 20 "
        "GROUP BY time(3600000000000ns) fill(none) ORDER BY time DESC LIMIT 11"
    )


@pytest.mark.parametrize("device", HOSTILE)
def test_anything_but_an_upper_hex_id_is_refused(device: str) -> None:
    with pytest.raises(q.QueryBuildError):
        q.device_summary(device)
    with pytest.raises(q.QueryBuildError):
        q.messages(device, 0, 1, "asc", 10)


@pytest.mark.parametrize("field", ["seq", 'heart_rate" FROM x; --', "weight", ""])
def test_fields_outside_the_type_are_refused(field: str) -> None:
    with pytest.raises(q.QueryBuildError):
        q.history(WRIST, "AB", fields=(field,), start_ns=0, end_ns=1, order="asc", limit=10)


@pytest.mark.parametrize(
    ("kwargs"),
    [
        {"order": "asc; DROP"},
        {"limit": 0},
        {"limit": 10**9},
        {"every_ns": 60, "agg": "stddev"},
        {"start_ns": "0"},
    ],
)
def test_bad_order_limit_agg_times_are_refused(kwargs: dict[str, object]) -> None:
    args: dict[str, object] = {
        "fields": ("steps",),
        "start_ns": 0,
        "end_ns": 1,
        "order": "asc",
        "limit": 10,
    } | kwargs
    with pytest.raises(q.QueryBuildError):
        q.history(WRIST, "AB", **args)  # type: ignore[arg-type]  # wrong types on purpose


def test_unknown_type_filter_is_refused() -> None:
    with pytest.raises(q.QueryBuildError):
        q.devices("wristband' OR 1=1", CATALOGUE.names())
    assert q.devices("scale", CATALOGUE.names()).params == {"type": "scale"}


def test_identifiers_must_be_plain() -> None:
    assert q.ident("heart_rate") == '"heart_rate"'
    for bad in ('a"b', "a b", "1a", "", "a;b"):
        with pytest.raises(q.QueryBuildError):
            q.ident(bad)


@given(
    st.text(
        alphabet=st.characters(min_codepoint=0x20, max_codepoint=0x2FF, exclude_characters="\x7f")
    )
)
def test_string_literal_round_trips_through_influxql_escapes(value: str) -> None:
    literal = q.string_literal(value)
    assert literal[0] == literal[-1] == "'"
    body = literal[1:-1]
    # undo InfluxQL's two escapes; the result is the value, and no quote is left unescaped
    out, i = [], 0
    while i < len(body):
        if body[i] == "\\":
            assert body[i + 1] in "\\'"
            out.append(body[i + 1])
            i += 2
        else:
            assert body[i] != "'"
            out.append(body[i])
            i += 1
    assert "".join(out) == value


@pytest.mark.parametrize("value", ["a\nb", "a\rb", "\x00", "a\x7f"])
def test_control_characters_are_refused_in_literals(value: str) -> None:
    with pytest.raises(q.QueryBuildError):
        q.string_literal(value)


def test_seq_since_is_bound_and_ordered() -> None:
    query = q.seq_since("AB", 1_700_000_000 * 10**9)
    assert query.text.endswith("ORDER BY time ASC")
    assert "$device" in query.text
    assert "$start" in query.text
    assert query.params == {"device": "AB", "start": 1_700_000_000 * 10**9}
    assert ";" not in query.text
    with pytest.raises(q.QueryBuildError):
        q.seq_since("AB", "0")  # type: ignore[arg-type]  # times are integer nanoseconds
