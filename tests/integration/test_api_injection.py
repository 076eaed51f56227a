"""Injection attempts through every parameter: a 4xx or only the asked device's data, no change.

Measured on InfluxDB 1.6.7: naive concatenation of `x' OR device =~ /.*/` returned every
device's data, and `x'; DROP DATABASE t; --` dropped the database.
"""

from __future__ import annotations

import base64
import json
from urllib.parse import quote

import pytest

from telemetry.servers import Influxd
from tests.support.apiclient import api_client
from tests.support.influx import select, write_lines

pytestmark = [pytest.mark.integration, pytest.mark.asyncio]

VICTIM = "AAAA01"  # the device the attacker may read
OTHER = "BBBB02"  # the device that must never leak
T0 = 1_716_000_000

HOSTILE = [
    "x' OR device =~ /.*/ AND '1'='1",
    "' OR device =~ /.*/",
    "x'; DROP DATABASE {db}; --",
    "AAAA01'; DROP DATABASE {db}; --",
    '"; DROP MEASUREMENT wristband; --',
    "AAAA01\\",
    "\\'",
    "AAAA01\nSELECT * FROM wristband",
    "AAAA01\r\n",
    "/.*/",
    "=~ /.*/",
    ";",
    "heart_rate FROM wristband; DROP DATABASE {db}",
    "1h) fill(0); DROP DATABASE {db}; --",
    "1716000000 OR time > 0",
    "%27%20OR%201%3D1",
    "$device",
    "\x00",
    "🙂",
    "A" * 5000,
]


def forged_cursor(db: str) -> str:
    doc = {"v": 1, "f": "x", "s": f"0; DROP DATABASE {db}", "e": 10}
    return base64.urlsafe_b64encode(json.dumps(doc).encode()).decode()


def snapshot(influxd: Influxd, database: str) -> list[dict[str, object]]:
    rows = select(influxd, database, "SELECT * FROM wristband")
    rows += select(influxd, database, "SELECT * FROM uplink")
    return sorted(rows, key=lambda r: (str(r.get("device")), r["time"], str(r.get("data"))))


@pytest.fixture
def two_devices(influxd: Influxd, database: str) -> None:
    lines = []
    for device in (VICTIM, OTHER):
        for i in range(20):
            t = T0 + 60 * i
            lines.append(f"wristband,device={device} heart_rate={70 + i}i,seq={i}i {t}")
            lines.append(
                f'uplink,device={device},type=wristband data="00",seq={i}i,stations=1i,'
                f'rssi=-100,station="01",out_of_range=0i {t}'
            )
    write_lines(influxd, database, lines)


def check(status: int, body: object, path: str) -> None:
    """A 4xx, or a 200 that mentions only the victim's id."""
    assert status < 500, (status, path)
    if status == 200:
        assert OTHER not in json.dumps(body), path


@pytest.mark.parametrize("bind_params", [True, False], ids=["bound", "inline-escaped"])
async def test_hostile_values_in_every_parameter(
    influxd: Influxd, database: str, two_devices: None, bind_params: bool
) -> None:
    before = snapshot(influxd, database)
    base = {"start": str(T0), "end": str(T0 + 3600)}
    async with api_client(influxd.url, database, influx_bind_params=bind_params) as client:
        for raw in HOSTILE:
            value = raw.format(db=database)
            # the device path segment
            for suffix in ("", "/history", "/messages"):
                path = f"/v1/devices/{quote(value, safe='')}{suffix}"
                r = await client.get(path, params=base)
                check(r.status_code, r.json() if r.content else None, path)
                assert r.status_code != 200
            # every query parameter of every route
            for route, names in (
                ("/v1/devices", ("type",)),
                (
                    f"/v1/devices/{VICTIM}/history",
                    ("start", "end", "fields", "every", "agg", "limit", "order", "cursor"),
                ),
                (
                    f"/v1/devices/{VICTIM}/messages",
                    ("start", "end", "limit", "order", "cursor"),
                ),
            ):
                for name in names:
                    params = base | {name: value}
                    if name == "agg":
                        params["every"] = "1h"
                    r = await client.get(route, params=params)
                    if route == "/v1/devices":
                        assert r.status_code >= 400, (name, value)
                    else:
                        check(r.status_code, r.json(), f"{route}?{name}={value!r}")
                        assert r.status_code in (400, 422), (route, name, value, r.text)
        r = await client.get(
            f"/v1/devices/{VICTIM}/history", params=base | {"cursor": forged_cursor(database)}
        )
        assert r.status_code == 400
        # the honest request still answers, with the victim's 20 points only
        ok = await client.get(f"/v1/devices/{VICTIM}/history", params=base)
    assert ok.status_code == 200
    assert len(ok.json()["points"]) == 20
    assert OTHER not in ok.text
    # nothing was dropped or changed (select fails loudly on a dropped database)
    after = snapshot(influxd, database)
    assert after == before
    assert len(after) == 80
