"""Every panel query of the committed dashboards runs on a real InfluxDB and returns data.

The data comes from the real pipeline (`telemetry simulate` -> mosquitto -> `telemetry ingest`
-> influxd); the loss panel is also checked to the unit on points written here by hand.
"""

from __future__ import annotations

import json
import os
import subprocess
import time
from pathlib import Path
from typing import Any

import pytest

from catalogue import load_catalogue
from influx.schema import EVENT
from telemetry.servers import Influxd, Mosquitto
from tests.support.cli import TELEMETRY
from tests.support.influx import select, write_lines
from tests.support.ingest import Ingester, Publisher
from tests.support.poll import wait_for

pytestmark = pytest.mark.integration

BOARDS = Path(__file__).resolve().parents[2] / "dashboards" / "grafana" / "dashboards"
HOURS = 48  # two days of hourly uplinks per device
# Sequence numbers with a gap of 2 and a wrap, so the loss panels have something to show.
SEQS = [(4090 + i + (2 if i >= 10 else 0)) % 4096 for i in range(HOURS)]


def fill_macros(query: str, device: str) -> str:
    """What Grafana sends for a 7-day range at a 1-hour interval with one device chosen."""
    return (
        query.replace("$timeFilter", "time > now() - 7d")
        .replace("$__interval_ms", "3600000")
        .replace("$__interval", "1h")
        .replace("$device", device)
    )


def panel_queries() -> list[tuple[str, str, str]]:
    """(dashboard, panel title, raw query) for every target, plus the template variables."""
    found = []
    for path in sorted(BOARDS.glob("*.json")):
        board = json.loads(path.read_text(encoding="utf-8"))
        for panel in board["panels"]:
            for target in panel["targets"]:
                found.append((path.stem, panel["title"], target["query"]))
        for variable in board["templating"]["list"]:
            found.append((path.stem, f"${variable['name']}", variable["query"]))
        for note in board["annotations"]["list"]:
            found.append((path.stem, f"annotation {note['name']}", note["query"]))
    return found


def reads_events(query: str) -> bool:
    """Status panels and annotations read `event`, which only changes of status fill."""
    return f'FROM "{EVENT}"' in query or 'FROM (SELECT last("state")' in query


def _fixture_lines(now: int) -> tuple[list[str], dict[str, str]]:
    """Two devices per type in the documented layout (influx/schema.py); one reject."""
    lines: list[str] = []
    first_device: dict[str, str] = {}
    for t_index, dtype in enumerate(load_catalogue()):
        for d in range(2):
            device = f"{t_index + 1:X}{d:X}A0B"
            first_device.setdefault(dtype.name, device)
            for h, seq in enumerate(SEQS):
                ts = now - (HOURS - h) * 3600
                values = []
                for spec in dtype.fields.values():
                    lo = spec.minimum if spec.minimum is not None else 0
                    hi = spec.maximum if spec.maximum is not None else 100
                    mid = lo + (hi - lo) * (h % 10 + 1) / 12
                    values.append(
                        f"{spec.name}={round(mid)}i"
                        if spec.storage == "integer"
                        else f"{spec.name}={mid:.2f}"
                    )
                link = f"seq={seq}i,rssi=-{100 + d}.5,snr=8.5,stations={1 + h % 3}i"
                lines.append(f"{dtype.name},device={device} {','.join(values)},{link} {ts}")
                lines.append(
                    f'uplink,device={device},type={dtype.name} data="00",{link},'
                    f'station="0A1B",station_ids="0A1B",out_of_range=0i {ts}'
                )
    lines.append(f'rejected,reason=json topic="uplink/x/1",body="{{",detail="not JSON" {now - 60}')
    # each type's second device is heard again just now: online by the clock
    for dtype in load_catalogue():
        other = first_device[dtype.name][:1] + "1" + first_device[dtype.name][2:]
        lines.append(
            f'uplink,device={other},type={dtype.name} data="00",seq=100i,stations=1i {now - 60}'
        )
    # each type's first device went late then offline (alarm raised) a day ago, and the other
    # came back online after being late
    for dtype in load_catalogue():
        gone = first_device[dtype.name]
        back = gone[:1] + "1" + gone[2:]
        tags = f"device={gone},type={dtype.name}"
        lines += [
            f'event,{tags},kind=state state="late",previous="online",detail="d" {now - 90000}',
            f'event,{tags},kind=state state="offline",previous="late",detail="d" {now - 86400}',
            f'event,{tags},kind=offline state="raised",previous="cleared",detail="d" {now - 86400}',
            f'event,device={back},type={dtype.name},kind=state state="online",previous="late",'
            f'detail="d" {now - 3600}',
        ]
        # and a third one is late now
        late = gone[:1] + "2" + gone[2:]
        lines += [
            f'uplink,device={late},type={dtype.name} data="00",seq=1i,stations=1i {now - 7200}',
            f'event,device={late},type={dtype.name},kind=state state="late",previous="online",'
            f'detail="d" {now - 600}',
        ]
    return lines, first_device


def _has_value(rows: list[dict[str, Any]]) -> bool:
    return any(v is not None for row in rows for k, v in row.items() if k != "time")


def _fill_through_the_pipeline(
    mosquitto: Mosquitto, influxd: Influxd, database: str, prefix: str, work: Path
) -> None:
    """A day of history from the simulators, through the broker and the ingester; one reject."""
    ingest = Ingester(
        work / "ingest",
        mqtt_url=mosquitto.url,
        influx_url=influxd.url,
        database=database,
        prefix=prefix,
    )
    ingest.start()
    try:
        report = work / "simulate.json"
        subprocess.run(
            [
                *(TELEMETRY, "simulate", "--devices", "2", "--backfill", "1d"),
                *("--backfill-only", "--seed", "7", "--report-json", str(report)),
            ],
            env=os.environ
            | {"TELEMETRY_MQTT_URL": mosquitto.url, "TELEMETRY_MQTT_TOPIC_PREFIX": prefix},
            check=True,
            timeout=300,
            capture_output=True,
        )
        uplinks = json.loads(report.read_text())["uplinks"]
        assert uplinks > 100
        publisher = Publisher(mosquitto.host, mosquitto.port)
        publisher.publish(f"{prefix}/wristband/1A2B3C", b"not json")
        publisher.close()

        def stored() -> bool:
            count = select(influxd, database, 'SELECT count("seq") FROM "uplink"')
            rejects = select(influxd, database, 'SELECT count("topic") FROM "rejected"')
            return bool(count and count[0]["count"] == uplinks and rejects)

        wait_for(stored, timeout=120, what=f"{uplinks} uplinks and a reject in InfluxDB")
    finally:
        assert ingest.stop() == 0, ingest.log()


def test_every_query_returns_data_from_the_pipeline(
    mosquitto: Mosquitto, influxd: Influxd, database: str, topic_prefix: str, tmp_path: Path
) -> None:
    _fill_through_the_pipeline(mosquitto, influxd, database, topic_prefix, tmp_path)
    devices = {}
    for dtype in load_catalogue():
        rows = select(influxd, database, f'SHOW TAG VALUES FROM "{dtype.name}" WITH KEY = "device"')
        assert len(rows) == 2, (dtype.name, rows)
        devices[dtype.name] = rows[0]["value"]
    queries = panel_queries()
    assert len(queries) > 30
    for board, title, query in queries:
        rows = select(influxd, database, fill_macros(query, devices.get(board, "")))
        # a day of history ending now has no silent device: no status change was recorded
        # (`test_every_query_returns_data` fills `event`); the query must still run (select
        # fails the test on an InfluxQL error)
        if not reads_events(query):
            assert _has_value(rows), f"{board} / {title}: no data from {query}"
    # The fleet counts every device the simulators ran: 2 of each type.
    (seen,) = [q for b, t, q in queries if b == "fleet" and t == "Devices seen"]
    counts = {r["type"]: r["count"] for r in select(influxd, database, fill_macros(seen, ""))}
    assert counts == dict.fromkeys(devices, 2)


def test_every_query_returns_data(influxd: Influxd, database: str) -> None:
    lines, devices = _fixture_lines(int(time.time()))
    write_lines(influxd, database, lines)
    for board, title, query in panel_queries():
        device = devices.get(board, "")
        rows = select(influxd, database, fill_macros(query, device))
        assert _has_value(rows), f"{board} / {title}: no data from {query}"


def test_loss_panel_counts_the_gap_across_the_wrap(influxd: Influxd, database: str) -> None:
    lines, devices = _fixture_lines(int(time.time()))
    write_lines(influxd, database, lines)
    (query,) = [q for b, t, q in panel_queries() if b == "wristband" and t == "Lost uplinks"]
    rows = select(influxd, database, fill_macros(query, devices["wristband"]))
    # SEQS skips two numbers once (4090..4095, 0..3, then 6..): 2 lost, the wrap costs nothing.
    assert sum(r["sum"] for r in rows) == 2
    assert {r["device"] for r in rows} == {devices["wristband"]}
