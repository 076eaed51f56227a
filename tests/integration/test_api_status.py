"""The API's status views against a real InfluxDB: `status` on devices, `?status=`, `/v1/alarms`,
`/v1/fleet`, and `since` taken from the `event` points the ingester recorded."""

from __future__ import annotations

import time
from datetime import UTC, datetime
from typing import Any

import httpx
import pytest

from catalogue import load_catalogue
from catalogue.times import NS
from influx.client import InfluxClient
from status.rules import Reading
from status.tracker import Tracker
from telemetry.servers import Influxd
from tests.support.apiclient import api_client
from tests.support.influx import write_lines

pytestmark = [pytest.mark.integration, pytest.mark.asyncio]

# Independent of the code under test: the wristband's cadence in catalogue/types/wristband.toml.
LATE_S, OFFLINE_S = 30 * 60, 90 * 60


def iso(epoch: int) -> str:
    return datetime.fromtimestamp(epoch, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def uplink(device: str, t: int, battery: int = 80) -> list[str]:
    return [
        f"uplink,device={device},type=wristband seq=1i,stations=1i {t}",
        f"wristband,device={device} heart_rate=70i,battery={battery}i,seq=1i {t}",
    ]


async def test_status_alarms_and_fleet(influxd: Influxd, database: str) -> None:
    now = int(time.time())
    t_on, t_late, t_off, t_scale = now - 60, now - 40 * 60, now - 2 * 3600, now - 3600
    lines = [
        *uplink("A1", t_on, battery=10),
        *uplink("A2", t_late),
        *uplink("A3", t_off),
        f"uplink,device=5C,type=scale seq=1i,stations=1i {t_scale}",
        # recorded by an ingester: A1 came back online 100 s before its newest uplink
        f'event,device=A1,type=wristband,kind=state state="online",previous="late",'
        f'detail="uplink received" {t_on - 100}',
    ]
    write_lines(influxd, database, lines)
    async with api_client(influxd.url, database) as client:
        devices = (await client.get("/v1/devices")).json()["devices"]
        late = (await client.get("/v1/devices", params={"status": "late"})).json()["devices"]
        bad = await client.get("/v1/devices", params={"status": "asleep"})
        detail = (await client.get("/v1/devices/a3")).json()
        alarms = (await client.get("/v1/alarms")).json()["alarms"]
        scale_alarms = (await client.get("/v1/alarms", params={"type": "scale"})).json()
        bad_type = await client.get("/v1/alarms", params={"type": "toaster"})
        fleet = {t["type"]: t for t in (await client.get("/v1/fleet")).json()["types"]}
        metrics = (await client.get("/metrics")).text
    status = {d["device"]: d["status"] for d in devices}
    assert status["A1"] == {
        "state": "online",
        "since": iso(t_on - 100),
        "alarms": [{"kind": "battery_low", "since": iso(t_on)}],
    }
    assert status["A2"] == {"state": "late", "since": iso(t_late + LATE_S), "alarms": []}
    offline = {"state": "offline", "since": iso(t_off + OFFLINE_S)}
    assert status["A3"] == offline | {"alarms": [{"kind": "offline", "since": offline["since"]}]}
    assert status["5C"]["state"] == "online"  # an hour is nothing for a bathroom scale
    assert [d["device"] for d in late] == ["A2"]
    assert bad.status_code == 400
    assert bad.json()["parameter"] == "status"
    assert detail["status"] == status["A3"]
    assert alarms == [
        {"device": "A3", "type": "wristband", "kind": "offline", "since": iso(t_off + OFFLINE_S)},
        {"device": "A1", "type": "wristband", "kind": "battery_low", "since": iso(t_on)},
    ]
    assert scale_alarms == {"alarms": []}
    assert bad_type.status_code == 400
    assert fleet["wristband"] == {
        "type": "wristband",
        "devices": 3,
        "states": {"online": 1, "late": 1, "offline": 1},
        "alarms": {"offline": 1, "battery_low": 1},
    }
    assert fleet["scale"]["states"] == {"online": 1, "late": 0, "offline": 0}
    assert fleet["plant_sensor"]["devices"] == 0
    for sample in (
        'telemetry_api_status_devices{state="late",type="wristband"} 1.0',
        'telemetry_api_status_devices{state="online",type="scale"} 1.0',
        'telemetry_api_active_alarms{kind="battery_low",type="wristband"} 1.0',
        'telemetry_api_active_alarms{kind="offline",type="plant_sensor"} 0.0',
    ):
        assert sample in metrics.splitlines()


async def test_snapshot_is_the_shared_view(influxd: Influxd, database: str) -> None:
    now = int(time.time())
    write_lines(influxd, database, uplink("B7", now - 2 * 3600))
    async with api_client(influxd.url, database) as client:
        app: Any = client._transport.app  # type: ignore[attr-defined]  # the app under test
        snapshot = app.state.status.snapshot()
    since = iso(now - 2 * 3600 + OFFLINE_S)
    assert snapshot == {
        "B7": {"state": "offline", "since": since, "alarms": [{"kind": "offline", "since": since}]}
    }


async def test_readings_from_up_events_equal_those_of_a_poll(
    influxd: Influxd, database: str
) -> None:
    """What an uplink's `up` event gives the tracker is what a poll of its stored point gives."""
    now = int(time.time())
    stored = [  # (device, time, battery or None: an uplink without the battery value)
        ("C1", now - 100, 50),
        ("C1", now - 50, 12),
        ("C2", now - 20, 40),
        ("C2", now - 10, None),
        ("C3", now - 3 * 3600, 80),
    ]
    lines = []
    for device, t, battery in stored:
        lines.append(f"uplink,device={device},type=wristband seq=1i,stations=1i {t}")
        fields = "heart_rate=70i" + ("" if battery is None else f",battery={battery}i")
        lines.append(f"wristband,device={device} {fields} {t}")
    write_lines(influxd, database, lines)
    catalogue = load_catalogue()
    async with httpx.AsyncClient(base_url=influxd.url, timeout=30) as http:
        reader = InfluxClient(http, database)
        polled, observed = Tracker(catalogue, reader), Tracker(catalogue, reader)
        await polled.poll(time.time_ns(), full=True)
        # events in any order: a spool replayed sends old uplinks after new ones
        for device, t, battery in [*stored[3:], *stored[:3]]:
            observed.observe(
                device, "wristband", t * NS, None if battery is None else float(battery)
            )
        assert observed.readings == polled.readings
        assert observed.readings["C2"] == Reading((now - 10) * NS, 40.0, (now - 20) * NS)
        now_ns = time.time_ns()
        mine, theirs = await observed.updates(now_ns), await polled.updates(now_ns)
        assert sorted(mine, key=repr) == sorted(theirs, key=repr)
        assert len(mine) == 3
