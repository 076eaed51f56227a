"""The done-when of device status: `telemetry ingest`, `telemetry api` and `telemetry simulate
--silent 2 --low-battery 1`, all real processes; `/v1/alarms` lists two `offline` alarms (each
after `late`) and one `battery_low`, each one point in `event` and each seen as a `status` event
on `/v1/stream` (DESIGN sections 9 and 10).

The `beacon` test type (tests/support/status_types) reports every ~1.2 s (0.6 of its 2 s
interval), so late, offline and a drained battery take seconds rather than hours.
"""

from __future__ import annotations

import contextlib
import queue
import signal
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.support.apiprocess import StreamReader
from tests.support.cli import TELEMETRY, telemetry_env
from tests.support.pipeline import Pipeline
from tests.support.poll import wait_for

pytestmark = pytest.mark.integration

TYPES = Path(__file__).parent.parent / "support" / "status_types"
KEY = "demo-key-0123456789"


@pytest.fixture
def api_url(pipeline: Pipeline) -> Iterator[str]:
    """`telemetry api` as a subprocess, ready and subscribed to the events on return; it must
    stop on SIGTERM within 20 s at the end."""
    api = pipeline.make_api(
        api_keys=KEY,
        catalogue_dir=TYPES,
        status_poll_seconds=1,  # the beacon's 2 s interval needs a faster look
    ).start(stream=True)
    yield api.url
    api.stop(signal.SIGTERM, timeout=20)


def test_silent_and_low_battery_devices_raise_their_alarms_once(
    pipeline: Pipeline, api_url: str
) -> None:
    headers = {"Authorization": f"Bearer {KEY}"}
    stream = StreamReader(api_url, {"events": "status"}, headers)
    try:
        _run_demo(pipeline, api_url, stream, headers)
    finally:
        stream.close()


def _run_demo(
    pipeline: Pipeline, api_url: str, stream: StreamReader, headers: dict[str, str]
) -> None:
    pipeline.start(catalogue_dir=TYPES, status_poll_seconds=1)
    tmp_path = pipeline.workdir
    env = telemetry_env(
        mqtt_url=pipeline.mosquitto.url, mqtt_topic_prefix=pipeline.prefix, catalogue_dir=TYPES
    )
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
        lambda: r if len(r := pipeline.rows("SELECT * FROM event")) >= 7 else None,
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
