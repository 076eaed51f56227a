"""Sigfox callbacks through a real `telemetry api` and `telemetry ingest`, broker and InfluxDB.

Bodies are written here the way Sigfox sends them (every value a quoted string, as users write
their templates), apart from the project's simulators.
"""

from __future__ import annotations

import base64
import json
import secrets
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import replace
from pathlib import Path
from typing import Any

import httpx
import pytest

from catalogue import load_catalogue
from simulators.fleet import build_fleet
from telemetry.servers import Influxd, Mosquitto
from tests.support.apiprocess import ADMIN_KEY, CALLBACK_KEY, READ_KEY, ApiProcess
from tests.support.cli import run_telemetry, telemetry_env
from tests.support.events import EventSubscriber
from tests.support.influx import select
from tests.support.ingest import wristband_payload
from tests.support.pipeline import Pipeline
from tests.support.poll import wait_for

pytestmark = pytest.mark.integration

BEARER = {"Authorization": f"Bearer {CALLBACK_KEY}"}
ANSWER_LIMIT = 5.0  # s, DESIGN section 11: every answer within 5 s


def basic(key: str, user: str = "sigfox") -> dict[str, str]:
    token = base64.b64encode(f"{user}:{key}".encode()).decode()
    return {"Authorization": f"Basic {token}"}


def new_device() -> str:
    return secrets.token_hex(3).upper()


def uplink(device: str, seq: int, t: int, **extra: str) -> dict[str, str]:
    """A DATA UPLINK body as a Sigfox template with quoted values renders it."""
    return {
        "device": device,
        "time": str(t),
        "seqNumber": str(seq),
        "data": wristband_payload(60 + seq % 50, seq, 10, 1, 80),
        "station": "0A1B",
        "rssi": "-118.50",
        "snr": "9.20",
        "duplicate": "false",
        "deviceTypeId": "5f1e2d3c4b5a69788796a5b4",
        "avgSnr": "12.30",
        "lqi": "Good",
        "operatorName": "SIGFOX_France",
        "countryCode": "250",
    } | extra


class Stack(Pipeline):
    """The pipeline with an ingester and an API process taking Sigfox's callbacks."""

    @property
    def api(self) -> ApiProcess:
        return self.apis[0]

    def post(self, body: dict[str, Any], headers: dict[str, str] | None = None) -> httpx.Response:
        return httpx.post(
            f"{self.api.url}/v1/sigfox/wristband",
            json=body,
            headers=BEARER if headers is None else headers,
            timeout=30,
        )

    def decoded(self, device: str) -> list[dict[str, Any]]:
        return self.rows(f"SELECT * FROM wristband WHERE device = '{device}'")  # noqa: S608

    def raw(self, device: str) -> list[dict[str, Any]]:
        return self.rows(f"SELECT * FROM uplink WHERE device = '{device}'")  # noqa: S608

    def rejected(self, reason: str) -> list[dict[str, Any]]:
        return self.rows(f"SELECT * FROM rejected WHERE reason = '{reason}'")  # noqa: S608


@pytest.fixture
def stack(pipeline: Pipeline) -> Stack:
    """The API process is killed at the end, then the ingester (the `pipeline` fixture)."""
    s = Stack.like(pipeline)
    s.start()
    s.make_api().start()
    return s


def stored(stack: Stack, device: str, n: int = 1) -> list[dict[str, Any]]:
    return wait_for(lambda: len(rows := stack.decoded(device)) >= n and rows, what="stored")


def test_each_body_form_with_strings_everywhere(stack: Stack) -> None:
    t = int(time.time()) - 60
    devices = [new_device() for _ in range(3)]
    url = f"{stack.api.url}/v1/sigfox/wristband"
    answers = [
        httpx.post(url, json=uplink(devices[0], 1, t), headers=BEARER),
        httpx.post(url, data=uplink(devices[1], 2, t), headers=BEARER),  # form-urlencoded
        httpx.get(url, params=uplink(devices[2], 3, t), headers=BEARER),
    ]
    assert [a.status_code for a in answers] == [204, 204, 204], [a.text for a in answers]
    for seq, device in enumerate(devices, start=1):
        (row,) = stored(stack, device)
        assert row["time"] == time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(t))
        assert (row["seq"], row["heart_rate"], row["steps"], row["battery"]) == (
            seq,
            60 + seq,
            seq,
            80,
        )
        assert row["rssi"] == -118.5
        assert row["snr"] == 9.2
        (raw,) = stack.raw(device)
        assert raw["station"] == "0A1B"
        assert raw["device_type_id"] == "5f1e2d3c4b5a69788796a5b4"


def test_a_retried_callback_is_stored_once(stack: Stack) -> None:
    device, t = new_device(), int(time.time()) - 30
    body = uplink(device, 7, t)
    for _ in range(3):  # the first, and Sigfox's retries after a timeout
        assert stack.post(body).status_code == 204
    stored(stack, device)
    later = uplink(device, 8, t + 1)  # a later uplink, so ingest has seen the retries first
    assert stack.post(later).status_code == 204
    rows = stored(stack, device, 2)
    assert [r["seq"] for r in rows] == [7, 8]
    assert rows[0]["stations"] == 1
    assert len(stack.raw(device)) == 2


def test_uplink_and_advanced_callbacks_merge(stack: Stack) -> None:
    """DATA UPLINK first, its DATA ADVANCED twin later: stations from the ADVANCED list."""
    device, t = new_device(), int(time.time()) - 40
    assert stack.post(uplink(device, 11, t)).status_code == 204
    stored(stack, device)
    advanced = {
        "device": device,
        "time": str(t),
        "seqNumber": "11",
        "data": uplink(device, 11, t)["data"],
        "deviceTypeId": "5f1e2d3c4b5a69788796a5b4",
        "lqi": "Excellent",
        "linkQuality": "EXCELLENT",
        "fixedLat": "0.0",
        "fixedLng": "0.0",
        "operatorName": "SIGFOX_France",
        "countryCode": "250",
        "computedLocation": {"lat": 43.6, "lng": 1.44, "radius": 1500, "source": 2, "status": 1},
        # Sigfox expands {duplicates} to a JSON list, unquoted in the template
        "duplicates": [
            {"bsId": "0A1B", "rssi": -118.5, "nbRep": 3},
            {"bsId": "0C2D", "rssi": -101.0, "nbRep": 3},
            {"bsId": "0E3F", "rssi": -125.0, "nbRep": 2},
        ],
    }
    assert stack.post(advanced).status_code == 204
    # DESIGN section 1: distinct stations named by any copy; the best rssi and its station.
    wait_for(lambda: stack.decoded(device)[0]["stations"] != 1, what="the ADVANCED copy merged")
    (row,) = stack.decoded(device)
    assert row["stations"] == 3
    assert row["rssi"] == -101.0
    (raw,) = stack.raw(device)
    assert raw["station"] == "0C2D"


def test_form_advanced_body_parses_its_json_values(stack: Stack) -> None:
    device, t = new_device(), int(time.time()) - 45
    body = uplink(device, 12, t) | {
        "duplicates": json.dumps([{"bsId": "0A1B", "rssi": -118.5}, {"bsId": "0C2D", "rssi": -99}]),
        "computedLocation": json.dumps({"lat": 43.6, "lng": 1.44}),
    }
    answer = httpx.post(f"{stack.api.url}/v1/sigfox/wristband", data=body, headers=BEARER)
    assert answer.status_code == 204, answer.text
    (row,) = stored(stack, device)
    assert row["stations"] == 2


def test_basic_and_bearer_and_each_role(stack: Stack) -> None:
    t = int(time.time()) - 50
    a, b = new_device(), new_device()
    assert stack.post(uplink(a, 1, t), basic(CALLBACK_KEY)).status_code == 204
    assert stack.post(uplink(b, 1, t), BEARER).status_code == 204
    stored(stack, a)
    stored(stack, b)
    url = stack.api.url
    # Callbacks: only the callback key.
    for key in (READ_KEY, ADMIN_KEY):
        for headers in ({"Authorization": f"Bearer {key}"}, basic(key)):
            assert stack.post(uplink(a, 2, t + 1), headers).status_code == 403
    assert stack.post(uplink(a, 2, t + 1), basic("wrong")).status_code == 401
    assert stack.post(uplink(a, 2, t + 1), {}).status_code == 401
    # Reading: read and admin keys, Bearer or Basic; not the callback key.
    assert httpx.get(f"{url}/v1/devices/{a}", headers=basic(READ_KEY)).status_code == 200
    assert (
        httpx.get(
            f"{url}/v1/devices/{a}", headers={"Authorization": f"Bearer {ADMIN_KEY}"}
        ).status_code
        == 200
    )
    assert httpx.get(f"{url}/v1/devices/{a}", headers=BEARER).status_code == 403
    assert httpx.get(f"{url}/v1/devices/{a}/downlinks", headers=BEARER).status_code == 403
    # Downlinks: admin to queue and cancel; a read key may list them only.
    data = {"data": "0102030405060708"}
    read = {"Authorization": f"Bearer {READ_KEY}"}
    admin = {"Authorization": f"Bearer {ADMIN_KEY}"}
    assert httpx.post(f"{url}/v1/devices/{a}/downlinks", json=data, headers=read).status_code == 403
    assert (
        httpx.post(f"{url}/v1/devices/{a}/downlinks", json=data, headers=BEARER).status_code == 403
    )
    made = httpx.post(f"{url}/v1/devices/{a}/downlinks", json=data, headers=admin)
    assert made.status_code == 201, made.text
    ident = made.json()["id"]
    assert httpx.get(f"{url}/v1/devices/{a}/downlinks", headers=read).status_code == 200
    assert httpx.delete(f"{url}/v1/devices/{a}/downlinks/{ident}", headers=read).status_code == 403
    assert httpx.delete(f"{url}/v1/devices/{a}/downlinks/{ident}", headers=admin).status_code == 204
    listed = httpx.get(f"{url}/v1/devices/{a}/downlinks", headers=read).json()["downlinks"]
    assert [(d["id"], d["status"]) for d in listed] == [(ident, "cancelled")]
    assert str(CALLBACK_KEY) not in stack.api.log()


@pytest.mark.parametrize(
    ("body", "reason"),
    [
        ({"device": "ABC123", "time": "1716000000", "data": "00"}, "envelope"),  # no seqNumber
        ({"device": "XYZ", "time": "1716000000", "seqNumber": "1", "data": "00"}, "envelope"),
        ({"device": "ABC124", "time": "17x", "seqNumber": "1", "data": "00"}, "envelope"),
        ({"device": "ABC125", "time": "1716000000", "seqNumber": "1", "data": "0g"}, "envelope"),
        (
            {"device": "ABC126", "time": "1716000000", "seqNumber": "1", "data": "0102"},
            "payload_length",
        ),
        ({"device": "ABC127", "time": str(2**32), "seqNumber": "1", "data": "00"}, "future"),
    ],
)
def test_a_refused_body_is_400_and_kept(stack: Stack, body: dict[str, str], reason: str) -> None:
    answer = stack.post(body)
    assert answer.status_code == 400, answer.text
    problem = answer.json()
    assert answer.headers["content-type"] == "application/problem+json"
    assert problem["reason"] == reason
    assert problem["detail"].startswith(f"{reason}: ")
    kept = [r for r in stack.rejected(reason) if json.loads(r["body"]) == body]
    assert len(kept) == 1, stack.rejected(reason)


def test_unknown_type_not_json_and_too_large(stack: Stack) -> None:
    url = f"{stack.api.url}/v1/sigfox"
    body = uplink(new_device(), 1, int(time.time()))
    answer = httpx.post(f"{url}/toaster", json=body, headers=BEARER)
    assert (answer.status_code, answer.json()["reason"]) == (400, "unknown_type")
    assert any("toaster" in r["topic"] for r in stack.rejected("unknown_type"))
    answer = httpx.post(
        f"{url}/wristband",
        content=b"{not json",
        headers=BEARER | {"content-type": "application/json"},
    )
    assert (answer.status_code, answer.json()["reason"]) == (400, "json")
    assert any(r["body"] == "{not json" for r in stack.rejected("json"))
    huge = body | {"padding": "x" * 1100}
    assert httpx.post(f"{url}/wristband", json=huge, headers=BEARER).status_code == 413
    assert stack.rejected("too_large")


def test_bidir_with_and_without_a_queued_downlink(stack: Stack) -> None:
    device, t = new_device(), int(time.time()) - 100
    admin = {"Authorization": f"Bearer {ADMIN_KEY}"}
    # `<topic>/#` matches the topic itself: this device's downlink events only
    downlinks = f"{stack.events_prefix}/wristband/{device}/downlink"
    events = EventSubscriber(stack.mosquitto.host, stack.mosquitto.port, downlinks)
    # No downlink queued: 204 for a BIDIR callback.
    assert stack.post(uplink(device, 1, t, ack="true")).status_code == 204
    stored(stack, device)  # the device is known now: no `type` needed to queue
    url = f"{stack.api.url}/v1/devices/{device}/downlinks"
    first = httpx.post(url, json={"data": "0102030405060708"}, headers=admin).json()
    second = httpx.post(url, json={"data": "A1A2A3A4A5A6A7A8"}, headers=admin).json()
    assert (first["status"], first["device"], first["type"]) == ("queued", device, "wristband")
    # Not a BIDIR callback (ack false): no downlink taken.
    assert stack.post(uplink(device, 2, t + 1, ack="false")).status_code == 204
    answer = stack.post(uplink(device, 3, t + 2, ack="true"))
    assert answer.status_code == 200
    assert answer.json() == {device: {"downlinkData": "0102030405060708"}}
    answer = stack.post(uplink(device, 4, t + 3, ack="true"))
    assert answer.json() == {device: {"downlinkData": "a1a2a3a4a5a6a7a8"}}
    assert stack.post(uplink(device, 5, t + 4, ack="true")).status_code == 204
    listed = httpx.get(url, headers=admin).json()["downlinks"]
    assert [(d["id"], d["status"], d["seq"]) for d in listed] == [
        (first["id"], "sent", 3),
        (second["id"], "sent", 4),
    ]
    assert all(d["sent"] for d in listed)
    want = [
        (first["id"], "queued"),
        (second["id"], "queued"),
        (first["id"], "sent"),
        (second["id"], "sent"),
    ]
    got = [m.body for m in events.until(4)]
    assert events.messages.empty()
    assert [(e["id"], e["status"]) for e in got] == want
    assert got[2]["seq"] == 3
    assert set(got[0]) == {"id", "device", "type", "data", "status", "time"}
    events.close()


def test_broker_down_answers_503_quickly_then_2xx_once_back(
    make_mosquitto: Callable[..., Mosquitto], pipeline: Pipeline
) -> None:
    broker = make_mosquitto()
    stack = Stack.like(pipeline)
    stack.start(mqtt_url=broker.url)
    api = stack.make_api(mqtt_url=broker.url).start()
    try:
        device, t = new_device(), int(time.time()) - 20
        broker.stop()
        started = time.monotonic()
        answer = stack.post(uplink(device, 1, t))
        took = time.monotonic() - started
        assert answer.status_code == 503, answer.text
        assert int(answer.headers["retry-after"]) > 0
        assert took < ANSWER_LIMIT  # the contract's bound, not a performance goal
        broker.start()
        # Sigfox retries the same callback until it is taken.
        wait_for(lambda: stack.post(uplink(device, 1, t)).status_code == 204, what="2xx once back")
        (row,) = stored(stack, device)
        assert row["seq"] == 1
    finally:
        api.kill()


def test_a_queued_downlink_survives_an_api_restart_and_goes_once(
    stack: Stack, influxd: Influxd
) -> None:
    device, t = new_device(), int(time.time()) - 200
    admin = {"Authorization": f"Bearer {ADMIN_KEY}"}
    made = httpx.post(
        f"{stack.api.url}/v1/devices/{device}/downlinks",
        json={"data": "00000000000000ff", "type": "wristband"},
        headers=admin,
    )
    assert made.status_code == 201, made.text
    stack.api.stop()
    stack.api.start()
    answers = [stack.post(uplink(device, seq, t + seq, ack="true")) for seq in range(1, 4)]
    assert [a.status_code for a in answers] == [200, 204, 204]
    assert answers[0].json() == {device: {"downlinkData": "00000000000000ff"}}


def test_two_api_processes_send_a_downlink_exactly_once(
    stack: Stack, mosquitto: Mosquitto, influxd: Influxd, tmp_path: Path
) -> None:
    second = ApiProcess(tmp_path / "api2", **_same_settings(stack.api))
    second.start()
    try:
        device, t = new_device(), int(time.time()) - 300
        admin = {"Authorization": f"Bearer {ADMIN_KEY}"}
        made = httpx.post(
            f"{second.url}/v1/devices/{device}/downlinks",
            json={"data": "1122334455667788", "type": "wristband"},
            headers=admin,
        )
        assert made.status_code == 201
        # Both processes see the same queue.
        listed = httpx.get(f"{stack.api.url}/v1/devices/{device}/downlinks", headers=admin)
        assert [d["id"] for d in listed.json()["downlinks"]] == [made.json()["id"]]
        urls = [stack.api.url, second.url] * 8

        def bidir(i: int) -> httpx.Response:
            return httpx.post(
                f"{urls[i]}/v1/sigfox/wristband",
                json=uplink(device, i, t + i, ack="true"),
                headers=BEARER,
                timeout=30,
            )

        with ThreadPoolExecutor(len(urls)) as pool:
            answers = list(pool.map(bidir, range(len(urls))))
        codes = sorted(a.status_code for a in answers)
        assert codes == [200] + [204] * (len(urls) - 1), [a.text for a in answers]
        (sent,) = httpx.get(f"{second.url}/v1/devices/{device}/downlinks", headers=admin).json()[
            "downlinks"
        ]
        assert sent["status"] == "sent"
    finally:
        second.kill()


def _same_settings(api: ApiProcess) -> dict[str, str]:
    return {
        k.removeprefix("TELEMETRY_").lower(): v
        for k, v in api.env.items()
        if k.startswith("TELEMETRY_") and k not in ("TELEMETRY_API_PORT",)
    }


def test_at_most_four_downlinks_a_day(stack: Stack) -> None:
    device, t = new_device(), int(time.time()) - 400
    admin = {"Authorization": f"Bearer {ADMIN_KEY}"}
    url = f"{stack.api.url}/v1/devices/{device}/downlinks"
    for i in range(5):
        body = {"data": f"{i:016x}", "type": "wristband"}
        assert httpx.post(url, json=body, headers=admin).status_code == 201
    answers = [stack.post(uplink(device, seq, t + seq, ack="true")) for seq in range(6)]
    assert [a.status_code for a in answers] == [200, 200, 200, 200, 204, 204]
    statuses = [d["status"] for d in httpx.get(url, headers=admin).json()["downlinks"]]
    assert statuses == ["sent"] * 4 + ["queued"]


def test_a_refused_callback_is_kept_once_with_its_topic(stack: Stack) -> None:
    """Kept by the API, not published: ingest never sees it, so it is not kept twice."""
    body = {"device": "ABC128", "time": "1716000000", "seqNumber": "1", "data": "0g"}
    assert stack.post(body).status_code == 400
    rows = wait_for(
        lambda: [r for r in stack.rejected("envelope") if "ABC128" in r["body"]], what="kept"
    )
    assert len(rows) == 1
    assert rows[0]["topic"] == f"{stack.prefix}/wristband/ABC128"
    assert rows[0]["device"] == "ABC128"
    # No usable device in the body: no device tag, and the topic's device level left empty.
    bad = {"device": "NOT-HEX", "time": "1716000000", "seqNumber": "1", "data": "00"}
    assert stack.post(bad).json()["reason"] == "envelope"
    (row,) = [r for r in stack.rejected("envelope") if "NOT-HEX" in r["body"]]
    assert row["topic"] == f"{stack.prefix}/wristband/"
    assert row["device"] is None


@pytest.mark.parametrize("advanced", [False, True], ids=["uplink-per-station", "advanced"])
def test_simulate_over_callbacks_stores_every_uplink(
    stack: Stack, tmp_path: Path, advanced: bool
) -> None:
    """`telemetry simulate --callback-url`: nothing lost, downlinks asked for and logged."""
    catalogue = load_catalogue()
    fleet = build_fleet(catalogue, ["wristband"], 2, 1, 0.0)
    admin = {"Authorization": f"Bearer {ADMIN_KEY}"}
    for device in fleet:
        made = httpx.post(
            f"{stack.api.url}/v1/devices/{device.device_id}/downlinks",
            json={"data": "0102030405060708", "type": "wristband"},
            headers=admin,
        )
        assert made.status_code == 201
    report = tmp_path / "report.json"
    args = ["--types", "wristband", "--devices", "2", "--loss", "0", "--backfill", "1d"]
    args += ["--backfill-only", "--callback-url", f"{stack.api.url}/v1/sigfox"]
    args += ["--callback-key", CALLBACK_KEY, "--report-json", str(report)]
    env = telemetry_env()
    proc = run_telemetry(
        "simulate", *args + (["--advanced"] if advanced else []), env=env, timeout=110
    )
    assert proc.returncode == 0, proc.stderr
    counts = json.loads(report.read_text())
    assert counts["failed"] == 0
    assert counts["uplinks"] >= 200  # two devices, about 140 a day each
    # Every transmission asking for one got a downlink (one is queued per device), logged.
    assert counts["downlinks"] == 2, proc.stderr
    assert proc.stderr.count("downlink for ") == 2
    ids = "|".join(d.device_id for d in fleet)
    query = f"SELECT count(seq) FROM uplink WHERE device =~ /^({ids})$/"  # noqa: S608
    wait_for(
        lambda: (
            (rows := select(stack.influxd, stack.database, query))
            and rows[0]["count"] == counts["uplinks"]
        ),
        60,
        "every simulated uplink stored",
    )
    multi = select(
        stack.influxd,
        stack.database,
        f"SELECT count(seq) FROM uplink WHERE device =~ /^({ids})$/ AND stations > 1",  # noqa: S608
    )
    assert multi, "some transmissions were heard by several stations and merged"
    for device in fleet:
        listed = httpx.get(
            f"{stack.api.url}/v1/devices/{device.device_id}/downlinks", headers=admin
        ).json()["downlinks"]
        assert [d["status"] for d in listed] == ["sent"]


def test_a_hung_broker_or_influxdb_is_a_503_within_the_budget(
    make_mosquitto: Callable[..., Mosquitto],
    make_influxd: Callable[..., Influxd],
    pipeline: Pipeline,
) -> None:
    """Paused (SIGSTOP) servers never answer: the API gives up in time instead of hanging."""
    broker, influx = make_mosquitto(), make_influxd()
    influx.create_database("hung")
    stack = replace(Stack.like(pipeline), influxd=influx, database="hung")
    api = stack.make_api(mqtt_url=broker.url).start()
    try:
        t = int(time.time()) - 10
        broker.pause()
        started = time.monotonic()
        answer = stack.post(uplink(new_device(), 1, t))
        assert answer.status_code == 503, answer.text
        assert time.monotonic() - started < ANSWER_LIMIT  # the contract's bound
        broker.resume()
        influx.pause()
        bad = {"device": "ABC129", "time": str(t), "seqNumber": "1", "data": "0g"}
        started = time.monotonic()
        answer = stack.post(bad)
        assert answer.status_code == 503, answer.text
        assert answer.json()["detail"].startswith("the callback is refused (envelope")
        assert time.monotonic() - started < ANSWER_LIMIT
        influx.resume()
        # Both back: the same refused callback, retried, is now answered 400 and kept.
        wait_for(lambda: stack.post(bad).status_code == 400, what="400 once InfluxDB is back")
        assert [r for r in stack.rejected("envelope") if "ABC129" in r["body"]]
    finally:
        broker.resume()
        influx.resume()
        api.kill()


def test_bad_downlink_requests_are_problems(stack: Stack) -> None:
    admin = {"Authorization": f"Bearer {ADMIN_KEY}"}
    url = f"{stack.api.url}/v1/devices/{new_device()}/downlinks"
    cases = [
        ({"data": "0102"}, 422, "data"),  # not 8 bytes
        ({"data": "zz02030405060708"}, 422, "data"),
        ({"data": "0102030405060708", "type": "toaster"}, 400, "type"),
        ({"data": "0102030405060708"}, 404, "device"),  # never seen, no type given
    ]
    for body, status, parameter in cases:
        answer = httpx.post(url, json=body, headers=admin)
        assert answer.status_code == status, (body, answer.text)
        assert answer.headers["content-type"] == "application/problem+json"
        assert answer.json()["parameter"] == parameter
    gone = httpx.delete(f"{url}/nope", headers=admin)
    assert (gone.status_code, gone.json()["parameter"]) == (404, "downlink_id")
    made = httpx.post(url, json={"data": "0102030405060708", "type": "scale"}, headers=admin)
    ident = made.json()["id"]
    assert httpx.delete(f"{url}/{ident}", headers=admin).status_code == 204
    again = httpx.delete(f"{url}/{ident}", headers=admin)
    assert again.status_code == 409
