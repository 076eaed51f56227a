"""End to end: uplinks published with plain paho, `telemetry ingest` as a subprocess, InfluxDB read
back directly; expected values computed here (struct), not by the project's codec."""

from __future__ import annotations

import random
import time
import urllib.request
from typing import Any

import pytest

from tests.support.ingest import (
    decode_weather,
    decode_wristband,
    wristband_payload,
)
from tests.support.pipeline import Pipeline
from tests.support.poll import wait_for

pytestmark = pytest.mark.integration


def body(device: str, t: int, seq: int | str, data: str, **extra: object) -> dict[str, Any]:
    return {"device": device, "time": t, "seqNumber": seq, "data": data} | extra


def test_values_stored_exactly(pipeline: Pipeline) -> None:
    pipeline.start()
    now = int(time.time())
    wb = wristband_payload(72, 12345, 512, 2, 88)
    ws = bytes.fromhex("086601f40320278a5a").hex()  # 21.5 °C, 50 %, 800 ppm, 1013.8
    pipeline.publisher.publish(
        f"{pipeline.prefix}/wristband/1a2b3c",
        body("1a2b3c", now - 10, 123, wb, station="0A1B", rssi=-118.5, snr=9.2),
    )
    pipeline.publisher.publish(
        f"{pipeline.prefix}/weather_station/00FF", body("00FF", now - 5, "7", ws, rssi="-99")
    )
    got = wait_for(lambda: pipeline.settled_rows("SELECT * FROM wristband"), what="wristband point")
    assert len(got) == 1
    point = got[0]
    assert point["device"] == "1A2B3C"
    assert point["time"] == time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(now - 10))
    assert {k: point[k] for k in decode_wristband(wb)} == decode_wristband(wb)
    assert (point["seq"], point["rssi"], point["snr"], point["stations"]) == (123, -118.5, 9.2, 1)
    weather = wait_for(lambda: pipeline.settled_rows("SELECT * FROM weather_station"))
    expected = decode_weather(ws)
    assert {k: weather[0][k] for k in expected} == pytest.approx(expected)
    assert weather[0]["seq"] == 7
    uplinks = wait_for(lambda: len(r := pipeline.settled_rows("SELECT * FROM uplink")) == 2 and r)
    by_dev = {r["device"]: r for r in uplinks}
    assert by_dev["1A2B3C"]["data"] == wb
    assert by_dev["1A2B3C"]["type"] == "wristband"
    assert by_dev["1A2B3C"]["station"] == "0A1B"
    assert by_dev["1A2B3C"]["station_ids"] == "0A1B"
    assert by_dev["1A2B3C"]["out_of_range"] == 0
    assert by_dev["00FF"]["rssi"] == -99.0


def test_copies_merge_into_one_point_with_best_station(pipeline: Pipeline) -> None:
    pipeline.start()
    t = int(time.time()) - 30
    data = wristband_payload(60, 1, 2, 0, 50)
    copies = [("00A1", -120.0), ("00B2", -101.5), ("00C3", -110.0)]
    random.Random(7).shuffle(copies)
    topic = f"{pipeline.prefix}/wristband/BEEF"
    for station, rssi in copies[:2]:
        pipeline.publisher.publish(
            topic, body("BEEF", t, 9, data, station=station, rssi=rssi, snr=5)
        )
    wait_for(
        lambda: pipeline.settled_rows("SELECT stations FROM uplink WHERE stations = 2"),
        what="two copies merged",
    )
    late_station, late_rssi = copies[2]  # after the point was written
    pipeline.publisher.publish(
        topic, body("BEEF", t, 9, data, station=late_station, rssi=late_rssi)
    )
    pipeline.publisher.publish(
        topic, body("BEEF", t, 9, data, station=copies[0][0], rssi=copies[0][1])
    )
    up = wait_for(lambda: pipeline.settled_rows("SELECT * FROM uplink WHERE stations = 3"))
    assert len(pipeline.settled_rows("SELECT * FROM uplink")) == 1
    assert up[0]["station"] == "00B2"
    assert up[0]["rssi"] == -101.5
    assert up[0]["station_ids"] == "00A1,00B2,00C3"
    wb = wait_for(lambda: pipeline.settled_rows("SELECT * FROM wristband WHERE stations = 3"))
    assert len(wb) == 1
    assert wb[0]["rssi"] == -101.5


def test_advanced_callback_duplicates_count_as_stations(pipeline: Pipeline) -> None:
    pipeline.start()
    t = int(time.time()) - 20
    dups = [{"bsId": "0B01", "rssi": -90.0, "snr": 20, "nbRep": 3}, {"bsId": "0B02", "rssi": -130}]
    pipeline.publisher.publish(
        f"{pipeline.prefix}/wristband/A1",
        body(
            "A1",
            t,
            1,
            wristband_payload(70, 1, 1, 0, 9),
            station="0B00",
            rssi=-100,
            duplicates=dups,
        ),
    )
    up = wait_for(lambda: pipeline.settled_rows("SELECT * FROM uplink"))
    assert (up[0]["stations"], up[0]["station"], up[0]["rssi"]) == (3, "0B01", -90.0), up


def test_redelivery_and_restart_never_lower_stations(pipeline: Pipeline) -> None:
    ing = pipeline.start()
    t = int(time.time()) - 60
    data = wristband_payload(80, 10, 10, 1, 70)
    topic = f"{pipeline.prefix}/wristband/C0FFEE"
    first = body("C0FFEE", t, 4000, data, station="0001", rssi=-100)
    pipeline.publisher.many([(topic, first), (topic, first)])  # a redelivery: harmless
    pipeline.publisher.publish(topic, body("C0FFEE", t, 4000, data, station="0002", rssi=-95))
    wait_for(lambda: pipeline.settled_rows("SELECT * FROM uplink WHERE stations = 2"))
    assert ing.stop() == 0
    ing.start()  # the cache is empty now: the stored point must be merged
    pipeline.publisher.publish(topic, body("C0FFEE", t, 4000, data, station="0003", rssi=-120))
    up = wait_for(lambda: pipeline.settled_rows("SELECT * FROM uplink WHERE stations = 3"))
    assert up[0]["station"] == "0002"
    assert up[0]["station_ids"] == "0001,0002,0003"
    assert len(pipeline.settled_rows("SELECT * FROM wristband")) == 1


def _rejects(pipeline: Pipeline) -> dict[str, dict[str, Any]]:
    return {r["reason"]: r for r in pipeline.settled_rows("SELECT * FROM rejected GROUP BY *")}


def test_every_reject_reason_is_kept_and_the_loop_goes_on(pipeline: Pipeline) -> None:
    pipeline.start(ingest_rate_burst=2, ingest_rate_per_hour=60)
    now = int(time.time())
    good = wristband_payload(70, 1, 1, 0, 50)
    p = pipeline.prefix
    cases: dict[str, tuple[str, bytes | dict[str, Any]]] = {
        "topic": (f"{p}/wristband/NOTHEX", body("1", now, 1, good)),
        "too_large": (f"{p}/wristband/A", b'{"device":"A","x":"' + b"x" * 2048 + b'"}'),
        "encoding": (f"{p}/wristband/A", b'{"device":"\xff\xfe"}'),
        "json": (f"{p}/wristband/A", b"[" * 1000),
        "envelope": (f"{p}/wristband/A", body("A", now, 5000, good)),
        "unknown_type": (f"{p}/toaster/A", body("A", now, 1, good)),
        "device_mismatch": (f"{p}/wristband/A", body("B", now, 1, good)),
        "future": (f"{p}/wristband/A", body("A", now + 3600, 1, good)),
        "payload_length": (f"{p}/wristband/A", body("A", now, 1, good[:-2])),
    }
    pipeline.publisher.many(list(cases.values()))
    # Rate limit: burst 2; a third transmission is refused, a copy of an admitted one is not.
    rl = f"{p}/wristband/D"
    pipeline.publisher.many(
        [
            (rl, body("D", now - 3, 1, good, station="01")),
            (rl, body("D", now - 2, 2, good, station="01")),
            (rl, body("D", now - 2, 2, good, station="02")),
            (rl, body("D", now - 1, 3, good, station="01")),
        ]
    )
    # Still working after all that.
    pipeline.publisher.publish(f"{p}/wristband/E", body("E", now, 1, good))
    wait_for(lambda: pipeline.settled_rows("SELECT * FROM wristband WHERE device = 'E'"))
    expected = set(cases) | {"rate_limited"}
    got = wait_for(lambda: (r := _rejects(pipeline)).keys() >= expected and r)
    for reason, (topic, sent) in cases.items():
        assert got[reason]["topic"] == topic, reason
        raw = sent if isinstance(sent, bytes) else None
        if raw is not None and len(raw) <= 1024 and raw.isascii():
            assert got[reason]["body"] == raw.decode(), reason
    assert len(got["too_large"]["body"]) >= 1024
    assert got["encoding"]["body"] == '{"device":"\\xff\\xfe"}'
    assert got["device_mismatch"]["device"] == "A"
    assert got["rate_limited"]["device"] == "D"
    assert len(pipeline.settled_rows("SELECT * FROM rejected WHERE reason = 'rate_limited'")) == 1
    d = pipeline.settled_rows("SELECT * FROM uplink WHERE device = 'D'")
    assert [r["stations"] for r in d] == [1, 2]


def test_malicious_inputs_are_rejected_not_written(pipeline: Pipeline) -> None:
    pipeline.start()
    now = int(time.time())
    good = wristband_payload(70, 1, 1, 0, 50)
    p = pipeline.prefix
    evil_device = 'A\nwristband,device=FFFF heart_rate=1i 1\x00"'
    pipeline.publisher.many(
        [
            (f"{p}/wristband/A", body(evil_device, now, 1, good)),
            (f"{p}/wristband/A", b'{"device":"A","time":1,"seqNumber":1,"data":"00\\u0000"}'),
            (f"{p}/wristband/A", b"\x00\n\r" * 100),
            (f"{p}/wristband/A", b"x" * 2048),
            (f"{p}/wristband/A", b"{" * 1000),
        ]
    )
    pipeline.publisher.publish(f"{p}/wristband/E", body("E", now, 1, good))
    wait_for(lambda: pipeline.settled_rows("SELECT * FROM wristband WHERE device = 'E'"))
    # (A newline in a topic never reaches us: Mosquitto disconnects such a publisher.)
    got = wait_for(lambda: len(r := pipeline.settled_rows("SELECT * FROM rejected")) == 5 and r)
    assert sorted(r["reason"] for r in got) == ["envelope", "envelope", "json", "json", "too_large"]
    assert pipeline.settled_rows("SELECT * FROM wristband WHERE device = 'FFFF'") == []
    assert len(pipeline.settled_rows("SELECT * FROM wristband")) == 1
    forged = next(r for r in got if r["reason"] == "envelope" and "FFFF" in r["body"])
    assert "\\n" in forged["body"]  # kept as the JSON escape, never as a raw newline
    nul = next(r for r in got if r["body"].startswith("\\x00"))
    assert nul["body"] == "\\x00\\n\\r" * 100


def test_metrics_endpoint_counts(pipeline: Pipeline) -> None:
    ing = pipeline.start(metrics=True)
    now = int(time.time())
    topic = f"{pipeline.prefix}/wristband/77"
    pipeline.publisher.many(
        [
            (topic, body("77", now - 9, 10, wristband_payload(70, 1, 1, 0, 50))),
            (topic, body("77", now - 8, 13, wristband_payload(70, 1, 1, 0, 50))),  # 2 lost
            (topic, body("77", now - 7, 12, wristband_payload(70, 1, 1, 0, 50))),  # reordered
            (topic, body("77", now - 6, 14, wristband_payload(255, 1, 1, 9, 50))),  # 2 out of range
            (topic, b"nope"),
        ]
    )
    url = f"http://127.0.0.1:{ing.metrics_port}/metrics"

    def scrape() -> dict[str, float]:
        with urllib.request.urlopen(url, timeout=5) as r:  # our own loopback URL
            text = r.read().decode()
        out = {}
        for line in text.splitlines():
            if line.startswith("telemetry_ingest_") and " " in line:
                name, value = line.rsplit(" ", 1)
                out[name] = float(value)
        return out

    m = wait_for(lambda: (s := scrape()).get("telemetry_ingest_acked_total") == 5 and s)
    assert m["telemetry_ingest_received_total"] == 5
    assert m["telemetry_ingest_stored_total"] == 4
    assert m['telemetry_ingest_rejected_total{reason="json"}'] == 1
    assert m["telemetry_ingest_lost_total"] == 2
    assert m["telemetry_ingest_out_of_range_total"] == 2
    assert m["telemetry_ingest_spool_batches"] == 0
    assert m["telemetry_ingest_write_seconds_count"] >= 1
    oor = pipeline.settled_rows("SELECT out_of_range FROM uplink WHERE seq = 14")
    assert oor[0]["out_of_range"] == 2
    stored = pipeline.settled_rows("SELECT * FROM wristband WHERE seq = 14")
    assert stored[0]["heart_rate"] is None
    assert stored[0]["sleep_phase"] is None
