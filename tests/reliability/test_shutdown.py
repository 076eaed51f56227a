"""SIGTERM while InfluxDB is down: the ingester exits within its deadline, nothing is lost."""

from __future__ import annotations

import signal
from collections.abc import Callable

import pytest

from telemetry.servers import Influxd, Mosquitto
from tests.reliability.conftest import (
    PROBE_DEVICE,
    count_ours,
    finish_report,
    ingest_metrics,
    probe_stored,
    settle,
)
from tests.support.ingest import Ingester
from tests.support.ledger import DeviceStream, LedgerPublisher, compare, device_streams
from tests.support.poll import wait_for

SHUTDOWN_TIMEOUT = 5.0  # s, TELEMETRY_INGEST_SHUTDOWN_TIMEOUT for this scenario
EXIT_SLACK = 5.0  # s beyond the deadline for interpreter exit on a loaded 2-core box


@pytest.mark.integration
@pytest.mark.slow
@pytest.mark.timeout(300)
@pytest.mark.parametrize(
    "spool_max_bytes",
    [
        None,  # the default spool: what cannot be written is spooled, acked, replayed later
        "1024",  # a spool full at once: nothing may be acked that is not stored
    ],
    ids=["spool", "spool-full"],
)
def test_sigterm_with_influx_down_exits_in_time_and_loses_nothing(
    spool_max_bytes: str | None,
    mosquitto: Mosquitto,
    make_influxd: Callable[..., Influxd],
    topic_prefix: str,
    make_ingester: Callable[..., Ingester],
) -> None:
    rate = 200
    influx = make_influxd()
    db = "telemetry"
    influx.create_database(db)
    ing = make_ingester(
        mqtt_url=mosquitto.url,
        influx_url=influx.url,
        database=db,
        prefix=topic_prefix,
        influx_timeout="2",
        ingest_shutdown_timeout=str(SHUTDOWN_TIMEOUT),
        **({"ingest_spool_max_bytes": spool_max_bytes} if spool_max_bytes else {}),
    )
    streams = device_streams(50)
    with LedgerPublisher(mosquitto.host, mosquitto.port, topic_prefix) as pub:
        probe_stored(pub, influx, db, 30, DeviceStream(PROBE_DEVICE))
        pub.run(streams, rate, 5)  # stored normally
        pub.wait_all_acked(30)
        wait_for(lambda: count_ours(influx, db) >= len(pub.acked), 60, "first part stored")
        influx.stop()
        pub.run_in_background(streams, rate, 10)  # arrives with InfluxDB down
        wait_for(lambda: len(pub.acked) >= rate * 5 + rate * 3, 30, "load with InfluxDB down")
        before = ingest_metrics(ing)
        code, took = ing.stop_timed(signal.SIGTERM, timeout=SHUTDOWN_TIMEOUT + EXIT_SLACK)
        log = ing.log_tail(15)
        pub.join(60)
        pub.wait_all_acked(30)
        # Everything after the exit waits in the broker for the ingester's persistent session.
        influx.start()
        ing.start()
        settle_s = settle(pub, influx, db, timeout=120)
    rep = compare(
        f"SIGTERM with InfluxDB down, then restart (spool max {spool_max_bytes or 'default'})",
        influx,
        db,
        pub,
    )
    rep.figures = {
        "shutdown_timeout_s": SHUTDOWN_TIMEOUT,
        "exit_code": str(code),
        "exit_took_s": round(took, 2),
        "spooled_batches_at_sigterm": before.get("telemetry_ingest_spool_batches", 0.0),
        "acked_at_sigterm": before.get("telemetry_ingest_acked_total", 0.0),
        "received_at_sigterm": before.get("telemetry_ingest_received_total", 0.0),
        "settle_after_restart_s": round(settle_s, 1),
    }
    finish_report(rep, ing)
    print("  ingest log at exit:\n    " + log.replace("\n", "\n    "))
    assert code is not None, "the ingester did not exit within its shutdown deadline"
    assert code == 0
    assert rep.missing == 0, "uplinks acked but neither stored nor spooled were lost"
    assert rep.forged == 0
    assert rep.corrupted == 0
