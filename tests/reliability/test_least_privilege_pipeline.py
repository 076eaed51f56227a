"""The whole path with InfluxDB authentication on: ingest as a write-only user, the API read-only.

Issue 6 asks that the ingester write with a write-only user and the API read with a read-only
one. This runs exactly that: `telemetry ingest` (subprocess) with `TELEMETRY_INFLUX_USERNAME=
ingester` (WRITE only), the API app with `api` (READ only), against an `influxd` with
`auth-enabled = true`, and checks what is stored and served against values computed here.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path

import pytest

from telemetry.servers import Influxd, Mosquitto
from tests.reliability.roles import ROLES, as_role, create_roles
from tests.support.apiclient import api_client
from tests.support.influx import select
from tests.support.ingest import Ingester, Publisher, wristband_payload
from tests.support.poll import wait_for

INGESTER, API = ROLES[0], ROLES[1]
DEVICE = "C0FFEE"


@pytest.mark.integration
@pytest.mark.asyncio
async def test_write_only_ingester_and_read_only_api(
    mosquitto: Mosquitto,
    make_influxd: Callable[..., Influxd],
    topic_prefix: str,
    tmp_path: Path,
) -> None:
    influxd = make_influxd(auth=True)
    database = "telemetry"
    influxd.create_database(database)
    create_roles(influxd, database)
    assert (INGESTER.privilege, API.privilege) == ("WRITE", "READ")

    ingester = Ingester(
        tmp_path / "ingest",
        mqtt_url=mosquitto.url,
        influx_url=influxd.url,
        database=database,
        prefix=topic_prefix,
        influx_username=INGESTER.user,
        influx_password=INGESTER.password,
    )
    ingester.start()
    now = int(time.time()) - 60
    sent = {now - 600 * i: (70 + i, 1000 * i, 50 * i, i % 4, 90 - i) for i in range(5)}
    pub = Publisher(mosquitto.host, mosquitto.port)
    try:
        for seq, (t, values) in enumerate(sorted(sent.items())):
            for station, rssi in (("0A1B", -120.0), ("0C2D", -101.5)):  # two stations hear it
                body = {
                    "device": DEVICE.lower(),
                    "time": t,
                    "seqNumber": seq,
                    "data": wristband_payload(*values),
                    "station": station,
                    "rssi": rssi,
                    "snr": 10.0,
                }
                pub.publish(f"{topic_prefix}/wristband/{DEVICE}", body)
        stored = wait_for(
            lambda: len(rows := select(influxd, database, "SELECT * FROM wristband")) == 5 and rows,
            what="5 points stored by the write-only ingester",
        )
    finally:
        pub.close()
        assert ingester.stop() == 0
    assert ingester.exited()
    for row in stored:
        assert row["device"] == DEVICE
        assert row["stations"] == 2  # the two copies merged
        assert row["rssi"] == -101.5  # the best station's
    # The ingester's user really is write-only: reading what it wrote is refused.
    r = as_role(
        influxd, INGESTER, "GET", "/query", params={"db": database, "q": "SELECT * FROM uplink"}
    )
    assert r.status_code == 403, r.text

    async with api_client(
        influxd.url,
        database,
        influx_username=API.user,
        influx_password=API.password,
    ) as client:
        r = await client.get(
            f"/v1/devices/{DEVICE}/history",
            params={"start": str(now - 3600), "end": str(now + 60), "fields": "heart_rate,steps"},
        )
        assert r.status_code == 200, r.text
        points = r.json()["points"]
        expected = [{"heart_rate": v[0], "steps": v[1]} for _, v in sorted(sent.items())]
        assert [{k: p[k] for k in ("heart_rate", "steps")} for p in points] == expected
        detail = (await client.get(f"/v1/devices/{DEVICE}")).json()
        assert detail["messages"] == 5
        assert detail["duplicates"] == 5  # one extra station per transmission
        assert detail["lost"] == 0
