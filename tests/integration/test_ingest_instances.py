"""Two `telemetry ingest` processes on one host: a spool folder and a metrics port are one's own."""

from __future__ import annotations

import signal
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

from telemetry.servers import Influxd, Mosquitto
from tests.support.ingest import (
    RECOVERY,
    Ingester,
    Publisher,
    StartIngester,
    count_points,
    ingest_metric,
    wristband_uplinks,
)
from tests.support.poll import wait_for

pytestmark = pytest.mark.integration


@contextmanager
def refused_ingester(workdir: Path, **settings: object) -> Iterator[tuple[int, list[str]]]:
    """Start an ingester expected to stop at start: (exit code, its output lines)."""
    ing = Ingester(workdir, **settings)  # type: ignore[arg-type]
    ing.start(connected=False)
    try:
        assert ing.proc is not None
        code = ing.proc.wait(30)
        yield code, [line for line in ing.log().splitlines() if line.strip()]
    finally:
        if not ing.exited():
            ing.kill()


def the_one_error(lines: list[str]) -> str:
    """The single line that is not an INFO log line (the start banner), and no traceback."""
    assert not any("Traceback" in line for line in lines), "\n".join(lines)
    others = [line for line in lines if " INFO " not in line]
    assert len(others) == 1, "\n".join(lines)
    assert others[0].startswith("telemetry: ")
    return others[0]


def test_a_second_ingester_on_the_same_spool_stops_and_the_first_loses_nothing(
    start_ingester: StartIngester,
    mosquitto: Mosquitto,
    make_influxd: Callable[..., Influxd],
    topic_prefix: str,
    tmp_path: Path,
) -> None:
    # The case of issue 10: while the first rode out an InfluxDB outage, a second one in the
    # same folder replayed and deleted the first's batches. Now it must not even start.
    influxd = make_influxd()
    urls = {"mqtt_url": mosquitto.url, "influx_url": influxd.url, "database": "telemetry"}
    first = start_ingester(**urls, prefix=topic_prefix, metrics=True, influx_timeout=2)
    spool = first.workdir / "spool"
    wait_for(lambda: count_points(influxd, "telemetry") == 0, what="database created")
    influxd.stop()
    with Publisher(mosquitto.host, mosquitto.port) as pub:
        pub.many(wristband_uplinks(topic_prefix, 20, "A1"))
        wait_for(lambda: ingest_metric(first, "telemetry_ingest_acked_total") == 20, what="spooled")
        batches = sorted(p.name for p in spool.glob("*.lp"))
        assert batches

        with refused_ingester(
            tmp_path / "second", **urls, prefix=topic_prefix, metrics=True, ingest_spool_dir=spool
        ) as (code, lines):
            assert code != 0
            line = the_one_error(lines)
        assert repr(str(spool)) in line
        assert first.proc is not None
        assert f"process {first.proc.pid}" in line
        assert "TELEMETRY_INGEST_SPOOL_DIR" in line
        assert sorted(p.name for p in spool.glob("*.lp")) == batches  # untouched

        # The first goes on: more uplinks while InfluxDB is still down, then all of them stored.
        assert not first.exited()
        pub.many(wristband_uplinks(topic_prefix, 20, "A2"))
        wait_for(lambda: ingest_metric(first, "telemetry_ingest_acked_total") == 40, what="acked")
        influxd.start()
        wait_for(
            lambda: count_points(influxd, "telemetry") == 40, timeout=RECOVERY, what="all stored"
        )
    assert "unreadable" not in first.log()
    assert first.stop() == 0


def test_a_killed_ingester_leaves_its_spool_to_the_next_one(
    start_ingester: StartIngester,
    mosquitto: Mosquitto,
    make_influxd: Callable[..., Influxd],
    topic_prefix: str,
    tmp_path: Path,
) -> None:
    # The lock is the kernel's and dies with the process: after kill -9 there is nothing to
    # clean up, and an ingester started in the same folder replays what the dead one spooled.
    influxd = make_influxd()
    urls = {"mqtt_url": mosquitto.url, "influx_url": influxd.url, "database": "telemetry"}
    first = start_ingester(**urls, prefix=topic_prefix, metrics=True, influx_timeout=2)
    spool = first.workdir / "spool"
    wait_for(lambda: count_points(influxd, "telemetry") == 0, what="database created")
    influxd.stop()
    with Publisher(mosquitto.host, mosquitto.port) as pub:
        pub.many(wristband_uplinks(topic_prefix, 20, "B1"))
        wait_for(lambda: ingest_metric(first, "telemetry_ingest_acked_total") == 20, what="spooled")
    first.stop(signal.SIGKILL)
    assert (spool / ".lock").exists()  # the file stays; its lock went with the process
    client_id = first.env["TELEMETRY_MQTT_CLIENT_ID"]
    after = start_ingester(
        **urls,
        prefix=topic_prefix,
        client_id=client_id,  # its broker session, too
        influx_timeout=2,
        ingest_spool_dir=spool,
    )
    assert "spooled batches from an earlier run will be replayed" in after.log()
    influxd.start()
    wait_for(lambda: count_points(influxd, "telemetry") == 20, timeout=RECOVERY, what="replayed")
    assert after.stop() == 0


def test_a_second_ingester_on_a_busy_metrics_port_stops_with_one_line(
    start_ingester: StartIngester,
    mosquitto: Mosquitto,
    influxd: Influxd,
    database: str,
    topic_prefix: str,
) -> None:
    urls = {"mqtt_url": mosquitto.url, "influx_url": influxd.url, "database": database}
    first = start_ingester(**urls, prefix=topic_prefix, metrics=True)
    with refused_ingester(
        first.workdir.parent / "second",
        **urls,
        prefix=topic_prefix,
        ingest_metrics_port=first.metrics_port,
    ) as (code, lines):
        assert code != 0
        line = the_one_error(lines)
    assert f":{first.metrics_port}" in line
    assert "TELEMETRY_INGEST_METRICS_PORT" in line
    # The first is unharmed: it still serves its metrics and stores.
    with Publisher(mosquitto.host, mosquitto.port) as pub:
        pub.many(wristband_uplinks(topic_prefix, 10, "C1"))
        wait_for(lambda: count_points(influxd, database) == 10, what="stored by the first")
    assert ingest_metric(first, "telemetry_ingest_acked_total") == 10
    assert first.stop() == 0
