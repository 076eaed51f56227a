"""Two `telemetry ingest` processes on one host: a spool folder and a metrics port are one's own."""

from __future__ import annotations

import signal
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

from tests.support.ingest import (
    RECOVERY,
    Ingester,
    count_points,
    ingest_metric,
    wristband_uplinks,
)
from tests.support.pipeline import Pipeline
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


def _urls(p: Pipeline) -> dict[str, str]:
    """The settings an ingester of the pipeline needs, for one started apart (`Ingester`)."""
    return {"mqtt_url": p.mosquitto.url, "influx_url": p.influxd.url, "database": p.database}


def _spooled(p: Pipeline, device: str) -> Ingester:
    """An ingester that rode out an InfluxDB outage: 20 uplinks of `device` acked to its spool."""
    first = p.start(metrics=True, influx_timeout=2)
    wait_for(lambda: count_points(p.influxd, p.database) == 0, what="database created")
    p.influxd.stop()
    p.publisher.many(wristband_uplinks(p.prefix, 20, device))
    wait_for(lambda: ingest_metric(first, "telemetry_ingest_acked_total") == 20, what="spooled")
    return first


def test_a_second_ingester_on_the_same_spool_stops_and_the_first_loses_nothing(
    own_influx: Pipeline, tmp_path: Path
) -> None:
    # The case of issue 10: while the first rode out an InfluxDB outage, a second one in the
    # same folder replayed and deleted the first's batches. Now it must not even start.
    p = own_influx
    influxd, topic_prefix, urls = p.influxd, p.prefix, _urls(p)
    first = _spooled(p, "A1")
    spool = first.workdir / "spool"
    batches = sorted(f.name for f in spool.glob("*.lp"))
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
    assert sorted(f.name for f in spool.glob("*.lp")) == batches  # untouched

    # The first goes on: more uplinks while InfluxDB is still down, then all of them stored.
    assert not first.exited()
    p.publisher.many(wristband_uplinks(topic_prefix, 20, "A2"))
    wait_for(lambda: ingest_metric(first, "telemetry_ingest_acked_total") == 40, what="acked")
    influxd.start()
    wait_for(lambda: count_points(influxd, "telemetry") == 40, timeout=RECOVERY, what="all stored")
    assert "unreadable" not in first.log()
    assert first.stop() == 0


def test_a_killed_ingester_leaves_its_spool_to_the_next_one(own_influx: Pipeline) -> None:
    # The lock is the kernel's and dies with the process: after kill -9 there is nothing to
    # clean up, and an ingester started in the same folder replays what the dead one spooled.
    p = own_influx
    influxd = p.influxd
    first = _spooled(p, "B1")
    spool = first.workdir / "spool"
    first.stop(signal.SIGKILL)
    assert (spool / ".lock").exists()  # the file stays; its lock went with the process
    client_id = first.env["TELEMETRY_MQTT_CLIENT_ID"]
    after = p.start(
        client_id=client_id,  # its broker session, too
        influx_timeout=2,
        ingest_spool_dir=spool,
    )
    assert "spooled batches from an earlier run will be replayed" in after.log()
    influxd.start()
    wait_for(lambda: count_points(influxd, "telemetry") == 20, timeout=RECOVERY, what="replayed")
    assert after.stop() == 0


def test_a_second_ingester_on_a_busy_metrics_port_stops_with_one_line(pipeline: Pipeline) -> None:
    p = pipeline
    influxd, database, topic_prefix, urls = p.influxd, p.database, p.prefix, _urls(p)
    first = p.start(metrics=True)
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
    p.publisher.many(wristband_uplinks(topic_prefix, 10, "C1"))
    wait_for(lambda: count_points(influxd, database) == 10, what="stored by the first")
    assert ingest_metric(first, "telemetry_ingest_acked_total") == 10
    assert first.stop() == 0
