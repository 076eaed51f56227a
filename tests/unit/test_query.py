"""The InfluxQL builder: only catalogue identifiers, values bound, literals escaped."""

from __future__ import annotations

import pytest

from catalogue import load_catalogue
from influx import query as q
from influx.statement import QueryBuildError

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
    with pytest.raises(QueryBuildError):
        q.device_summary(device)
    with pytest.raises(QueryBuildError):
        q.messages(device, 0, 1, "asc", 10)


@pytest.mark.parametrize("field", ["seq", 'heart_rate" FROM x; --', "weight", ""])
def test_fields_outside_the_type_are_refused(field: str) -> None:
    with pytest.raises(QueryBuildError):
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
    with pytest.raises(QueryBuildError):
        q.history(WRIST, "AB", **args)  # type: ignore[arg-type]  # wrong types on purpose


def test_unknown_type_filter_is_refused() -> None:
    with pytest.raises(QueryBuildError):
        q.devices("wristband' OR 1=1", CATALOGUE.names())
    assert q.devices("scale", CATALOGUE.names()).params == {"type": "scale"}


def test_seq_since_is_bound_and_ordered() -> None:
    query = q.seq_since("AB", 1_700_000_000 * 10**9)
    assert query.text.endswith("ORDER BY time ASC")
    assert "$device" in query.text
    assert "$start" in query.text
    assert query.params == {"device": "AB", "start": 1_700_000_000 * 10**9}
    assert ";" not in query.text
    with pytest.raises(QueryBuildError):
        q.seq_since("AB", "0")  # type: ignore[arg-type]  # times are integer nanoseconds
