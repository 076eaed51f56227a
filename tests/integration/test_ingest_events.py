"""Ingest publishes DESIGN section 9's events once points are stored: topics and bodies exactly."""

from __future__ import annotations

import queue
import re
import time
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from telemetry.servers import Mosquitto
from tests.support.events import EventSubscriber
from tests.support.influx import write_lines
from tests.support.ingest import (
    Publisher,
    count_points,
    decode_wristband,
    ingest_metric,
    wristband_payload,
    wristband_uplinks,
)
from tests.support.pipeline import Pipeline
from tests.support.poll import wait_for

pytestmark = pytest.mark.integration

RFC3339_MS = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z\Z")


def _rfc3339(t: int) -> str:
    return datetime.fromtimestamp(t, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _body(device: str, t: int, seq: int, data: str, **radio: object) -> dict[str, Any]:
    return {"device": device, "time": t, "seqNumber": seq, "data": data} | radio


def test_up_events_follow_the_stored_merge(pipeline: Pipeline) -> None:
    events, topic_prefix = pipeline.events_prefix, pipeline.prefix
    mosquitto, influxd, database = pipeline.mosquitto, pipeline.influxd, pipeline.database
    ing = pipeline.start(metrics=True)
    t = int(time.time()) - 5
    data = wristband_payload(72, 1200, 300, 2, 80)
    values = decode_wristband(data)
    topic = f"{topic_prefix}/wristband/1A2B3C"
    pub = pipeline.publisher
    with EventSubscriber(mosquitto.host, mosquitto.port, events) as sub:
        pub.publish(topic, _body("1a2b3c", t, 7, data, station="0A1B", rssi=-118.5, snr=9.2))
        first = sub.next()
        assert first.topic == f"{events}/wristband/1A2B3C/up"
        assert (first.qos, first.retain) == (1, False)
        assert first.body == {
            "device": "1A2B3C",
            "type": "wristband",
            "time": _rfc3339(t),
            "seq": 7,
            "stations": 1,
            "station": "0A1B",
            "rssi": -118.5,
            "snr": 9.2,
            "values": values,
        }
        # The event comes once the point is stored.
        assert count_points(influxd, database) == 1
        # A second station, heard better: the merged message again, with the new figures.
        pub.publish(topic, _body("1A2B3C", t, 7, data, station="0C2D", rssi=-101.0, snr=12.0))
        second = sub.next()
        assert second.body == first.body | {
            "stations": 2,
            "station": "0C2D",
            "rssi": -101.0,
            "snr": 12.0,
        }
        # The first copy again (a redelivery: no change, no event), then a third station
        # heard worse: a new count, the same best station. Only the third is an event.
        pub.publish(topic, _body("1A2B3C", t, 7, data, station="0A1B", rssi=-118.5, snr=9.2))
        pub.publish(topic, _body("1A2B3C", t, 7, data, station="0E3F", rssi=-130.0, snr=1.0))
        third = sub.next()
        assert third.body == second.body | {"stations": 3}
        # A copy that changes nothing, then the next uplink: the next event is the new uplink.
        pub.publish(topic, _body("1A2B3C", t, 7, data, station="0E3F", rssi=-130.0, snr=1.0))
        bare = wristband_payload(60, 1300, 310, 0, 79)
        pub.publish(topic, _body("1A2B3C", t + 1, 8, bare))
        nxt = sub.next()
        assert nxt.body == {
            "device": "1A2B3C",
            "type": "wristband",
            "time": _rfc3339(t + 1),
            "seq": 8,
            "stations": 1,
            "station": None,
            "rssi": None,
            "snr": None,
            "values": decode_wristband(bare),
        }
    wait_for(lambda: ingest_metric(ing, "telemetry_ingest_events_published_total") == 4)
    assert ingest_metric(ing, "telemetry_ingest_events_dropped_total") == 0


def test_rejects_are_events(pipeline: Pipeline) -> None:
    events, topic_prefix = pipeline.events_prefix, pipeline.prefix
    mosquitto, influxd, database = pipeline.mosquitto, pipeline.influxd, pipeline.database
    pipeline.start()
    pub = pipeline.publisher
    with EventSubscriber(mosquitto.host, mosquitto.port, events) as sub:
        before = time.time()
        pub.publish(f"{topic_prefix}/wristband/1A2B3C", b"not json")
        got = sub.next()
        assert got.topic == f"{events}/rejected/json"
        assert (got.qos, got.retain) == (1, False)
        assert set(got.body) == {"reason", "topic", "device", "time", "detail"}
        assert got.body["reason"] == "json"
        assert got.body["topic"] == f"{topic_prefix}/wristband/1A2B3C"
        assert got.body["device"] == "1A2B3C"
        assert got.body["detail"]
        assert RFC3339_MS.match(got.body["time"]), got.body["time"]
        when = datetime.strptime(got.body["time"], "%Y-%m-%dT%H:%M:%S.%fZ").replace(tzinfo=UTC)
        assert before - 1 <= when.timestamp() <= time.time() + 1
        # No device in a malformed topic: no `device` key.
        pub.publish(f"{topic_prefix}/wristband/NOT-HEX", b"{}")
        got = sub.next()
        assert got.topic == f"{events}/rejected/topic"
        assert set(got.body) == {"reason", "topic", "time", "detail"}
        assert got.body["topic"] == f"{topic_prefix}/wristband/NOT-HEX"
    # Kept as rejected points too, as before.
    wait_for(lambda: count_points(influxd, database, "detail", "rejected") == 2)


def test_no_up_event_for_an_uplink_influxdb_refused(pipeline: Pipeline) -> None:
    """A line InfluxDB refuses (here a field type conflict) is kept as `write_refused`, which
    is an event; its uplink is not stored as decoded, so it has no `up` event. The others
    written with it have theirs."""
    events, topic_prefix = pipeline.events_prefix, pipeline.prefix
    mosquitto, influxd, database = pipeline.mosquitto, pipeline.influxd, pipeline.database
    t0 = int(time.time()) - 100
    # An older decoder stored heart_rate as a float: an integer heart_rate now conflicts, in
    # this week's shard. DD's uplinks, 30 days older, go to another shard: they are stored.
    write_lines(influxd, database, [f"wristband,device=CC heart_rate=1.5 {t0 - 1000}"])
    old = t0 - 30 * 86_400
    pipeline.start(ingest_flush_interval=0.5)
    uplinks = wristband_uplinks(topic_prefix, 2, "CC", t0) + wristband_uplinks(
        topic_prefix, 2, "DD", old
    )
    with EventSubscriber(mosquitto.host, mosquitto.port, events) as sub:
        pipeline.publisher.many(uplinks)  # within one flush interval: one write
        got = sub.until(4)
        # The last event out: nothing of the batch before can come after it.
        pipeline.publisher.many(wristband_uplinks(topic_prefix, 1, "DD", old + 10))
        last = sub.next()
    assert last.topic == f"{events}/wristband/DD/up"
    assert sorted(e.topic for e in got) == [
        f"{events}/rejected/write_refused",
        f"{events}/rejected/write_refused",
        f"{events}/wristband/DD/up",
        f"{events}/wristband/DD/up",
    ]
    assert all("conflict" in e.body["detail"] for e in got if "rejected" in e.topic)
    assert sub.messages.empty()


def test_broker_refusing_events_never_stops_storing(
    make_mosquitto: Callable[..., Mosquitto], pipeline: Pipeline, tmp_path: Path
) -> None:
    """An ACL without write access to the events: uplinks stored and acked, events counted."""
    events, topic_prefix = pipeline.events_prefix, pipeline.prefix
    influxd, database = pipeline.influxd, pipeline.database
    acl = tmp_path / "acl"
    # Anonymous clients (rules before any `user` line): uplinks read and written, events read.
    acl.write_text(f"topic readwrite {topic_prefix}/#\ntopic read {events}/#\n")
    broker = make_mosquitto(acl_file=acl)
    ing = pipeline.start(mqtt_url=broker.url, metrics=True)
    t = int(time.time()) - 20
    with Publisher(broker.host, broker.port) as pub:
        pub.many(
            [
                (
                    f"{topic_prefix}/wristband/1A2B3C",
                    _body("1A2B3C", t + i, i, wristband_payload(70, i, i, 0, 50)),
                )
                for i in range(10)
            ]
        )
    wait_for(lambda: count_points(influxd, database) == 10, what="10 uplinks stored")
    wait_for(
        lambda: ingest_metric(ing, "telemetry_ingest_events_dropped_total") == 10,
        what="10 events dropped",
    )
    assert ingest_metric(ing, "telemetry_ingest_events_published_total") == 0
    wait_for(lambda: ingest_metric(ing, "telemetry_ingest_acked_total") == 10)
    assert "refuses our events" in ing.log()


def test_events_off(pipeline: Pipeline) -> None:
    events, topic_prefix = pipeline.events_prefix, pipeline.prefix
    mosquitto, influxd, database = pipeline.mosquitto, pipeline.influxd, pipeline.database
    ing = pipeline.start(ingest_events="false", metrics=True)
    pub = pipeline.publisher
    with EventSubscriber(mosquitto.host, mosquitto.port, events) as sub:
        pub.publish(
            f"{topic_prefix}/wristband/1A2B3C",
            _body("1A2B3C", int(time.time()) - 3, 1, wristband_payload(70, 1, 1, 0, 50)),
        )
        wait_for(lambda: count_points(influxd, database) == 1)
        wait_for(lambda: ingest_metric(ing, "telemetry_ingest_acked_total") == 1)
        # Events go out right after the ack; none may come (a bounded wait for an absence).
        with pytest.raises(queue.Empty):
            sub.messages.get(timeout=0.5)
