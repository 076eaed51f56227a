"""catalogue/durations.py and catalogue/times.py: the one parser each, seen through every caller."""

from __future__ import annotations

from pathlib import Path

import click
import pytest

from api.params import parse_duration, parse_time
from api.problems import ApiError
from catalogue.durations import parse_influxql_ns, parse_seconds
from catalogue.times import NS, TimeTextError, parse_time_ns
from ingest.redecode import parse_time as redecode_time
from telemetry.dev.plan import backfill_days
from telemetry.errors import StartupError
from telemetry.options import Duration


@pytest.mark.parametrize(
    ("text", "seconds"),
    [
        ("90", 90.0),
        ("30s", 30.0),
        ("10m", 600.0),
        ("2h", 7200.0),
        ("7d", 604800.0),
        ("1.5h", 5400.0),
    ],
)
def test_seconds_grammar(text: str, seconds: float) -> None:
    assert parse_seconds(text) == seconds
    assert Duration().convert(text, None, None) == seconds


@pytest.mark.parametrize("text", ["", "0", "0s", "-1s", "1w", "1 x", "s", "1e3"])
def test_seconds_refusals_are_each_callers_own_error(text: str) -> None:
    assert parse_seconds(text) is None
    with pytest.raises(click.BadParameter, match="is not a duration such as"):
        Duration().convert(text, None, None)


def test_dev_backfill_uses_the_same_parser(tmp_path: Path) -> None:
    assert backfill_days(tmp_path, "2d", no_simulate=False) == 2.0
    with pytest.raises(StartupError, match=r"--backfill: '1w' is not a duration such as"):
        backfill_days(tmp_path, "1w", no_simulate=False)


@pytest.mark.parametrize(
    ("text", "ns"), [("30s", 30 * NS), (" 5m ", 300 * NS), ("1w", 604800 * NS), ("1d", 86400 * NS)]
)
def test_influxql_grammar(text: str, ns: int) -> None:
    assert parse_influxql_ns(text) == ns
    assert parse_duration(text) == ns


@pytest.mark.parametrize("text", ["30", "1.5h", "5 m", "1y", "1234567890s"])
def test_influxql_refusals(text: str) -> None:
    assert parse_influxql_ns(text) is None
    with pytest.raises(ApiError):
        parse_duration(text)


@pytest.mark.parametrize(
    "text", ["2024-05-18T02:40:00Z", "1716000000", "2024-05-18T04:40:00+02:00", "1716000000.9"]
)
def test_one_time_parser_for_api_and_redecode(text: str) -> None:
    ns = parse_time_ns(text)
    assert parse_time(text, "start") == ns
    assert redecode_time(text, 0) == ns // NS == 1_716_000_000


@pytest.mark.parametrize("text", ["now", "2024-05-18T02:40:00", "2024-02-30T00:00:00Z"])
def test_time_refusals_in_each_callers_words(text: str) -> None:
    with pytest.raises(TimeTextError):
        parse_time_ns(text)
    with pytest.raises(ApiError) as info:
        parse_time(text, "end")
    assert info.value.parameter == "end"
    with pytest.raises(StartupError, match=f"cannot read time {text!r}: it "):
        redecode_time(text, 0)


def test_redecode_default_when_absent() -> None:
    assert redecode_time(None, 42) == 42
