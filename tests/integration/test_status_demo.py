"""The done-when of device status: `telemetry ingest`, `telemetry api` and `telemetry simulate
--silent 2 --low-battery 1`, all real processes; `/v1/alarms` lists two `offline` alarms (each
after `late`) and one `battery_low`, each one point in `event` and each seen as a `status` event
on `/v1/stream` (DESIGN sections 9 and 10).

The `beacon` test type (tests/support/status_types) reports every ~1.2 s (0.6 of its 2 s
interval), so late, offline and a drained battery take seconds rather than hours.
"""

from __future__ import annotations

import contextlib
import os
import queue
import signal
import subprocess
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from telemetry.servers import Influxd, Mosquitto, free_port
from tests.support.apiprocess import StreamReader
from tests.support.influx import select
from tests.support.ingest import TELEMETRY, StartIngester
from tests.support.poll import wait_for

pytestmark = pytest.mark.integration

TYPES = Path(__file__).parent.parent / "support" / "status_types"
KEY = "demo-key-0123456789"


@pytest.fixture
def events_prefix() -> str:
    return f"events-{uuid.uuid4().hex[:10]}"  # this test's own events, on the shared broker


def _env(**values: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("TELEMETRY_")}
    return env | {f"TELEMETRY_{k.upper()}": v for k, v in values.items()}


@pytest.fixture
def api_url(
    influxd: Influxd, mosquitto: Mosquitto, database: str, events_prefix: str, tmp_path: Path
) -> Iterator[str]:
    """`telemetry api` as a subprocess, ready and subscribed to the events on return."""
    port = free_port()
    env = _env(
        mqtt_url=mosquitto.url,
        mqtt_events_prefix=events_prefix,
        influx_url=influxd.url,
        influx_database=database,
        api_keys=KEY,
        catalogue_dir=str(TYPES),
        api_port=str(port),
        status_poll_seconds="1",  # the beacon's 2 s interval needs a faster look
    )
    with (tmp_path / "api.log").open("wb") as log:
        proc = subprocess.Popen([TELEMETRY, "api"], env=env, stdout=log, stderr=log, cwd=tmp_path)
    url = f"http://127.0.0.1:{port}"

    def ready() -> bool:
        try:
            return httpx.get(f"{url}/readyz", timeout=1).status_code == 200
        except httpx.HTTPError:
            return proc.poll() is not None

    wait_for(ready, what="the API to be ready")
    log_text = (tmp_path / "api.log").read_text
    wait_for(lambda: "stream: subscribed" in log_text() or proc.poll() is not None, what="events")
    assert proc.poll() is None, log_text()
    yield url
    proc.send_signal(signal.SIGTERM)
    proc.wait(20)


def test_silent_and_low_battery_devices_raise_their_alarms_once(  # noqa: PLR0917  # fixtures
    start_ingester: StartIngester,
    mosquitto: Mosquitto,
    influxd: Influxd,
    database: str,
    topic_prefix: str,
    events_prefix: str,
    api_url: str,
    tmp_path: Path,
) -> None:
    headers = {"Authorization": f"Bearer {KEY}"}
    stream = StreamReader(api_url, {"events": "status"}, headers)
    try:
        _run_demo(
            start_ingester,
            mosquitto,
            influxd,
            database,
            topic_prefix,
            events_prefix,
            api_url,
            tmp_path,
            stream,
            headers,
        )
    finally:
        stream.close()


def _run_demo(  # noqa: PLR0917  # the test's fixtures, passed on
    start_ingester: StartIngester,
    mosquitto: Mosquitto,
    influxd: Influxd,
    database: str,
    topic_prefix: str,
    events_prefix: str,
    api_url: str,
    tmp_path: Path,
    stream: StreamReader,
    headers: dict[str, str],
) -> None:
    start_ingester(
        mqtt_url=mosquitto.url,
        influx_url=influxd.url,
        database=database,
        prefix=topic_prefix,
        catalogue_dir=TYPES,
        status_poll_seconds=1,
        mqtt_events_prefix=events_prefix,
    )
    env = _env(mqtt_url=mosquitto.url, mqtt_topic_prefix=topic_prefix, catalogue_dir=str(TYPES))
    args = ["--types", "beacon", "--devices", "5", "--loss", "0", "--duration", "120s"]
    args += ["--silent", "2", "--silent-after", "3s", "--low-battery", "1"]
    with (tmp_path / "simulate.log").open("wb") as log:
        sim = subprocess.Popen(
            [TELEMETRY, "simulate", *args], env=env, stdout=log, stderr=log, cwd=tmp_path
        )

    def alarms() -> list[dict[str, Any]] | None:
        got = httpx.get(f"{api_url}/v1/alarms", headers=headers, timeout=5).json()["alarms"]
        kinds = sorted(a["kind"] for a in got)
        return got if kinds == ["battery_low", "offline", "offline"] else None

    try:
        active = wait_for(alarms, timeout=60, what="two offline alarms and one battery_low")
        fleet = httpx.get(f"{api_url}/v1/fleet", headers=headers, timeout=5).json()
    finally:
        sim.send_signal(signal.SIGTERM)
        sim.wait(30)
    sim_log = (tmp_path / "simulate.log").read_text()
    offline = {a["device"] for a in active if a["kind"] == "offline"}
    (drained,) = (a["device"] for a in active if a["kind"] == "battery_low")
    assert all(d in sim_log.split("going silent after")[1].splitlines()[0] for d in offline)
    assert drained in sim_log.split("draining the battery:")[1].splitlines()[0]
    (beacons,) = (t for t in fleet["types"] if t["type"] == "beacon")
    assert beacons["devices"] == 5
    assert beacons["states"] == {"online": 3, "late": 0, "offline": 2}
    assert beacons["alarms"] == {"offline": 2, "battery_low": 1}
    # one point per change: each silent device late, then offline, and its alarm raised once
    # (the API and the ingester poll on their own: the points may come a poll after the view)
    rows = wait_for(
        lambda: r if len(r := select(influxd, database, "SELECT * FROM event")) >= 7 else None,
        what="the event points of the three alarms",
    )
    for device in offline:
        mine = sorted((r["kind"], r["state"]) for r in rows if r["device"] == device)
        assert mine == [("offline", "raised"), ("state", "late"), ("state", "offline")]
    battery = [r for r in rows if r["kind"] == "battery_low"]
    assert [(r["device"], r["state"]) for r in battery] == [(drained, "raised")]
    # ... and each change seen once on the stream, as the `status` event of DESIGN section 9
    seen: list[dict[str, Any]] = []

    def stream_has_all() -> bool:
        with contextlib.suppress(queue.Empty):
            while True:
                seen.append(stream.next(timeout=0.1).data)
        states = {d: [e["state"] for e in seen if e["device"] == d] for d in offline}
        drained_alarms = [[a["kind"] for a in e["alarms"]] for e in seen if e["device"] == drained]
        return all(s[-2:] == ["late", "offline"] for s in states.values()) and any(
            "battery_low" in kinds for kinds in drained_alarms
        )

    wait_for(stream_has_all, what="the status events on /v1/stream")
    assert stream.status == 200
    for event in seen:
        assert set(event) == {"device", "type", "time", "state", "previous", "alarms"}
        assert event["type"] == "beacon"
    for device in offline:
        mine = [(e["previous"], e["state"]) for e in seen if e["device"] == device]
        assert mine[-2:] == [("online", "late"), ("late", "offline")]
        # the offline event carries the alarm
        went_offline = next(e for e in seen if e["device"] == device and e["state"] == "offline")
        assert [a["kind"] for a in went_offline["alarms"]] == ["offline"]
