"""ingest/service.py in-process: `run` with a fake source, the real InfluxDB, then a clean stop."""

from __future__ import annotations

import asyncio
import json
import struct
import time
from pathlib import Path

import pytest

from catalogue import load_catalogue
from ingest import service
from telemetry.servers import Influxd
from telemetry.settings import Settings
from tests.support.fakes import FakeSource
from tests.support.influx import select

DATA = struct.pack(">BIHBB", 70, 100, 10, 1, 80).hex()


@pytest.mark.asyncio
async def test_run_stores_acks_and_stops_with_a_fake_source(
    influxd: Influxd, database: str, topic_prefix: str, tmp_path: Path
) -> None:
    t = int(time.time()) - 5
    up = {"device": "5E", "time": t, "seqNumber": 7, "data": DATA}
    source = FakeSource(
        [
            (
                f"{topic_prefix}/wristband/5E",
                json.dumps(up | {"station": "01", "rssi": -90}).encode(),
            ),
            (
                f"{topic_prefix}/wristband/5E",
                json.dumps(up | {"station": "02", "rssi": -80}).encode(),
            ),
            (f"{topic_prefix}/wristband/5E", b"not json"),
        ]
    )
    settings = Settings.model_validate(
        {
            "influx_url": influxd.url,
            "influx_database": database,
            "mqtt_topic_prefix": topic_prefix,
            "ingest_spool_dir": tmp_path / "spool",
            "ingest_events": False,  # no second MQTT connection: the source is the only fake
            "ingest_flush_interval": 0.05,
        }
    )
    stop = asyncio.Event()
    task = asyncio.create_task(
        service.run(settings, load_catalogue(None), stop, make_source=source.make)
    )
    acked = asyncio.create_task(source.all_acked.wait())
    await asyncio.wait([acked, task], timeout=60, return_when=asyncio.FIRST_COMPLETED)
    assert acked.done(), f"not every message acked; run: {task}"
    assert not task.done(), task
    rows = select(influxd, database, "SELECT stations, station FROM uplink")
    assert [(r["stations"], r["station"]) for r in rows] == [(2, "02")]  # copies merged
    rejected = select(influxd, database, "SELECT * FROM rejected GROUP BY reason")
    assert [r["reason"] for r in rejected] == ["json"]
    stop.set()
    await asyncio.wait_for(task, 60)
    assert source.intake_stopped
    assert sorted(source.acked) == [1, 2, 3]  # each message acked once, after it was stored
