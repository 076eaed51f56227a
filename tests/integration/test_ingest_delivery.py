"""At-least-once delivery with real servers: manual ack over a crash, the disk spool over an
InfluxDB outage, and a clean SIGTERM."""

from __future__ import annotations

import signal
from typing import Any

import pytest

from telemetry.servers import Influxd
from tests.support.ingest import (
    count_points,
    ingest_metric,
    wristband_uplinks,
)
from tests.support.pipeline import Pipeline
from tests.support.poll import wait_for

pytestmark = pytest.mark.integration

N = 40  # uplinks per scenario: several batches at the test's batch size


def uplinks(prefix: str, n: int = N, device: str = "D1") -> list[tuple[str, dict[str, Any]]]:
    """This module's stream: heart rate rising per uplink, heard by one station."""
    return wristband_uplinks(
        prefix, n, device, heart_rate=60, heart_rate_step=1, station="0A", rssi=-100
    )


def count(influxd: Influxd, database: str) -> int:
    return count_points(influxd, database, "heart_rate", "wristband")


def test_kill_9_before_influx_answers_loses_nothing(own_influx: Pipeline) -> None:
    p = own_influx
    influxd, topic_prefix = p.influxd, p.prefix
    ing = p.start(
        metrics=True,
        influx_timeout=60,  # the write hangs on the paused server until we kill
        ingest_batch_size=10,
    )
    wait_for(lambda: count(influxd, "telemetry") == 0, what="database created by ingest")
    influxd.pause()
    try:
        p.publisher.many(uplinks(topic_prefix))
        # Received but stuck behind the paused server (the rest wait in the broker).
        wait_for(
            lambda: ingest_metric(ing, "telemetry_ingest_received_total") >= 1,
            what="received",
        )
        assert ingest_metric(ing, "telemetry_ingest_acked_total") == 0
        ing.kill()
        assert not list((ing.workdir / "spool").glob("*.lp"))  # nothing went to disk
        influxd.resume()
        ing.start()  # same client id: the broker redelivers the unacked messages
        wait_for(lambda: count(influxd, "telemetry") == N, what=f"{N} points after redelivery")
    finally:
        influxd.resume()
    assert ing.stop() == 0


def test_influx_outage_spools_and_replays_even_after_a_crash(own_influx: Pipeline) -> None:
    p = own_influx
    influxd, topic_prefix = p.influxd, p.prefix
    ing = p.start(
        metrics=True,
        influx_timeout=2,
        ingest_batch_size=10,
    )
    wait_for(lambda: count(influxd, "telemetry") == 0, what="database created by ingest")
    influxd.stop()
    p.publisher.many(uplinks(topic_prefix))
    wait_for(
        lambda: ingest_metric(ing, "telemetry_ingest_acked_total") >= N,
        what="spooled and acked",
    )
    assert ingest_metric(ing, "telemetry_ingest_spool_batches") >= 1
    ing.kill()  # acked: only the spool on disk has them now
    assert list((ing.workdir / "spool").glob("*.lp"))
    influxd.start()
    ing.start()
    wait_for(lambda: count(influxd, "telemetry") == N, what=f"{N} points replayed")
    wait_for(lambda: ingest_metric(ing, "telemetry_ingest_spool_batches") == 0, what="empty spool")
    assert not list((ing.workdir / "spool").glob("*.lp"))
    # Live traffic flows straight through again.
    p.publisher.many(uplinks(topic_prefix, 5, device="D2"))
    wait_for(lambda: count(influxd, "telemetry") == N + 5, what="live points after replay")
    assert ing.stop() == 0


def test_sigterm_stores_what_was_read_and_exits_0(pipeline: Pipeline) -> None:
    p = pipeline
    influxd, database, topic_prefix = p.influxd, p.database, p.prefix
    ing = p.start(
        metrics=True,
        ingest_flush_interval=5,  # points still pending when the signal comes
        ingest_shutdown_timeout=20,
    )
    p.publisher.many(uplinks(topic_prefix, 5))
    wait_for(lambda: ingest_metric(ing, "telemetry_ingest_received_total") >= 5, what="received")
    assert ing.stop(signal.SIGTERM) == 0
    assert count(influxd, database) == 5
    assert "stopped" in ing.log()


def test_second_signal_exits_at_once(own_influx: Pipeline) -> None:
    p = own_influx
    influxd, topic_prefix = p.influxd, p.prefix
    ing = p.start(
        metrics=True,
        influx_timeout=60,
        ingest_shutdown_timeout=60,
    )
    influxd.pause()
    try:
        p.publisher.many(uplinks(topic_prefix, 3))
        wait_for(
            lambda: ingest_metric(ing, "telemetry_ingest_received_total") >= 3,
            what="received",
        )
        assert ing.proc is not None
        ing.proc.send_signal(signal.SIGTERM)
        wait_for(lambda: "stopping" in ing.log(), what="first signal handled")
        assert ing.stop(signal.SIGTERM) == 128 + signal.SIGTERM  # not the drained exit 0
    finally:
        influxd.resume()
