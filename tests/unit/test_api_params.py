"""Parsing of API parameters: times, durations, fields, devices, cursors."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from hypothesis import given
from hypothesis import strategies as st

from api.params import (
    Window,
    decode_cursor,
    encode_cursor,
    parse_device,
    parse_duration,
    parse_fields,
    parse_time,
    resolve_window,
)
from api.problems import ApiError
from catalogue import load_catalogue
from catalogue.times import NS, format_time

WRIST = load_catalogue()["wristband"]


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("1716000000", 1_716_000_000 * NS),
        ("1716000000.25", 1_716_000_000 * NS + 250_000_000),
        ("2024-05-18T02:40:00Z", 1_716_000_000 * NS),
        ("2024-05-18t02:40:00z", 1_716_000_000 * NS),
        ("2024-05-18T04:40:00+02:00", 1_716_000_000 * NS),
        ("2024-05-18T02:40:00.123456789Z", 1_716_000_000 * NS + 123_456_789),
        ("1970-01-01T00:00:00Z", 0),
    ],
)
def test_times(raw: str, expected: int) -> None:
    assert parse_time(raw, "start") == expected


@pytest.mark.parametrize(
    "raw",
    [
        "",
        "now",
        "-1",
        "2024-05-18",
        "2024-05-18T02:40:00",
        "2024-02-30T00:00:00Z",
        "2024-05-18T02:40:00+25:00",
        "1e9",
        "1716000000.",
        "9" * 12,
        "1969-12-31T23:59:59Z",
    ],
)
def test_bad_times_name_the_parameter(raw: str) -> None:
    with pytest.raises(ApiError) as info:
        parse_time(raw, "end")
    assert info.value.parameter == "end"
    assert info.value.status == 400


# naive bounds: hypothesis takes naive limits and the test attaches UTC itself
@given(st.datetimes(min_value=datetime(1970, 1, 1), max_value=datetime(2250, 1, 1)))  # noqa: DTZ001
def test_format_then_parse_is_identity(moment: datetime) -> None:
    ns = int(moment.replace(tzinfo=UTC).timestamp()) * NS + moment.microsecond * 1000
    assert parse_time(format_time(ns), "start") == ns


def test_format_time_is_rfc3339_utc_z() -> None:
    assert format_time(1_716_000_000 * NS) == "2024-05-18T02:40:00Z"
    assert format_time(1_716_000_000 * NS + 500_000_000) == "2024-05-18T02:40:00.5Z"


@pytest.mark.parametrize(
    ("raw", "seconds"), [("30s", 30), ("5m", 300), ("1h", 3600), ("1d", 86_400), ("2w", 1_209_600)]
)
def test_durations(raw: str, seconds: int) -> None:
    assert parse_duration(raw) == seconds * NS


@pytest.mark.parametrize("raw", ["", "5", "h", "1y", "0s", "1.5h", "-1h", "367d", "1h30m", "5 m"])
def test_bad_durations(raw: str) -> None:
    with pytest.raises(ApiError) as info:
        parse_duration(raw)
    assert info.value.parameter == "every"


def test_fields() -> None:
    assert parse_fields(None, WRIST) == tuple(WRIST.fields)
    assert parse_fields("steps, heart_rate,steps", WRIST) == ("steps", "heart_rate")
    for bad in ("weight", "steps,", "seq", "steps;drop"):
        with pytest.raises(ApiError) as info:
            parse_fields(bad, WRIST)
        assert info.value.parameter == "fields"


def test_devices_are_upper_case_hex() -> None:
    assert parse_device("1a2b3c") == "1A2B3C"
    for bad in ("", "123456789", "xyz", "1A 2B", "1A'", "1A\n"):
        with pytest.raises(ApiError):
            parse_device(bad)


def test_window_defaults_to_the_last_24_hours() -> None:
    now = 1_716_000_000 * NS
    assert resolve_window(None, None, now) == Window(now - 86_400 * NS, now)
    with pytest.raises(ApiError) as info:
        resolve_window("1716000001", "1716000000", now)
    assert info.value.parameter == "start"


def test_cursor_round_trip_and_binding() -> None:
    cursor = encode_cursor("fp1", Window(5, 9))
    assert decode_cursor(cursor, "fp1") == Window(5, 9)
    for raw, fp in (
        (cursor, "fp2"),
        ("!!", "fp1"),
        ("", "fp1"),
        ("e30", "fp1"),
        ("x" * 600, "fp1"),
    ):
        with pytest.raises(ApiError) as info:
            decode_cursor(raw, fp)
        assert info.value.parameter == "cursor"
