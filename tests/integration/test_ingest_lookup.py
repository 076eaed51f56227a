"""Reading stored copies back for the merge, against a real InfluxDB."""

from __future__ import annotations

from pathlib import Path

import httpx
import pytest

from influx.client import InfluxClient
from ingest.lookup import StoredLookup, newest_stored_time
from ingest.merge import UNKNOWN_STATION, Copy, Merger
from telemetry.servers import Influxd, free_port
from tests.support.influx import TunedInfluxd, write_lines

pytestmark = pytest.mark.integration


@pytest.mark.asyncio
async def test_lookup_finds_the_stored_stations(influxd: Influxd, database: str) -> None:
    write_lines(
        influxd,
        database,
        [
            'uplink,device=A1,type=wristband seq=5i,stations=2i,rssi=-99.5,snr=3.0,station="0B",'
            'station_ids="0A,0B" 1000',
            'uplink,device=B2,type=wristband seq=6i,stations=1i,station="0C",station_ids="0C" 1001',
        ],
    )
    async with httpx.AsyncClient(base_url=influxd.url) as client:
        lookup = StoredLookup(InfluxClient(client, database))
        found = await lookup([("A1", 5, 1000), ("B2", 6, 1001), ("B2", 7, 1002), ("C3", 1, 1000)])
        newest = await newest_stored_time(InfluxClient(client, database))
        empty = await newest_stored_time(InfluxClient(client, "no_such_database_here"))
    assert found == {
        ("A1", 5, 1000): ("0A,0B", Copy("0B", -99.5, 3.0)),
        ("B2", 6, 1001): ("0C", Copy("0C", None, None)),
    }
    assert newest == 1001
    assert empty is None  # cannot say: the caller stays conservative


@pytest.mark.asyncio
async def test_lookup_of_a_point_no_copy_named_a_station_for(
    influxd: Influxd, database: str
) -> None:
    write_lines(
        influxd,
        database,
        ['uplink,device=D4,type=scale seq=74i,stations=1i,rssi=-120.0,station_ids="" 1000'],
    )
    async with httpx.AsyncClient(base_url=influxd.url) as client:
        found = await StoredLookup(InfluxClient(client, database))([("D4", 74, 1000)])
    assert found == {("D4", 74, 1000): ("", Copy(UNKNOWN_STATION, -120.0, None))}
    merger = Merger()  # merged again: a named copy makes it that station's, still one
    merger.seed(("D4", 74, 1000), *found[("D4", 74, 1000)])
    state, added = merger.merge(("D4", 74, 1000), [Copy("3A5F", -126.0, None)])
    assert (added, state.count, state.best.station) == (0, 1, "3A5F")


@pytest.mark.asyncio
async def test_failed_lookup_pauses_lookups() -> None:
    async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{free_port()}") as client:
        lookup = StoredLookup(InfluxClient(client, "db"))
        assert await lookup([("A1", 1, 1)]) is None  # unknown, not "nothing stored"
        assert await lookup([("A1", 1, 1)]) is None
    assert lookup.failures == 1  # the second call did not even try


@pytest.mark.asyncio
async def test_a_statement_refused_for_good_merges_with_the_cache_and_does_not_hold(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """A statement error InfluxDB would give every time (here its `max-select-series` limit)
    is logged, and its device merges with the cache alone: holding its copies would stall
    intake for good. Errors saying InfluxDB cannot answer now ("query engine shutdown", what
    CI met as it stopped) are a failed lookup instead: tests/unit/test_influx_client.py."""
    server = TunedInfluxd(tmp_path / "influxd", coordinator={"max-select-series": "1"})
    server.start()
    try:
        server.create_database("db")
        write_lines(
            server,
            "db",
            [  # two series for one device: its statement is refused
                'uplink,device=A1,type=wristband seq=5i,stations=2i,station_ids="0A,0B" 1000',
                'uplink,device=A1,type=scale seq=6i,stations=1i,station_ids="0C" 1001',
            ],
        )
        async with httpx.AsyncClient(base_url=server.url) as client:
            lookup = StoredLookup(InfluxClient(client, "db"))
            assert await lookup([("A1", 5, 1000)]) == {}
            assert lookup.failures == 0
            assert "max-select-series" in caplog.text
            missing = StoredLookup(InfluxClient(client, "no_such_database_here"))
            assert await missing([("A1", 5, 1000)]) == {}  # no database: surely nothing stored
            assert missing.failures == 0
    finally:
        server.stop()
