"""Every endpoint against a real InfluxDB filled with hand-written line protocol.

Expected values (loss, duplicates, means, buckets) are computed here in plain Python, apart from
the project's query code.
"""

from __future__ import annotations

import csv
import io
import itertools
import statistics
from collections import defaultdict
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import pytest

from catalogue import load_catalogue
from telemetry.servers import Influxd
from tests.support.apiclient import api_client
from tests.support.influx import write_lines

pytestmark = [pytest.mark.integration, pytest.mark.asyncio]

T0 = 1_716_000_000 - 1_716_000_000 % 86_400  # a UTC midnight, so day and hour buckets align
DEVICE = "A1B2C3"
OTHER = "FF01"  # a scale
# Wraps 4095 -> 0, has gaps (4092 -> 4094: 1 lost; 0 -> 3: 2 lost; 6 -> 8: 1 lost), and a
# reordered late arrival (7 after 8: a backward step, which adds no loss).
SEQS = [4090, 4091, 4092, 4094, 4095, 0, 3, 4, 5, 6, 8, 7]


@dataclass
class Uplink:
    time: int
    seq: int
    heart_rate: int
    steps: int
    stations: int
    rssi: float
    out_of_range: int


def fleet() -> list[Uplink]:
    return [
        Uplink(
            time=T0 + i * 1200,  # every 20 min: 3 per hour bucket
            seq=seq,
            heart_rate=55 + (i * 7) % 40,
            steps=100 * i * i,
            stations=1 + i % 3,
            rssi=-100.0 - i * 1.5,
            out_of_range=1 if i == 4 else 0,
        )
        for i, seq in enumerate(SEQS)
    ]


def lines_for(ups: list[Uplink]) -> list[str]:
    out = []
    for u in ups:
        values = f"heart_rate={u.heart_rate}i,steps={u.steps}i,calories=10i,sleep_phase=1i"
        if not u.out_of_range:
            values += ",battery=80i"
        link = f"seq={u.seq}i,rssi={u.rssi},snr=7.5,stations={u.stations}i"
        out.append(f"wristband,device={DEVICE} {values},{link} {u.time}")
        out.append(
            f'uplink,device={DEVICE},type=wristband data="3c00000064000a0150",{link},'
            f'station="0A1B",station_ids="0A1B",out_of_range={u.out_of_range}i {u.time}'
        )
    out.append(f"scale,device={OTHER} weight=72.5,body_fat=18.2,bmi=22.1,battery=90i,seq=9i {T0}")
    out.append(
        f'uplink,device={OTHER},type=scale data="1c52",seq=9i,stations=1i,rssi=-90,'
        f'station="0C",out_of_range=0i {T0}'
    )
    return out


def expected_lost(seqs_in_time_order: list[int]) -> int:
    lost = 0
    for prev, cur in itertools.pairwise(seqs_in_time_order):
        step = (cur - prev) % 4096
        if 1 <= step <= 2048:
            lost += step - 1
    return lost


def offline_since(type_name: str, last: int) -> dict[str, Any]:
    """The status of a device silent since `last` (2024: long offline), nothing recorded."""
    since = iso(last + round(load_catalogue()[type_name].status.offline_after))
    return {"state": "offline", "since": since, "alarms": [{"kind": "offline", "since": since}]}


def iso(epoch: int) -> str:
    return datetime.fromtimestamp(epoch, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


@pytest.fixture
def filled(influxd: Influxd, database: str) -> list[Uplink]:
    ups = fleet()
    write_lines(influxd, database, lines_for(ups))
    return ups


RANGE = {"start": str(T0), "end": str(T0 + 86_400)}


async def test_device_types_lists_the_catalogue(influxd: Influxd, database: str) -> None:
    async with api_client(influxd.url, database) as client:
        r = await client.get("/v1/device-types")
    assert r.status_code == 200
    types = {t["name"]: t for t in r.json()["types"]}
    assert set(types) >= {"wristband", "scale", "weather_station", "plant_sensor"}
    fields = {f["name"]: f for f in types["weather_station"]["fields"]}
    assert fields["temperature"]["unit"] == "°C"
    assert fields["temperature"]["scale"] == pytest.approx(0.01)
    assert types["wristband"]["layout"].startswith("heart_rate::uint:8")
    assert types["wristband"]["payload_length"] == 9


async def test_devices_lists_last_seen_and_seq(
    influxd: Influxd, database: str, filled: list[Uplink]
) -> None:
    newest = max(filled, key=lambda u: u.time)
    async with api_client(influxd.url, database) as client:
        everything = (await client.get("/v1/devices")).json()
        scales = (await client.get("/v1/devices", params={"type": "scale"})).json()
        r_bad = await client.get("/v1/devices", params={"type": "toaster"})
    assert everything == {
        "devices": [
            {
                "device": OTHER,
                "type": "scale",
                "last_seen": iso(T0),
                "last_seq": 9,
                "status": offline_since("scale", T0),
            },
            {
                "device": DEVICE,
                "type": "wristband",
                "last_seen": iso(newest.time),
                "last_seq": newest.seq,  # 7: the seq of the newest time, not the highest seq
                "status": offline_since("wristband", newest.time),
            },
        ]
    }
    assert scales["devices"] == [everything["devices"][0]]
    assert r_bad.status_code == 400
    assert r_bad.json()["parameter"] == "type"


async def test_device_detail_link_health(
    influxd: Influxd, database: str, filled: list[Uplink]
) -> None:
    async with api_client(influxd.url, database) as client:
        r = await client.get(f"/v1/devices/{DEVICE.lower()}")
        # again, now that the type is remembered and the latest point is read concurrently
        again = await client.get(f"/v1/devices/{DEVICE}")
    assert r.status_code == 200
    assert again.json() == r.json()
    body = r.json()
    newest = max(filled, key=lambda u: u.time)
    assert body["device"] == DEVICE
    assert body["type"] == "wristband"
    assert body["last_seen"] == iso(newest.time)
    assert body["messages"] == len(filled)
    assert body["lost"] == expected_lost([u.seq for u in sorted(filled, key=lambda u: u.time)])
    # by hand: 4093; 1 and 2; 7 (6 -> 8; the late 7 is a backward step, not a recovery)
    assert body["lost"] == 4
    assert body["duplicates"] == sum(u.stations for u in filled) - len(filled)
    assert body["rssi"] == pytest.approx(statistics.fmean(u.rssi for u in filled))
    assert body["out_of_range"] == 1
    assert body["latest"] == {
        "time": iso(newest.time),
        "heart_rate": newest.heart_rate,
        "steps": newest.steps,
        "calories": 10,
        "sleep_phase": 1,
        "battery": 80,
    }


async def test_unknown_device_is_404_and_bad_id_400(influxd: Influxd, database: str) -> None:
    async with api_client(influxd.url, database) as client:
        for path in (
            "/v1/devices/ABCDEF",
            "/v1/devices/ABCDEF/history",
            "/v1/devices/ABC/messages",
        ):
            r = await client.get(path)
            assert r.status_code == 404, path
            assert r.headers["content-type"] == "application/problem+json"
            assert r.json()["status"] == 404
        r = await client.get("/v1/devices/XYZ")
    assert r.status_code == 400
    assert r.json()["parameter"] == "device"


async def test_raw_history_with_fields_and_order(
    influxd: Influxd, database: str, filled: list[Uplink]
) -> None:
    async with api_client(influxd.url, database) as client:
        r = await client.get(
            f"/v1/devices/{DEVICE}/history",
            params=RANGE | {"fields": "steps,heart_rate", "order": "desc"},
        )
    assert r.status_code == 200
    body = r.json()
    assert body["fields"] == {"steps": {"unit": "steps"}, "heart_rate": {"unit": "bpm"}}
    assert body["next"] is None
    assert body["points"] == [
        {"time": iso(u.time), "steps": u.steps, "heart_rate": u.heart_rate}
        for u in sorted(filled, key=lambda u: -u.time)
    ]


async def test_start_inclusive_end_exclusive(
    influxd: Influxd, database: str, filled: list[Uplink]
) -> None:
    start, end = filled[2].time, filled[5].time
    async with api_client(influxd.url, database) as client:
        r = await client.get(
            f"/v1/devices/{DEVICE}/history",
            params={"start": iso(start), "end": str(end), "fields": "steps"},
        )
    assert [p["time"] for p in r.json()["points"]] == [iso(u.time) for u in filled[2:5]]


@pytest.mark.parametrize("agg", ["mean", "min", "max", "sum", "count", "first", "last", "median"])
async def test_aggregated_history_matches_python(
    influxd: Influxd, database: str, filled: list[Uplink], agg: str
) -> None:
    buckets: dict[int, list[Uplink]] = defaultdict(list)
    for u in sorted(filled, key=lambda u: u.time):
        buckets[u.time - u.time % 3600].append(u)
    folds: dict[str, Callable[[list[int]], float]] = {
        "mean": statistics.fmean,
        "min": min,
        "max": max,
        "sum": sum,
        "count": len,
        "first": lambda v: v[0],
        "last": lambda v: v[-1],
        "median": statistics.median,
    }
    fold = folds[agg]
    expected = [
        {"time": iso(t), "heart_rate": fold([u.heart_rate for u in us])}
        for t, us in sorted(buckets.items())
    ]
    async with api_client(influxd.url, database) as client:
        r = await client.get(
            f"/v1/devices/{DEVICE}/history",
            params=RANGE | {"fields": "heart_rate", "every": "1h", "agg": agg},
        )
    points = r.json()["points"]
    assert [p["time"] for p in points] == [e["time"] for e in expected]
    for got, want in zip(points, expected, strict=True):
        assert got["heart_rate"] == pytest.approx(want["heart_rate"])


async def test_empty_buckets_are_left_out(influxd: Influxd, database: str) -> None:
    # points at hour 0 and hour 5 only: 30-minute buckets give two, not eleven
    write_lines(
        influxd,
        database,
        [
            f"wristband,device={DEVICE} heart_rate=60i,seq=1i {T0}",
            f"wristband,device={DEVICE} heart_rate=70i,seq=2i {T0 + 5 * 3600}",
            f"uplink,device={DEVICE},type=wristband seq=2i,stations=1i {T0 + 5 * 3600}",
        ],
    )
    async with api_client(influxd.url, database) as client:
        r = await client.get(
            f"/v1/devices/{DEVICE}/history", params=RANGE | {"every": "30m", "fields": "heart_rate"}
        )
    assert r.json()["points"] == [
        {"time": iso(T0), "heart_rate": 60},
        {"time": iso(T0 + 5 * 3600), "heart_rate": 70},
    ]


async def test_aggregated_paging_equals_one_query(
    influxd: Influxd, database: str, filled: list[Uplink]
) -> None:
    params = RANGE | {"fields": "steps", "every": "1h", "agg": "max"}
    async with api_client(influxd.url, database) as client:
        whole = (await client.get(f"/v1/devices/{DEVICE}/history", params=params)).json()
        for order in ("asc", "desc"):
            pages: list[dict[str, Any]] = []
            cursor = None
            while True:
                extra = {"limit": "1", "order": order} | ({"cursor": cursor} if cursor else {})
                page = (
                    await client.get(f"/v1/devices/{DEVICE}/history", params=params | extra)
                ).json()
                pages += page["points"]
                cursor = page["next"]
                if cursor is None:
                    break
            want = whole["points"] if order == "asc" else whole["points"][::-1]
            assert pages == want
    assert len(whole["points"]) == 4  # 12 points, 3 per hour


async def test_csv_has_a_header_row(influxd: Influxd, database: str, filled: list[Uplink]) -> None:
    async with api_client(influxd.url, database) as client:
        r = await client.get(
            f"/v1/devices/{DEVICE}/history",
            params=RANGE | {"fields": "heart_rate,battery", "limit": "5"},
            headers={"Accept": "text/csv"},
        )
    assert r.headers["content-type"].startswith("text/csv")
    rows = list(csv.reader(io.StringIO(r.text)))
    assert rows[0] == ["time", "heart_rate", "battery"]
    assert rows[1:] == [
        [iso(u.time), str(u.heart_rate), "" if u.out_of_range else "80"] for u in filled[:5]
    ]
    assert r.headers["x-next-cursor"]


async def test_messages_are_the_raw_uplinks(
    influxd: Influxd, database: str, filled: list[Uplink]
) -> None:
    async with api_client(influxd.url, database) as client:
        first = (
            await client.get(f"/v1/devices/{DEVICE}/messages", params=RANGE | {"limit": "10"})
        ).json()
        rest = (
            await client.get(
                f"/v1/devices/{DEVICE}/messages",
                params=RANGE | {"limit": "10", "cursor": first["next"]},
            )
        ).json()
        as_csv = await client.get(
            f"/v1/devices/{DEVICE}/messages",
            params=RANGE | {"limit": "2"},
            headers={"Accept": "text/csv"},
        )
    assert (
        list(csv.reader(io.StringIO(as_csv.text)))
        == [
            ["time", "seq", "data", "stations", "station", "rssi", "snr"],
            *[
                [
                    iso(u.time),
                    str(u.seq),
                    "3c00000064000a0150",
                    str(u.stations),
                    "0A1B",
                    f"{u.rssi:g}",  # InfluxDB sends -100.0 as -100
                    "7.5",
                ]
                for u in filled[:2]
            ],
        ]
    )
    assert first["device"] == DEVICE
    assert isinstance(first["messages"][0]["rssi"], float)  # -100.0, which InfluxDB sends as -100
    got = first["messages"] + rest["messages"]
    assert rest["next"] is None
    assert got == [
        {
            "time": iso(u.time),
            "seq": u.seq,
            "data": "3c00000064000a0150",
            "stations": u.stations,
            "station": "0A1B",
            "rssi": u.rssi,
            "snr": 7.5,
        }
        for u in filled
    ]


async def test_health_ready_and_metrics(influxd: Influxd, database: str) -> None:
    async with api_client(influxd.url, database, auth=False) as client:
        assert (await client.get("/healthz")).json() == {"status": "ok"}
        assert (await client.get("/readyz")).status_code == 200
        assert (await client.get("/metrics")).status_code == 401
        await client.get("/v1/devices/00", headers={"Authorization": "Bearer test-key-0123456789"})
        r = await client.get("/metrics", headers={"Authorization": "Bearer test-key-0123456789"})
    assert r.status_code == 200
    assert 'telemetry_api_requests_total{method="GET",route="/readyz",status="200"} 1.0' in r.text
    assert 'route="/v1/devices/{device}",status="404"' in r.text
    assert "telemetry_api_request_duration_seconds_bucket" in r.text


async def test_openapi_documents_routes_and_problems(influxd: Influxd, database: str) -> None:
    async with api_client(influxd.url, database, auth=False) as client:
        doc = (await client.get("/openapi.json")).json()
        docs = await client.get("/docs")
    assert docs.status_code == 200
    paths = doc["paths"]
    for path in (
        "/v1/device-types",
        "/v1/devices",
        "/v1/devices/{device}",
        "/v1/devices/{device}/history",
        "/v1/devices/{device}/messages",
        "/healthz",
        "/readyz",
        "/metrics",
    ):
        assert path in paths
    history = paths["/v1/devices/{device}/history"]["get"]["responses"]
    for status in ("400", "401", "404", "422", "503"):
        assert "application/problem+json" in history[status]["content"]
    assert "Problem" in doc["components"]["schemas"]


async def test_inline_values_answer_as_bound_parameters(
    influxd: Influxd, database: str, filled: list[Uplink]
) -> None:
    """For servers that ignore `params` (InfluxDB 3): escaped literals give the same answers."""
    requests = [
        ("/v1/devices", {"type": "wristband"}),
        (f"/v1/devices/{DEVICE}", {}),
        (f"/v1/devices/{DEVICE}/history", RANGE | {"limit": "5"}),
        (f"/v1/devices/{DEVICE}/history", RANGE | {"every": "1h", "agg": "median"}),
        (f"/v1/devices/{DEVICE}/messages", RANGE | {"order": "desc", "limit": "3"}),
    ]
    answers = {}
    for bind in (True, False):
        async with api_client(influxd.url, database, influx_bind_params=bind) as client:
            answers[bind] = [(await client.get(p, params=ps)).json() for p, ps in requests]
    assert answers[True] == answers[False]
    assert answers[False][1]["messages"] == len(filled)


async def test_last_seen_is_the_newest_time_not_the_last_arrival(
    influxd: Influxd, database: str
) -> None:
    newest, older = T0 + 7200, T0
    write_lines(influxd, database, [f"uplink,device=BEEF,type=scale seq=20i,stations=1i {newest}"])
    # a late copy of an older uplink arrives afterwards (e.g. replayed from an ingester's spool)
    write_lines(influxd, database, [f"uplink,device=BEEF,type=scale seq=19i,stations=1i {older}"])
    async with api_client(influxd.url, database) as client:
        listed = (await client.get("/v1/devices")).json()["devices"]
        detail = (await client.get("/v1/devices/beef")).json()
    assert listed == [
        {
            "device": "BEEF",
            "type": "scale",
            "last_seen": iso(newest),
            "last_seq": 20,
            "status": offline_since("scale", newest),
        }
    ]
    assert (detail["last_seen"], detail["last_seq"], detail["lost"]) == (iso(newest), 20, 0)
    assert detail["latest"] is None  # no decoded point stored


async def test_loss_follows_new_uplinks_and_backfills_within_one_app(
    influxd: Influxd, database: str, filled: list[Uplink]
) -> None:
    """The detail folds loss on from where it stood; a point stored before that is refolded."""

    def uplink_line(t: int, seq: int) -> str:
        return (
            f'uplink,device={DEVICE},type=wristband data="00",seq={seq}i,stations=1i,'
            f'rssi=-100,station="0A",out_of_range=0i {t}'
        )

    seqs = [u.seq for u in sorted(filled, key=lambda u: u.time)]
    last = max(u.time for u in filled)
    async with api_client(influxd.url, database) as client:
        first = (await client.get(f"/v1/devices/{DEVICE}")).json()
        assert first["lost"] == expected_lost(seqs)
        # live: two more uplinks after the newest, one of them after a gap of 3
        write_lines(influxd, database, [uplink_line(last + 600, 9), uplink_line(last + 1200, 13)])
        second = (await client.get(f"/v1/devices/{DEVICE}")).json()
        assert second["messages"] == len(seqs) + 2
        assert second["lost"] == expected_lost([*seqs, 9, 13])
        # a late uplink stored before the newest (it fills the gap 9 -> 13 with 11): refolded
        write_lines(influxd, database, [uplink_line(last + 900, 11)])
        third = (await client.get(f"/v1/devices/{DEVICE}")).json()
        assert third["messages"] == len(seqs) + 3
        assert third["lost"] == expected_lost([*seqs, 9, 11, 13])
        assert third["lost"] == second["lost"] - 1


async def test_latest_keeps_float_fields_float_and_empty_type_lists_all(
    influxd: Influxd, database: str, filled: list[Uplink]
) -> None:
    whole = "scale,device=FF02 weight=70,body_fat=20,bmi=22,battery=90i,seq=1i"
    write_lines(
        influxd,
        database,
        [
            f"{whole} {T0 + 60}",
            f'uplink,device=FF02,type=scale data="1b58",seq=1i,stations=1i {T0 + 60}',
        ],
    )
    async with api_client(influxd.url, database) as client:
        latest = (await client.get("/v1/devices/FF02")).json()["latest"]
        everything = (await client.get("/v1/devices")).json()
        empty_type = await client.get("/v1/devices", params={"type": ""})
    assert latest["weight"] == 70.0
    assert type(latest["weight"]) is float  # stored 70.0, which InfluxDB's JSON writes as 70
    assert type(latest["battery"]) is int
    assert empty_type.status_code == 200
    assert empty_type.json() == everything
    assert {d["device"] for d in everything["devices"]} == {DEVICE, OTHER, "FF02"}
