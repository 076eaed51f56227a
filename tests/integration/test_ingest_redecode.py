"""`telemetry redecode` rewrites decoded points from the raw `uplink` points; idempotent."""

from __future__ import annotations

import subprocess

import pytest

from telemetry.servers import Influxd
from tests.support.cli import run_telemetry, telemetry_env
from tests.support.influx import select, write_lines
from tests.support.ingest import decode_wristband, wristband_payload

pytestmark = pytest.mark.integration

T0 = 1_716_000_000


def redecode(influxd: Influxd, database: str, *args: str) -> subprocess.CompletedProcess[str]:
    env = telemetry_env(influx_url=influxd.url, influx_database=database)
    return run_telemetry("redecode", *args, env=env, timeout=60)


def test_redecode_rewrites_from_raw_and_is_idempotent(influxd: Influxd, database: str) -> None:
    payloads = {
        ("A1", T0 + i): wristband_payload(60 + i, 1000 * i, 10 * i, i % 4, 90 - i) for i in range(5)
    }
    payloads[("B2", T0)] = wristband_payload(80, 5, 5, 0, 50)
    lines = []
    for (device, t), data in payloads.items():
        lines.append(
            f'uplink,device={device},type=wristband data="{data}",seq={t - T0}i,stations=2i,'
            f'rssi=-101.5,station="0A",station_ids="0A,0B",out_of_range=0i {t}'
        )
        lines.append(f"wristband,device={device} heart_rate=1i,seq={t - T0}i {t}")  # a bad decoder
    write_lines(influxd, database, lines)

    done = redecode(
        influxd, database, "--device", "a1", "--start", str(T0), "--end", "2024-05-18T02:40:04Z"
    )
    assert done.returncode == 0, done.stderr
    assert "redecoded 4 uplinks of 1 devices" in done.stdout
    rows = select(influxd, database, "SELECT * FROM wristband WHERE device = 'A1'")
    for row in rows[:4]:
        t = T0 + row["seq"]
        assert {k: row[k] for k in decode_wristband(payloads[("A1", t)])} == decode_wristband(
            payloads[("A1", t)]
        )
        assert (row["stations"], row["rssi"]) == (2, -101.5)
    assert rows[4]["heart_rate"] == 1  # outside --end: untouched
    assert (
        select(influxd, database, "SELECT heart_rate FROM wristband WHERE device = 'B2'")[0][
            "heart_rate"
        ]
        == 1
    )

    for _ in range(2):  # all devices, twice: same result
        done = redecode(influxd, database)
        assert done.returncode == 0, done.stderr
        assert "redecoded 6 uplinks of 2 devices (0 skipped)" in done.stdout
    assert len(select(influxd, database, "SELECT * FROM wristband")) == 6
    assert len(select(influxd, database, "SELECT * FROM uplink")) == 6
    b2 = select(influxd, database, "SELECT * FROM wristband WHERE device = 'B2'")[0]
    assert b2["heart_rate"] == 80


def test_bad_arguments_give_one_line(influxd: Influxd, database: str) -> None:
    for args in (["--start", "yesterday"], ["--device", "XYZ"], ["--start", "10", "--end", "5"]):
        done = redecode(influxd, database, *args)
        assert done.returncode == 2
        assert done.stderr.startswith("telemetry: ")
        assert done.stderr.count("\n") == 1


def test_redecode_reads_a_padded_payload_as_ingest_does(influxd: Influxd, database: str) -> None:
    # a 12-byte payload for the 9-byte wristband: the layout's fields, the padding untouched
    nine = wristband_payload(66, 4321, 210, 3, 77)
    padded = nine + "00ffee"
    write_lines(
        influxd,
        database,
        [
            f'uplink,device=C3,type=wristband data="{padded}",seq=9i,stations=1i,'
            f'rssi=-111.0,station="0A",station_ids="0A",out_of_range=0i {T0}',
            f"wristband,device=C3 heart_rate=1i,seq=9i {T0}",  # a bad decoder's point
        ],
    )
    done = redecode(influxd, database, "--device", "C3")
    assert done.returncode == 0, done.stderr
    assert "redecoded 1 uplinks of 1 devices (0 skipped)" in done.stdout
    (row,) = select(influxd, database, "SELECT * FROM wristband")
    assert {k: row[k] for k in decode_wristband(nine)} == decode_wristband(nine)
    (up,) = select(influxd, database, "SELECT data FROM uplink")
    assert up["data"] == padded
