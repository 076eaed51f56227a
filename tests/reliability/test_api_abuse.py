"""The API under abuse: injection in every parameter, key guessing, oversized bodies.

`telemetry api` runs as a real uvicorn subprocess on a database holding two devices; every
answer to an injected parameter must be a 4xx, or a 200 carrying only the requested device.
"""

from __future__ import annotations

import signal
import time
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import quote

import httpx
import pytest

from telemetry.servers import Influxd
from tests.support.apiprocess import ApiProcess
from tests.support.influx import write_lines
from tests.support.ledger import weather_payload

KEY = "reliability-test-key-0123456789"
ASKED, OTHER = "1A2B3C", "4D5E6F"  # we ask for ASKED; OTHER must never leak into an answer
NOW = int(time.time())

# Strings that break naive InfluxQL or line protocol building (RELIABILITY.md, facts 7 and 8).
INJECTIONS = (
    "'",
    '"',
    "\\",
    "\\'",
    "\n",
    "\r\n",
    "\x00",
    "%00",
    ";",
    "; DROP DATABASE telemetry",
    f"{ASKED}'; DROP DATABASE telemetry; --",
    f"{ASKED}' OR device =~ /.*/ AND '1'='1",
    f"{ASKED}\\' OR device =~ /.*/ --",
    f'{ASKED}" OR "device" =~ /.*/',
    "/.*/",
    ".*",
    "^.*$",
    f"{ASKED}|{OTHER}",
    "\u2019",  # right single quotation mark
    "\u02bc",  # modifier letter apostrophe
    "\uff07",  # fullwidth apostrophe
    "\u201c\u201d",
    "\u2028",
    "$device",
    "{{device}}",
    f"{ASKED}/../{OTHER}",
    "*",
    'temperature,"seq" FROM weather_station --',
    "mean(temperature)",
    "1h; DROP",
    "-1",
    "99999999999999999999",
    "1e309",
    "NaN",
    "a" * 5000,
)

# Every query parameter of each endpoint, with a valid value to keep the others sane.
BASE = {
    f"/v1/devices/{ASKED}/history": {
        "start": str(NOW - 86400 * 3),
        "end": str(NOW),
        "fields": "temperature",
        "every": "1h",
        "agg": "mean",
        "limit": "10",
        "order": "asc",
    },
    f"/v1/devices/{ASKED}/messages": {
        "start": str(NOW - 86400 * 3),
        "end": str(NOW),
        "limit": "10",
        "order": "asc",
    },
    "/v1/devices": {"type": "weather_station"},
    f"/v1/devices/{ASKED}": {},
}
PATHS = (
    "/v1/devices/{}",
    "/v1/devices/{}/history",
    "/v1/devices/{}/messages",
)


def _lines(device: str, seq0: int) -> list[str]:
    lines = []
    for i in range(20):
        t = NOW - 86400 + i * 600
        data = weather_payload(seq0 + i)
        lines.append(
            f'uplink,device={device},type=weather_station data="{data}",seq={seq0 + i}i,'
            f'rssi=-110,snr=8,stations=1i,station="0A1B",station_ids="0A1B",out_of_range=0i {t}'
        )
        lines.append(
            f"weather_station,device={device} temperature=21.5,humidity=45.0,co2=600i,"
            f"pressure=1013.2,battery=90i,seq={seq0 + i}i,rssi=-110,snr=8,stations=1i {t}"
        )
    return lines


@pytest.fixture
def api(influxd: Influxd, database: str, tmp_path: Path) -> Iterator[str]:
    write_lines(influxd, database, _lines(ASKED, 100) + _lines(OTHER, 200))
    api = ApiProcess(
        tmp_path / "api", influx_url=influxd.url, influx_database=database, api_keys=KEY
    )
    api.start(broker=False)  # no broker: the queries are what is abused
    try:
        yield api.url
    finally:
        api.stop(signal.SIGTERM, timeout=15)


def _check(r: httpx.Response, what: str) -> str:
    """'4xx' or 'ok'; fails on a 5xx or on another device's data in a 200."""
    assert r.status_code < 500, f"{what}: {r.status_code} {r.text[:300]}"
    if r.status_code >= 400:
        return "4xx"
    assert r.status_code == 200, f"{what}: {r.status_code}"
    assert OTHER not in r.text.upper(), f"{what}: another device's data leaked: {r.text[:300]}"
    return "ok"


@pytest.mark.integration
@pytest.mark.timeout(300)
def test_injection_in_every_parameter_yields_4xx_or_only_the_asked_device(
    api: str, influxd: Influxd, database: str
) -> None:
    outcomes: dict[str, int] = {"4xx": 0, "ok": 0}
    with httpx.Client(base_url=api, headers={"Authorization": f"Bearer {KEY}"}) as client:
        baseline = client.get(f"/v1/devices/{ASKED}/messages", params={"limit": "100"})
        assert baseline.status_code == 200
        assert ASKED in baseline.text  # the fixture data is visible: 200s below mean something
        for path, params in BASE.items():
            # Each endpoint answers 200 to its base parameters, so a 4xx below is the injection's.
            assert client.get(path, params=params).status_code == 200, path
            names = [*params, "cursor"] if "/history" in path or "/messages" in path else params
            for name in names:
                for value in INJECTIONS:
                    r = client.get(path, params=params | {name: value})
                    outcomes[_check(r, f"{path}?{name}={value!r}")] += 1
        for template in PATHS:
            for value in INJECTIONS:
                segment = quote(value, safe="")  # one path segment, even with slashes
                r = client.get(template.format(segment))
                outcomes[_check(r, f"{template} with {value!r}")] += 1
    print(f"\n=== API injection fuzz ===\n  answers: {outcomes}")
    dbs = influxd.query("SHOW DATABASES").json()["results"][0]["series"][0]["values"]
    assert [database] in dbs, "an injection dropped the database"


@pytest.mark.integration
def test_guessing_keys_is_throttled_with_429_and_retry_after(api: str) -> None:
    statuses: list[int] = []
    retry_after: str | None = None
    with httpx.Client(base_url=api) as client:
        for i in range(101):
            r = client.get("/v1/devices", headers={"Authorization": f"Bearer wrong-key-{i:04d}"})
            statuses.append(r.status_code)
            if r.status_code == 429:
                retry_after = r.headers.get("Retry-After")
    counts = {s: statuses.count(s) for s in set(statuses)}
    print(f"\n=== API key guessing ===\n  statuses: {counts}, Retry-After: {retry_after}")
    assert statuses[0] == 401
    assert set(statuses) <= {401, 429}
    assert statuses[-1] == 429, "the 101st bad key in a row must be throttled"
    assert retry_after is not None
    assert int(retry_after) > 0


@pytest.mark.integration
def test_body_over_the_limit_by_content_length_gets_413(api: str) -> None:
    headers = {"Authorization": f"Bearer {KEY}"}
    r = httpx.request("GET", f"{api}/v1/devices", content=b"x" * (64 * 1024), headers=headers)
    print(f"\n=== API body limit (Content-Length) ===\n  status: {r.status_code}")
    assert r.status_code == 413


@pytest.mark.integration
def test_streamed_body_over_the_limit_gets_413(api: str) -> None:
    def chunks() -> Iterator[bytes]:  # no Content-Length: the limit must hold while streaming
        for _ in range(16):
            yield b"x" * 4096

    headers = {"Authorization": f"Bearer {KEY}"}
    r = httpx.request("GET", f"{api}/v1/devices", content=chunks(), headers=headers)
    print(f"\n=== API body limit (chunked) ===\n  status: {r.status_code}")
    assert r.status_code == 413
