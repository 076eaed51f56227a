"""Faults around the ingester: broker restart, full spool, refused writes, no right to create
the database, and a shared subscription."""

from __future__ import annotations

import time
import urllib.request
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from telemetry.servers import Influxd, Mosquitto, free_port
from tests.support.influx import select, write_lines
from tests.support.ingest import Ingester, Publisher, wait_for, wristband_payload

pytestmark = pytest.mark.integration


@pytest.fixture(autouse=True)
def _no_leftover_ingester(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    started: list[Ingester] = []
    original = Ingester.start

    def start(self: Ingester, connected: bool = True) -> None:
        started.append(self)
        original(self, connected)

    monkeypatch.setattr(Ingester, "start", start)
    yield
    for ing in started:
        if ing.proc is not None and ing.proc.poll() is None:
            ing.kill()


def uplinks(
    prefix: str, n: int, device: str, t0: int | None = None
) -> list[tuple[str, dict[str, Any]]]:
    t0 = int(time.time()) - n if t0 is None else t0
    return [
        (
            f"{prefix}/wristband/{device}",
            {
                "device": device,
                "time": t0 + i,
                "seqNumber": i,
                "data": wristband_payload(70, i, i, 0, 50),
            },
        )
        for i in range(n)
    ]


def count(influxd: Influxd, database: str) -> int:
    try:
        got = select(influxd, database, "SELECT count(seq) FROM uplink")
    except Exception:  # the server may be down or restarting: not yet
        return -1
    return int(got[0]["count"]) if got else 0


def metric(ing: Ingester, name: str) -> float:
    with urllib.request.urlopen(f"http://127.0.0.1:{ing.metrics_port}/metrics", timeout=5) as r:
        for line in r.read().decode().splitlines():
            if line.startswith(name + " "):
                return float(line.split()[1])
    return float("nan")


def test_broker_restart_reconnects_and_keeps_the_session(
    tmp_path: Path,
    make_mosquitto: Callable[..., Mosquitto],
    influxd: Influxd,
    database: str,
    topic_prefix: str,
) -> None:
    broker = make_mosquitto()
    ing = Ingester(
        tmp_path / "ing",
        mqtt_url=broker.url,
        influx_url=influxd.url,
        database=database,
        prefix=topic_prefix,
    )
    ing.start()
    broker.restart()  # SIGTERM: Mosquitto saves the session
    pub = Publisher(broker.host, broker.port)
    try:
        pub.many(uplinks(topic_prefix, 10, "AA"))  # queued for the session or delivered live
        wait_for(lambda: count(influxd, database) == 10, what="points after broker restart")
        wait_for(lambda: ing.log().count("connected to MQTT") >= 2, what="a reconnection")
    finally:
        pub.close()
    assert ing.stop() == 0


def test_full_spool_stops_intake_and_loses_nothing(
    tmp_path: Path,
    mosquitto: Mosquitto,
    make_influxd: Callable[..., Influxd],
    topic_prefix: str,
) -> None:
    influxd = make_influxd()
    ing = Ingester(
        tmp_path / "ing",
        mqtt_url=mosquitto.url,
        influx_url=influxd.url,
        database="telemetry",
        prefix=topic_prefix,
        metrics=True,
        influx_timeout=2,
        ingest_batch_size=4,  # two uplinks per batch
        ingest_spool_max_bytes=1024,  # about three batches
    )
    ing.start()
    wait_for(lambda: count(influxd, "telemetry") == 0, what="database created")
    influxd.stop()
    n = 60
    pub = Publisher(mosquitto.host, mosquitto.port)
    try:
        pub.many(uplinks(topic_prefix, n, "BB"))
        wait_for(
            lambda: (
                metric(ing, "telemetry_ingest_spool_bytes") >= 1024
                and metric(ing, "telemetry_ingest_acked_total") > 0
            ),
            what="spool full",
        )
        acked = metric(ing, "telemetry_ingest_acked_total")
        assert acked < n  # back-pressure: the rest stays unacked with the broker
        influxd.start()
        wait_for(lambda: count(influxd, "telemetry") == n, timeout=60, what="all points")
        wait_for(lambda: metric(ing, "telemetry_ingest_acked_total") == n, what="all acked")
    finally:
        pub.close()
    assert ing.stop() == 0


def test_refused_write_goes_to_rejected_and_the_rest_is_stored(
    tmp_path: Path, mosquitto: Mosquitto, influxd: Influxd, database: str, topic_prefix: str
) -> None:
    t0 = int(time.time()) - 100
    # An older decoder stored heart_rate as a float: the integer field now conflicts.
    write_lines(influxd, database, [f"wristband,device=0 heart_rate=1.5 {t0 - 1000}"])
    ing = Ingester(
        tmp_path / "ing",
        mqtt_url=mosquitto.url,
        influx_url=influxd.url,
        database=database,
        prefix=topic_prefix,
    )
    ing.start()
    pub = Publisher(mosquitto.host, mosquitto.port)
    try:
        pub.many(uplinks(topic_prefix, 3, "CC", t0))
        wait_for(lambda: count(influxd, database) == 3, what="raw uplinks stored")
        refused = wait_for(
            lambda: len(r := select(influxd, database, "SELECT * FROM rejected")) == 3 and r,
            what="three write_refused records",
        )
    finally:
        pub.close()
    assert {r["reason"] for r in refused} == {"write_refused"}
    assert all("conflict" in r["detail"] for r in refused)
    assert all(r["body"].startswith("wristband,device=CC ") for r in refused)
    assert ing.stop() == 0


def test_no_right_to_create_the_database_is_one_clear_line(
    tmp_path: Path, mosquitto: Mosquitto, make_influxd: Callable[..., Influxd], topic_prefix: str
) -> None:
    influxd = make_influxd(auth=True)
    ing = Ingester(
        tmp_path / "ing",
        mqtt_url=mosquitto.url,
        influx_url=influxd.url,
        database="telemetry",
        prefix=topic_prefix,
    )
    ing.start()  # keeps running (spooling) instead of crashing
    lines = [line for line in ing.log().splitlines() if "cannot create database" in line]
    assert len(lines) == 1
    assert "CREATE DATABASE" in lines[0]
    assert "HTTP 401" in lines[0]
    assert ing.stop() == 0


def test_shared_subscription_splits_the_stream_without_loss(
    tmp_path: Path, mosquitto: Mosquitto, influxd: Influxd, database: str, topic_prefix: str
) -> None:
    group = f"g{topic_prefix[-6:]}"
    ings = [
        Ingester(
            tmp_path / f"ing{i}",
            mqtt_url=mosquitto.url,
            influx_url=influxd.url,
            database=database,
            prefix=topic_prefix,
            metrics=True,
            mqtt_share_group=group,
        )
        for i in range(2)
    ]
    for ing in ings:
        ing.start()
    pub = Publisher(mosquitto.host, mosquitto.port)
    try:
        n = 40
        pub.many(uplinks(topic_prefix, n, "DD"))
        wait_for(lambda: count(influxd, database) == n, what="all points via the group")
        received = [metric(ing, "telemetry_ingest_received_total") for ing in ings]
        assert sum(received) == n  # each message went to exactly one member
    finally:
        pub.close()
    for ing in ings:
        assert ing.stop() == 0


def test_influx_unreachable_at_start_spools_then_creates_the_database(
    tmp_path: Path, mosquitto: Mosquitto, make_influxd: Callable[..., Influxd], topic_prefix: str
) -> None:
    port = free_port()
    ing = Ingester(
        tmp_path / "ing",
        mqtt_url=mosquitto.url,
        influx_url=f"http://127.0.0.1:{port}",
        database="telemetry",
        prefix=topic_prefix,
        metrics=True,
        influx_timeout=2,
    )
    ing.start()
    assert "InfluxDB unreachable at start" in ing.log()
    pub = Publisher(mosquitto.host, mosquitto.port)
    try:
        pub.many(uplinks(topic_prefix, 10, "EE"))
        wait_for(lambda: metric(ing, "telemetry_ingest_acked_total") == 10, what="spooled, acked")
        influxd = make_influxd(port=port)  # a new, empty server: the database must be created
        wait_for(lambda: count(influxd, "telemetry") == 10, timeout=90, what="replayed points")
    finally:
        pub.close()
    assert ing.stop() == 0
