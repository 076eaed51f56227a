"""At-least-once delivery with real servers: manual ack over a crash, the disk spool over an
InfluxDB outage, and a clean SIGTERM."""

from __future__ import annotations

import signal
import time
import urllib.request
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from telemetry.servers import Influxd, Mosquitto
from tests.support.influx import select
from tests.support.ingest import Ingester, Publisher, wait_for, wristband_payload

pytestmark = pytest.mark.integration

N = 40  # uplinks per scenario: several batches at the test's batch size


def uplinks(prefix: str, n: int = N, device: str = "D1") -> list[tuple[str, dict[str, Any]]]:
    now = int(time.time())
    return [
        (
            f"{prefix}/wristband/{device}",
            {
                "device": device,
                "time": now - n + i,
                "seqNumber": i,
                "data": wristband_payload(60 + i, i, i, 0, 50),
                "station": "0A",
                "rssi": -100,
            },
        )
        for i in range(n)
    ]


def count(influxd: Influxd, database: str) -> int:
    try:
        got = select(influxd, database, "SELECT count(heart_rate) FROM wristband")
    except Exception:  # the server may be restarting: not yet
        return -1
    return int(got[0]["count"]) if got else 0


def metric(ing: Ingester, name: str) -> float:
    url = f"http://127.0.0.1:{ing.metrics_port}/metrics"
    with urllib.request.urlopen(url, timeout=5) as r:
        for line in r.read().decode().splitlines():
            if line.startswith(name + " "):
                return float(line.split()[1])
    return float("nan")


@pytest.fixture(autouse=True)
def _no_leftover_ingester(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """Every Ingester started in a test is killed at its end, whatever happened."""
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


def test_kill_9_before_influx_answers_loses_nothing(
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
        influx_timeout=60,  # the write hangs on the paused server until we kill
        ingest_batch_size=10,
    )
    ing.start()
    wait_for(lambda: count(influxd, "telemetry") == 0, what="database created by ingest")
    influxd.pause()
    pub = Publisher(mosquitto.host, mosquitto.port)
    try:
        pub.many(uplinks(topic_prefix))
        # Received but stuck behind the paused server (the rest wait in the broker).
        wait_for(lambda: metric(ing, "telemetry_ingest_received_total") >= 1, what="received")
        assert metric(ing, "telemetry_ingest_acked_total") == 0
        ing.kill()
        assert not list((tmp_path / "ing" / "spool").glob("*.lp"))  # nothing went to disk
        influxd.resume()
        ing.start()  # same client id: the broker redelivers the unacked messages
        wait_for(lambda: count(influxd, "telemetry") == N, what=f"{N} points after redelivery")
    finally:
        pub.close()
        influxd.resume()
    assert ing.stop() == 0


def test_influx_outage_spools_and_replays_even_after_a_crash(
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
        ingest_batch_size=10,
    )
    ing.start()
    wait_for(lambda: count(influxd, "telemetry") == 0, what="database created by ingest")
    influxd.stop()
    pub = Publisher(mosquitto.host, mosquitto.port)
    try:
        pub.many(uplinks(topic_prefix))
        wait_for(lambda: metric(ing, "telemetry_ingest_acked_total") >= N, what="spooled and acked")
        assert metric(ing, "telemetry_ingest_spool_batches") >= 1
        ing.kill()  # acked: only the spool on disk has them now
        assert list((tmp_path / "ing" / "spool").glob("*.lp"))
        influxd.start()
        ing.start()
        wait_for(lambda: count(influxd, "telemetry") == N, what=f"{N} points replayed")
        wait_for(lambda: metric(ing, "telemetry_ingest_spool_batches") == 0, what="empty spool")
        assert not list((tmp_path / "ing" / "spool").glob("*.lp"))
        # Live traffic flows straight through again.
        pub.many(uplinks(topic_prefix, 5, device="D2"))
        wait_for(lambda: count(influxd, "telemetry") == N + 5, what="live points after replay")
    finally:
        pub.close()
    assert ing.stop() == 0


def test_sigterm_stores_what_was_read_and_exits_0(
    tmp_path: Path, mosquitto: Mosquitto, influxd: Influxd, database: str, topic_prefix: str
) -> None:
    ing = Ingester(
        tmp_path / "ing",
        mqtt_url=mosquitto.url,
        influx_url=influxd.url,
        database=database,
        prefix=topic_prefix,
        metrics=True,
        ingest_flush_interval=5,  # points still pending when the signal comes
        ingest_shutdown_timeout=20,
    )
    ing.start()
    pub = Publisher(mosquitto.host, mosquitto.port)
    try:
        pub.many(uplinks(topic_prefix, 5))
        wait_for(lambda: metric(ing, "telemetry_ingest_received_total") >= 5, what="received")
        assert ing.stop(signal.SIGTERM) == 0
        assert count(influxd, database) == 5
        assert "stopped" in ing.log()
    finally:
        pub.close()


def test_second_signal_exits_at_once(
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
        influx_timeout=60,
        ingest_shutdown_timeout=60,
    )
    ing.start()
    influxd.pause()
    pub = Publisher(mosquitto.host, mosquitto.port)
    try:
        pub.many(uplinks(topic_prefix, 3))
        wait_for(lambda: metric(ing, "telemetry_ingest_received_total") >= 3, what="received")
        assert ing.proc is not None
        ing.proc.send_signal(signal.SIGTERM)
        wait_for(lambda: "stopping" in ing.log(), what="first signal handled")
        assert ing.stop(signal.SIGTERM) == 128 + signal.SIGTERM  # not the drained exit 0
    finally:
        pub.close()
        influxd.resume()
