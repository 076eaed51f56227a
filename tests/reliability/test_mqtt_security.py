"""MQTT security with the committed ACL (deploy/mosquitto/acl): a device cannot speak for another.

Two ways to try: publish under another device's topic (the broker's ACL drops it), or publish
under one's own topic a body naming another device (ingest rejects it as `device_mismatch`).
Either way nothing is stored for the other device. A control uplink shows the path works.
"""

from __future__ import annotations

import subprocess
from collections.abc import Callable
from pathlib import Path

import pytest

from telemetry.servers import Influxd, Mosquitto, find_binary
from tests.support.ingest import Ingester
from tests.support.ledger import DeviceStream, LedgerPublisher, influx_query
from tests.support.poll import wait_for

ACL = Path(__file__).resolve().parents[2] / "deploy" / "mosquitto" / "acl"
PREFIX = "uplink"  # the ACL's pattern is written for the default prefix
ATTACKER, VICTIM = "1A2B3C", "4D5E6F"
PASSWORDS = {"ingest": "ingest-pw", ATTACKER: "attacker-pw", VICTIM: "victim-pw"}


def _rows(server: Influxd, db: str, measurement: str, device: str) -> list[dict[str, object]]:
    q = f'SELECT * FROM "{measurement}" WHERE "device" = \'{device}\''  # noqa: S608  # our ids
    return influx_query(server, db, q)


@pytest.mark.integration
@pytest.mark.timeout(180)
def test_a_device_cannot_store_uplinks_for_another(
    make_mosquitto: Callable[..., Mosquitto],
    influxd: Influxd,
    database: str,
    tmp_path: Path,
    make_ingester: Callable[..., Ingester],
) -> None:
    if not ACL.is_file():
        pytest.skip("deploy/mosquitto/acl is not written yet (stack helper)")
    passwd = tmp_path / "passwd"
    passwd.touch()
    for user, password in PASSWORDS.items():
        subprocess.run(
            [find_binary("mosquitto_passwd"), "-b", str(passwd), user, password], check=True
        )
    broker = make_mosquitto(password_file=passwd, acl_file=ACL)
    ing = make_ingester(
        mqtt_url=f"mqtt://ingest:{PASSWORDS['ingest']}@{broker.host}:{broker.port}",
        influx_url=influxd.url,
        database=database,
        prefix=PREFIX,
    )
    # Subscribed before anything is published: the broker keeps nothing for a session that
    # does not exist yet (seen in CI: the control uplink published first was never delivered).
    wait_for(lambda: ing.connections() >= 1, 30, "ingest subscribed")
    attacker, victim = DeviceStream(ATTACKER), DeviceStream(VICTIM)
    with LedgerPublisher(
        broker.host, broker.port, PREFIX, username=ATTACKER, password=PASSWORDS[ATTACKER]
    ) as pub:
        forged = victim.next()
        # 1. Under the victim's topic, with the victim's body: the ACL must drop it.
        pub.publish_raw(forged.topic(PREFIX), forged.body())
        # 2. Under its own topic, with a body naming the victim: ingest must reject it.
        pub.publish_raw(attacker.next().topic(PREFIX), victim.next().body())
        # 3. Control: its own uplink, which must be stored.
        control = attacker.next()
        pub.publish(control)
        assert pub.wait_all_acked(10)
        wait_for(
            lambda: any(
                int(str(r["time"])) == control.time
                for r in _rows(influxd, database, "uplink", ATTACKER)
            ),
            30,
            "control uplink stored",
        )
        wait_for(
            lambda: bool(
                influx_query(
                    influxd,
                    database,
                    'SELECT * FROM "rejected" WHERE "reason" = \'device_mismatch\'',
                )
            ),
            30,
            "device_mismatch kept",
        )
    victim_points = _rows(influxd, database, "uplink", VICTIM) + _rows(
        influxd, database, "weather_station", VICTIM
    )
    mismatches = influx_query(
        influxd, database, 'SELECT * FROM "rejected" WHERE "reason" = \'device_mismatch\''
    )
    print(
        f"\n=== MQTT device impersonation ===\n  victim points stored: {len(victim_points)}"
        f"\n  device_mismatch rejects: {len(mismatches)}"
    )
    assert victim_points == [], "a device stored data under another device's id"
    # Only the body/topic mismatch reached ingest: the foreign topic never left the broker.
    assert len(mismatches) == 1
