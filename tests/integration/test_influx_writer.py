"""The writer against a real InfluxDB 1.6.7: a 400 partial write stores the good lines, and the
refused ones are found exactly; a missing database is retryable, not refused."""

from __future__ import annotations

import httpx
import pytest

from influx.errors import WriteError
from influx.writer import InfluxWriter
from telemetry.servers import Influxd
from tests.support.influx import select, write_lines

pytestmark = pytest.mark.integration


@pytest.mark.asyncio
async def test_partial_write_refused_lines_are_found(influxd: Influxd, database: str) -> None:
    write_lines(influxd, database, ["m f=1i 1"], precision="ns")  # fixes f as an integer
    lines = [f"m f={i}i {i + 10}" for i in range(6)]
    lines[2] = 'm f="text" 12'
    lines[4] = "m f=1.5 14"
    async with httpx.AsyncClient(base_url=influxd.url) as client:
        refused = await InfluxWriter(client, database).write(lines)
    assert [r.line for r in refused] == [lines[2], lines[4]]
    assert all("HTTP 400" in r.message and "conflict" in r.message for r in refused)
    stored = select(influxd, database, "SELECT f FROM m")
    assert sorted(r["f"] for r in stored) == [0, 1, 1, 3, 5]


@pytest.mark.asyncio
async def test_missing_database_is_retryable(influxd: Influxd) -> None:
    async with httpx.AsyncClient(base_url=influxd.url) as client:
        with pytest.raises(WriteError) as info:
            await InfluxWriter(client, "no_such_db_x").write(["m f=1i 1"])
    assert info.value.status == 404


@pytest.mark.asyncio
async def test_unreachable_server_is_retryable() -> None:
    async with httpx.AsyncClient(base_url="http://127.0.0.1:9", timeout=2) as client:
        with pytest.raises(WriteError):
            await InfluxWriter(client, "x").write(["m f=1i 1"])
