"""Faults around the ingester: broker restart, full spool, refused writes, no right to create
the database, and a shared subscription."""

from __future__ import annotations

import time
from collections.abc import Callable

import pytest

from telemetry.servers import Influxd, Mosquitto, free_port
from tests.support.influx import select, write_lines
from tests.support.ingest import (
    RECOVERY,
    Ingester,
    Publisher,
    count_points,
    ingest_metric,
    wristband_uplinks,
)
from tests.support.pipeline import Pipeline
from tests.support.poll import wait_for

pytestmark = pytest.mark.integration


def test_broker_restart_reconnects_and_keeps_the_session(
    make_mosquitto: Callable[..., Mosquitto], pipeline: Pipeline
) -> None:
    influxd, database, topic_prefix = pipeline.influxd, pipeline.database, pipeline.prefix
    broker = make_mosquitto()
    ing = pipeline.start(mqtt_url=broker.url)
    broker.restart()  # SIGTERM: Mosquitto saves the session
    with Publisher(broker.host, broker.port) as pub:
        # queued for the session or delivered live
        pub.many(wristband_uplinks(topic_prefix, 10, "AA"))
        wait_for(lambda: count_points(influxd, database) == 10, what="points after broker restart")
        wait_for(lambda: ing.log().count("connected to MQTT") >= 2, what="a reconnection")
    assert ing.stop() == 0


def test_full_spool_stops_intake_and_loses_nothing(own_influx: Pipeline) -> None:
    p = own_influx
    influxd, topic_prefix = p.influxd, p.prefix
    ing = p.start(
        metrics=True,
        influx_timeout=2,
        ingest_batch_size=4,  # two uplinks per batch
        ingest_spool_max_bytes=1024,  # about three batches
    )
    wait_for(lambda: count_points(influxd, "telemetry") == 0, what="database created")
    influxd.stop()
    n = 60
    p.publisher.many(wristband_uplinks(topic_prefix, n, "BB"))
    wait_for(
        lambda: (
            ingest_metric(ing, "telemetry_ingest_spool_bytes") >= 1024
            and ingest_metric(ing, "telemetry_ingest_acked_total") > 0
        ),
        what="spool full",
    )
    acked = ingest_metric(ing, "telemetry_ingest_acked_total")
    assert acked < n  # back-pressure: the rest stays unacked with the broker
    influxd.start()
    wait_for(lambda: count_points(influxd, "telemetry") == n, timeout=RECOVERY, what="all points")
    wait_for(lambda: ingest_metric(ing, "telemetry_ingest_acked_total") == n, what="all acked")
    assert ing.stop() == 0


def test_a_copy_held_until_influx_can_be_read_shows_in_the_oldest_unacked_age(
    own_influx: Pipeline,
) -> None:
    # A late copy of a transmission stored before this ingester started must be merged with
    # what is stored: while InfluxDB cannot be read it waits, unacked. Nothing is being
    # written meanwhile, and the oldest-unacked gauge must still show its age.
    p = own_influx
    influxd, topic_prefix = p.influxd, p.prefix

    def start() -> Ingester:
        return p.start(metrics=True)

    def merged() -> list[tuple[object, object]]:
        rows = select(influxd, "telemetry", "SELECT stations, station FROM uplink")
        return [(r["stations"], r["station"]) for r in rows]

    first = start()
    [(topic, body)] = wristband_uplinks(topic_prefix, 1, "CC")
    p.publisher.publish(topic, body | {"station": "01", "rssi": -120.0})
    wait_for(lambda: merged() == [(1, "01")], what="the first copy stored")
    assert first.stop() == 0
    ing = start()  # knows what was stored before it: a copy of that must be merged with it
    assert ingest_metric(ing, "telemetry_ingest_oldest_unacked_seconds") == 0
    influxd.stop()
    p.publisher.publish(topic, body | {"station": "02", "rssi": -100.0})
    wait_for(
        lambda: ingest_metric(ing, "telemetry_ingest_oldest_unacked_seconds") >= 2.0,
        what="the held copy's age",
    )
    assert ingest_metric(ing, "telemetry_ingest_acked_total") == 0
    influxd.start()
    wait_for(lambda: merged() == [(2, "02")], timeout=RECOVERY, what="both copies merged")
    wait_for(lambda: ingest_metric(ing, "telemetry_ingest_acked_total") == 1, what="acked")
    assert ingest_metric(ing, "telemetry_ingest_oldest_unacked_seconds") == 0
    assert ing.stop() == 0


@pytest.mark.parametrize("influx_at_restart", ["down", "up"])
def test_copies_spooled_before_a_sigkill_are_merged_with_a_late_copy_after_it(
    own_influx: Pipeline, influx_at_restart: str
) -> None:
    """Two copies are spooled (and acked) while InfluxDB is down; the ingester is killed; the
    third copy comes to the next one. That one knows from its spool folder which transmissions
    were taken before it, so the third copy waits, unacked, until InfluxDB can be read and the
    spool is replayed, and is then merged with the two: 3 stations, not 1."""
    p = own_influx
    influxd, topic_prefix = p.influxd, p.prefix
    ing = p.start(metrics=True, influx_timeout=2)
    wait_for(lambda: count_points(influxd, "telemetry") == 0, what="database created")
    influxd.stop()
    [(topic, body)] = wristband_uplinks(topic_prefix, 1, "DD")
    p.publisher.publish(topic, body | {"station": "01", "rssi": -120.0})
    p.publisher.publish(topic, body | {"station": "02", "rssi": -110.0})
    wait_for(lambda: ingest_metric(ing, "telemetry_ingest_acked_total") == 2, what="2 spooled")
    ing.kill()
    p.publisher.publish(topic, body | {"station": "03", "rssi": -100.0})
    if influx_at_restart == "up":
        influxd.start()
    ing.start()
    if influx_at_restart == "down":
        wait_for(
            lambda: ingest_metric(ing, "telemetry_ingest_oldest_unacked_seconds") >= 1.0,
            what="the late copy held",
        )
        influxd.start()

    def merged() -> list[tuple[object, object]]:
        rows = select(influxd, "telemetry", "SELECT stations, station FROM uplink")
        return [(r["stations"], r["station"]) for r in rows]

    wait_for(lambda: ingest_metric(ing, "telemetry_ingest_acked_total") == 1, RECOVERY, "acked")
    wait_for(lambda: merged() == [(3, "03")], RECOVERY, "the three copies merged")
    assert ing.stop() == 0


def test_refused_write_goes_to_rejected_and_the_rest_is_stored(pipeline: Pipeline) -> None:
    p = pipeline
    influxd, database, topic_prefix = p.influxd, p.database, p.prefix
    t0 = int(time.time()) - 100
    # An older decoder stored heart_rate as a float: the integer field now conflicts.
    write_lines(influxd, database, [f"wristband,device=0 heart_rate=1.5 {t0 - 1000}"])
    ing = p.start()
    p.publisher.many(wristband_uplinks(topic_prefix, 3, "CC", t0))
    wait_for(lambda: count_points(influxd, database) == 3, what="raw uplinks stored")
    refused = wait_for(
        lambda: len(r := select(influxd, database, "SELECT * FROM rejected")) == 3 and r,
        what="three write_refused records",
    )
    assert {r["reason"] for r in refused} == {"write_refused"}
    assert all("conflict" in r["detail"] for r in refused)
    assert all(r["body"].startswith("wristband,device=CC ") for r in refused)
    assert ing.stop() == 0


def test_no_right_to_create_the_database_is_one_clear_line(
    make_influxd: Callable[..., Influxd], pipeline: Pipeline
) -> None:
    influxd = make_influxd(auth=True)
    # keeps running (spooling) instead of crashing
    ing = pipeline.start(influx_url=influxd.url, database="telemetry")
    lines = [line for line in ing.log().splitlines() if "cannot create database" in line]
    assert len(lines) == 1
    assert "CREATE DATABASE" in lines[0]
    assert "HTTP 401" in lines[0]
    assert ing.stop() == 0


def test_shared_subscription_splits_the_stream_without_loss(pipeline: Pipeline) -> None:
    p = pipeline
    influxd, database, topic_prefix = p.influxd, p.database, p.prefix
    group = f"g{topic_prefix[-6:]}"
    ings = [
        p.start(
            metrics=True,
            mqtt_share_group=group,
        )
        for _ in range(2)
    ]
    n = 40
    p.publisher.many(wristband_uplinks(topic_prefix, n, "DD"))
    wait_for(lambda: count_points(influxd, database) == n, what="all points via the group")
    received = [ingest_metric(ing, "telemetry_ingest_received_total") for ing in ings]
    assert sum(received) == n  # each message went to exactly one member
    for ing in ings:
        assert ing.stop() == 0


def test_copies_split_across_a_share_group_are_merged(pipeline: Pipeline) -> None:
    """Each transmission heard by three stations: its copies go round-robin to two members,
    each of which misses it in its cache and finds nothing stored yet. Every point ends with
    all three stations and the best one, whichever member wrote last."""
    p = pipeline
    influxd, database, topic_prefix = p.influxd, p.database, p.prefix
    group = f"g{topic_prefix[-6:]}"
    ings = [p.start(metrics=True, mqtt_share_group=group) for _ in range(2)]
    n = 30
    heard = (("0A", -120.0), ("0B", -100.5), ("0C", -110.0))
    messages = [
        (topic, body | {"station": station, "rssi": rssi, "snr": 5.0})
        for topic, body in wristband_uplinks(topic_prefix, n, "D1")
        for station, rssi in heard
    ]
    p.publisher.many(messages)

    def merged() -> list[tuple[object, object, object, object]]:
        rows = select(influxd, database, "SELECT stations, station, station_ids, rssi FROM uplink")
        return sorted({(r["stations"], r["station"], r["station_ids"], r["rssi"]) for r in rows})

    def all_merged() -> bool:
        return count_points(influxd, database) == n and merged() == [(3, "0B", "0A,0B,0C", -100.5)]

    wait_for(all_merged, RECOVERY, "every transmission with its three stations")
    received = [ingest_metric(ing, "telemetry_ingest_received_total") for ing in ings]
    assert sum(received) == 3 * n
    assert min(received) > 0  # both members had copies
    decoded = select(influxd, database, "SELECT stations, rssi FROM wristband")
    assert {(r["stations"], r["rssi"]) for r in decoded} == {(3, -100.5)}
    for ing in ings:
        assert ing.stop() == 0


def test_influx_unreachable_at_start_spools_then_creates_the_database(
    make_influxd: Callable[..., Influxd], pipeline: Pipeline
) -> None:
    p, port = pipeline, free_port()
    ing = p.start(
        influx_url=f"http://127.0.0.1:{port}", database="telemetry", metrics=True, influx_timeout=2
    )
    assert "InfluxDB unreachable at start" in ing.log()
    p.publisher.many(wristband_uplinks(p.prefix, 10, "EE"))
    wait_for(
        lambda: ingest_metric(ing, "telemetry_ingest_acked_total") == 10,
        what="spooled, acked",
    )
    influxd = make_influxd(port=port)  # a new, empty server: the database must be created
    wait_for(
        lambda: count_points(influxd, "telemetry") == 10,
        timeout=RECOVERY,
        what="replayed points",
    )
    assert ing.stop() == 0
