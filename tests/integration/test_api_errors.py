"""Every error of the API: a problem response naming the parameter, never a 500."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

from telemetry.servers import Influxd
from tests.support.apiclient import API_KEY, api_client
from tests.support.influx import write_lines

pytestmark = [pytest.mark.integration, pytest.mark.asyncio]

DEVICE = "C0FFEE"
T0 = 1_716_000_000
HISTORY = f"/v1/devices/{DEVICE}/history"


@pytest.fixture
def one_device(influxd: Influxd, database: str) -> None:
    write_lines(
        influxd,
        database,
        [
            f"wristband,device={DEVICE} heart_rate={60 + i}i,seq={i}i {T0 + 60 * i}"
            for i in range(30)
        ]
        + [
            f"uplink,device={DEVICE},type=wristband seq={i}i,stations=1i {T0 + 60 * i}"
            for i in range(30)
        ],
    )


BAD = [
    ({"start": "2024-05-18T02:40:00Z", "end": "2024-05-17T00:00:00Z"}, 400, "start"),
    ({"start": "1716000000", "end": "1716000000"}, 400, "start"),
    ({"start": "yesterday"}, 400, "start"),
    ({"end": "2024-13-01T00:00:00Z"}, 400, "end"),
    ({"end": "2024-05-18T02:40:00"}, 400, "end"),  # no offset: ambiguous
    ({"start": "-5"}, 400, "start"),
    ({"start": "99999999999"}, 400, "start"),  # past 2255
    ({"fields": "heart_rate,weight"}, 400, "fields"),
    ({"fields": "seq"}, 400, "fields"),  # link fields are not the type's fields
    ({"every": "5x"}, 400, "every"),
    ({"every": "0s"}, 400, "every"),
    ({"every": "1ms"}, 400, "every"),
    ({"every": "1000w"}, 400, "every"),
    ({"agg": "max"}, 400, "agg"),
    ({"every": "1h", "agg": "stddev"}, 422, "agg"),
    ({"limit": "10001"}, 422, "limit"),
    ({"limit": "0"}, 422, "limit"),
    ({"limit": "ten"}, 422, "limit"),
    ({"order": "sideways"}, 422, "order"),
    ({"cursor": "not-a-cursor"}, 400, "cursor"),
    ({"cursor": "eyJ2IjoxfQ"}, 400, "cursor"),  # {"v":1}: valid base64 JSON, not ours
]


@pytest.mark.parametrize(("params", "status", "parameter"), BAD)
async def test_bad_history_parameters(
    *,
    influxd: Influxd,
    database: str,
    one_device: None,
    params: dict[str, str],
    status: int,
    parameter: str,
) -> None:
    async with api_client(influxd.url, database) as client:
        r = await client.get(HISTORY, params={"start": str(T0)} | params)
    assert r.status_code == status, r.text
    assert r.headers["content-type"] == "application/problem+json"
    body = r.json()
    assert body["parameter"] == parameter
    assert body["status"] == status
    assert body["type"].startswith("urn:sigfox-telemetry:problem:")
    assert body["title"]
    assert body["detail"]


async def test_cursor_of_another_query_is_refused(
    influxd: Influxd, database: str, one_device: None
) -> None:
    params = {"start": str(T0), "end": str(T0 + 3600), "limit": "5"}
    async with api_client(influxd.url, database) as client:
        first = (await client.get(HISTORY, params=params)).json()
        assert first["next"] is not None
        r = await client.get(HISTORY, params=params | {"order": "desc", "cursor": first["next"]})
        r_messages = await client.get(
            f"/v1/devices/{DEVICE}/messages", params=params | {"cursor": first["next"]}
        )
    assert r.status_code == 400
    assert r.json()["parameter"] == "cursor"
    assert r_messages.status_code == 400


async def test_a_huge_raw_range_pages_instead_of_failing(
    influxd: Influxd, database: str, one_device: None
) -> None:
    async with api_client(influxd.url, database) as client:
        r = await client.get(HISTORY, params={"start": "0", "end": "8000000000", "limit": "7"})
        r_1s = await client.get(
            HISTORY, params={"start": "0", "end": "8000000000", "every": "1s", "limit": "7"}
        )
    assert r.status_code == 200
    assert len(r.json()["points"]) == 7
    assert r.json()["next"] is not None
    assert r_1s.status_code == 200
    assert len(r_1s.json()["points"]) == 7


@pytest.mark.parametrize(
    "headers",
    [{}, {"Authorization": "Bearer wrong"}, {"Authorization": f"Basic {API_KEY}"}],
)
async def test_missing_or_wrong_key_is_401(
    influxd: Influxd, database: str, headers: dict[str, str]
) -> None:
    async with api_client(influxd.url, database, auth=False) as client:
        for path in ("/v1/devices", "/v1/device-types", HISTORY, "/metrics"):
            r = await client.get(path, headers=headers)
            assert r.status_code == 401, path
            assert r.headers["www-authenticate"].startswith("Bearer")
            assert r.headers["content-type"] == "application/problem+json"
        assert (await client.get("/healthz")).status_code == 200
        assert (await client.get("/readyz")).status_code == 200


async def test_any_configured_key_works(influxd: Influxd, database: str) -> None:
    async with api_client(influxd.url, database, auth=False, api_keys=["one", "two"]) as client:
        ok = await client.get("/v1/device-types", headers={"Authorization": "Bearer two"})
    assert ok.status_code == 200


async def test_auth_disabled_needs_no_key(influxd: Influxd, database: str) -> None:
    async with api_client(
        influxd.url, database, auth=False, api_keys=[], api_auth="disabled"
    ) as client:
        assert (await client.get("/v1/device-types")).status_code == 200


async def test_body_over_16_kib_is_413(influxd: Influxd, database: str) -> None:
    async with api_client(influxd.url, database) as client:
        big = await client.request("GET", "/v1/devices", content=b"x" * 16_385)
        small = await client.request("GET", "/v1/devices", content=b"x" * 100)
    assert big.status_code == 413
    assert big.headers["content-type"] == "application/problem+json"
    assert small.status_code == 200


async def test_unknown_path_is_a_problem_404(influxd: Influxd, database: str) -> None:
    async with api_client(influxd.url, database) as client:
        r = await client.get("/v2/nothing")
        r_post = await client.post("/v1/devices")
    assert r.status_code == 404
    assert r.headers["content-type"] == "application/problem+json"
    assert r_post.status_code == 405


async def test_influxdb_down_is_503_with_retry_after(
    make_influxd: Callable[..., Influxd],
) -> None:
    server = make_influxd()
    server.create_database("gone")
    server.stop()
    async with api_client(server.url, "gone", influx_timeout=2.0) as client:
        for path in ("/v1/devices", "/v1/devices/AB", f"{HISTORY}?every=1h", "/readyz"):
            r = await client.get(path)
            assert r.status_code == 503, path
            assert int(r.headers["retry-after"]) > 0
            assert r.headers["content-type"] == "application/problem+json"
        assert (await client.get("/healthz")).status_code == 200


async def test_missing_database_is_503(influxd: Influxd) -> None:
    async with api_client(influxd.url, "no_such_db") as client:
        r = await client.get("/v1/devices")
    assert r.status_code == 503


async def test_numeric_aggregate_of_a_text_field_is_400(
    influxd: Influxd, database: str, tmp_path: Path
) -> None:
    (tmp_path / "door.toml").write_text(
        'name = "door"\nlayout = "open::bool:0 tag::char:2"\n'
        '[fields.open]\nunit = ""\n[fields.tag]\nunit = ""\n'
    )
    write_lines(
        influxd,
        database,
        [
            f'door,device=D00 open=true,tag="AB",seq=1i {T0}',
            f"uplink,device=D00,type=door seq=1i,stations=1i {T0}",
        ],
    )
    params = {"start": str(T0), "end": str(T0 + 60), "every": "1m"}
    async with api_client(influxd.url, database, catalogue_dir=tmp_path) as client:
        bad = await client.get("/v1/devices/D00/history", params=params | {"agg": "mean"})
        ok = await client.get("/v1/devices/D00/history", params=params | {"agg": "last"})
        raw = await client.get(
            "/v1/devices/D00/history", params={"start": str(T0), "end": str(T0 + 60)}
        )
    assert bad.status_code == 400
    assert bad.json()["parameter"] == "agg"
    assert ok.json()["points"] == [{"time": "2024-05-18T02:40:00Z", "open": True, "tag": "AB"}]
    assert raw.json()["points"] == ok.json()["points"]
