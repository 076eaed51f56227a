"""`GET /v1/snapshot` against a real InfluxDB filled with hand-written line protocol.

Expected loss, buckets and means are computed here in plain Python, apart from the query code.
"""

from __future__ import annotations

import time
from datetime import datetime
from typing import Any

import pytest

from telemetry.servers import Influxd
from tests.support.apiclient import api_client
from tests.support.influx import write_lines

pytestmark = [pytest.mark.integration, pytest.mark.asyncio]

HOUR = 3600
WRIST = "A1B2C3"
SCALE = "FF01"
# Wraps 4095 -> 0 and has gaps (4092 -> 4094: 1 lost; 0 -> 3: 2 lost), spread over the day so
# that gaps fall both inside a link bucket and between two.
SEQS = [4090, 4091, 4092, 4094, 4095, 0, 3, 4, 5]
LOST = 3


def _lines(now: int) -> tuple[list[str], list[dict[str, Any]]]:
    lines, points = [], []
    # Every 2 h 30 min, oldest first, the newest half an hour ago: spans the whole window.
    for i, seq in enumerate(SEQS):
        t = now - (len(SEQS) - i) * 9000 + 1800
        p = {"time": t, "seq": seq, "heart_rate": 60 + i, "stations": 1 + i % 3, "rssi": -100 - i}
        points.append(p)
        link = f"seq={seq}i,rssi={p['rssi']}.0,snr=9.5,stations={p['stations']}i"
        lines.append(
            f"wristband,device={WRIST} heart_rate={p['heart_rate']}i,steps={100 * i}i,"
            f"calories=10i,sleep_phase=0i,battery=80i,{link} {t}"
        )
        lines.append(
            f'uplink,device={WRIST},type=wristband data="00",{link},station="0A{i:02X}",'
            f'station_ids="0A{i:02X}",out_of_range=0i {t}'
        )
    # a scale heard once, two days ago: outside the window, still in the fleet
    old = now - 2 * 86_400
    lines.append(
        f"scale,device={SCALE} weight=72.5,body_fat=20.1,bmi=22.4,battery=50i,"
        f"seq=7i,rssi=-120.0,snr=3.0,stations=2i {old}"
    )
    lines.append(
        f'uplink,device={SCALE},type=scale data="00",seq=7i,rssi=-120.0,snr=3.0,stations=2i,'
        f'station="0B01",station_ids="0B01,0B02",out_of_range=0i {old}'
    )
    return lines, points


def _epoch(text: str) -> int:
    return int(datetime.fromisoformat(text.replace("Z", "+00:00")).timestamp())


async def test_snapshot_gives_every_device_with_values_link_and_series(
    influxd: Influxd, database: str
) -> None:
    now = int(time.time())
    lines, points = _lines(now)
    write_lines(influxd, database, lines)
    async with api_client(influxd.url, database) as client:
        r = await client.get("/v1/snapshot")
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["every"] == "1h"
    assert body["buckets"] == 24
    start = _epoch(body["start"])
    assert start % HOUR == 0
    assert start <= now - 23 * HOUR
    assert [t["name"] for t in body["types"]] == sorted(t["name"] for t in body["types"])
    wrist_type = next(t for t in body["types"] if t["name"] == "wristband")
    assert wrist_type["fields"]["heart_rate"] == {"unit": "bpm"}
    assert wrist_type["series_fields"][0] == "heart_rate"

    devices = {d["device"]: d for d in body["devices"]}
    assert set(devices) == {WRIST, SCALE}
    wrist = devices[WRIST]
    newest = points[-1]
    assert wrist["type"] == "wristband"
    assert _epoch(wrist["last_seen"]) == newest["time"]
    assert wrist["last_seq"] == newest["seq"]
    assert wrist["latest"]["heart_rate"] == newest["heart_rate"]
    in_window = [p for p in points if p["time"] >= start]
    link = wrist["link"]
    assert link["stations"] == newest["stations"]
    assert link["station"] == f"0A{len(SEQS) - 1:02X}"
    assert link["rssi"] == newest["rssi"]
    assert link["messages"] == len(in_window)
    assert link["lost"] == LOST
    assert link["loss"] == round(LOST / (len(in_window) + LOST), 4)
    series = wrist["series"]["heart_rate"]
    assert len(series) == 24
    expected: list[float | None] = [None] * 24
    for p in in_window:
        expected[(p["time"] - start) // HOUR] = float(p["heart_rate"])
    assert series == expected

    scale = devices[SCALE]
    assert scale["latest"]["weight"] == 72.5  # a float field stays a float
    assert scale["link"]["messages"] == 0
    assert scale["link"]["loss"] is None
    assert scale["link"]["stations"] == 2
    assert scale["series"]["weight"] == [None] * 24


async def test_snapshot_series_modes(influxd: Influxd, database: str) -> None:
    lines, _ = _lines(int(time.time()))
    write_lines(influxd, database, lines)
    async with api_client(influxd.url, database) as client:
        first = (await client.get("/v1/snapshot", params={"series": "first"})).json()
        none = (await client.get("/v1/snapshot", params={"series": "none"})).json()
        bad = await client.get("/v1/snapshot", params={"series": "some"})
    wrist = next(d for d in first["devices"] if d["device"] == WRIST)
    assert list(wrist["series"]) == ["heart_rate"]
    assert all(d["series"] == {} for d in none["devices"])
    assert bad.status_code == 422
    assert bad.headers["content-type"].startswith("application/problem+json")
    assert "series" in bad.text


async def test_snapshot_needs_the_key(influxd: Influxd, database: str) -> None:
    async with api_client(influxd.url, database, auth=False) as client:
        r = await client.get("/v1/snapshot")
    assert r.status_code == 401


async def test_snapshot_of_an_empty_database(influxd: Influxd, database: str) -> None:
    async with api_client(influxd.url, database) as client:
        r = await client.get("/v1/snapshot")
    assert r.status_code == 200, r.text
    assert r.json()["devices"] == []


async def test_snapshot_status_is_the_status_engine_s_view(influxd: Influxd, database: str) -> None:
    lines, _ = _lines(int(time.time()))
    write_lines(influxd, database, lines)
    async with api_client(influxd.url, database) as client:
        body = (await client.get("/v1/snapshot")).json()
        listed = (await client.get("/v1/devices")).json()["devices"]
    expected = {d["device"]: d["status"] for d in listed}
    got = {d["device"]: d["status"] for d in body["devices"]}
    assert set(got) == {WRIST, SCALE}
    assert got == expected  # one engine behind both answers
    for status in got.values():
        assert status["state"] in {"online", "late", "offline"}
