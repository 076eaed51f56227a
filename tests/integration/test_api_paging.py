"""Paging through 25,000 raw points, both orders: no point lost, none repeated."""

from __future__ import annotations

import pytest

from telemetry.servers import Influxd
from tests.support.apiclient import api_client
from tests.support.influx import write_lines

pytestmark = [pytest.mark.integration, pytest.mark.asyncio]

DEVICE = "5EED"
T0 = 1_700_000_000
COUNT = 25_000
BATCH = 5_000  # InfluxDB's documented efficient batch size for one writer


@pytest.fixture
def many_points(influxd: Influxd, database: str) -> list[int]:
    # irregular spacing (7 to 13 s) so page edges fall anywhere
    times = []
    t = T0
    for i in range(COUNT):
        t += 7 + (i * 5) % 7
        times.append(t)
    lines = [
        f"wristband,device={DEVICE} steps={i}i,seq={i % 4096}i {t}" for i, t in enumerate(times)
    ]
    lines.append(f"uplink,device={DEVICE},type=wristband seq=1i,stations=1i {times[-1]}")
    lines.append(f"wristband,device=07E4 steps=1i {times[5]}")  # another device
    for i in range(0, len(lines), BATCH):
        write_lines(influxd, database, lines[i : i + BATCH])
    return times


@pytest.mark.parametrize(("order", "limit"), [("asc", 10_000), ("desc", 3_333)])
async def test_paging_returns_every_point_once(
    influxd: Influxd, database: str, many_points: list[int], order: str, limit: int
) -> None:
    params = {
        "start": str(many_points[0]),
        "end": str(many_points[-1] + 1),
        "fields": "steps",
        "limit": str(limit),
        "order": order,
    }
    seen: list[int] = []
    pages = 0
    async with api_client(influxd.url, database) as client:
        cursor = None
        while True:
            r = await client.get(
                f"/v1/devices/{DEVICE}/history",
                params=params | ({"cursor": cursor} if cursor else {}),
            )
            assert r.status_code == 200, r.text
            body = r.json()
            pages += 1
            assert len(body["points"]) <= limit
            seen += [p["steps"] for p in body["points"]]
            cursor = body["next"]
            if cursor is None:
                break
            assert len(body["points"]) == limit  # a short page only at the end
    expected = list(range(COUNT)) if order == "asc" else list(range(COUNT))[::-1]
    assert seen == expected
    assert pages == -(-COUNT // limit)
