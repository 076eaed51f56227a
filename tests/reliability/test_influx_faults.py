"""InfluxDB hung (SIGSTOP 30 s) or slow (2 s a response): no loss; stored 5 s after a hang."""

from __future__ import annotations

import time
from collections.abc import Callable

import httpx
import pytest

from influx.writer import BACKOFF_CAP
from telemetry.servers import Influxd, Mosquitto
from tests.reliability.conftest import finish_report, settle, stored_within, subscribed_ledger
from tests.support.faultproxy import FaultProxy
from tests.support.ingest import Ingester
from tests.support.ledger import compare, device_streams
from tests.support.poll import wait_for

DEVICES = 100
HANG_S = 30  # the brief's SIGSTOP length
INFLUX_TIMEOUT = 2.0  # s, TELEMETRY_INFLUX_TIMEOUT: small, so a hang shows within the test
SLOW_RESPONSE_S = 2.0  # the brief's slow InfluxDB
# Issue 10: every acked uplink queryable within 5 s of SIGCONT. A correctness bound (storing
# resumes when InfluxDB answers, not when a backoff of up to BACKOFF_CAP ends), not a speed goal.
RECOVERY_BOUND_S = 5.0


def _slower_than(metrics: dict[str, float], seconds: float) -> int:
    """Write attempts that took longer than the smallest histogram bucket >= `seconds`."""
    prefix = "telemetry_ingest_write_seconds_bucket{le="
    buckets = sorted(
        (float(k[len(prefix) : -1].strip('"')), v)
        for k, v in metrics.items()
        if k.startswith(prefix) and "Inf" not in k
    )
    total = metrics.get("telemetry_ingest_write_seconds_count", 0.0)
    within = next((v for le, v in buckets if le >= seconds), total)
    return int(total - within)


@pytest.mark.integration
@pytest.mark.slow
@pytest.mark.timeout(300)
def test_influx_hung_30s_loses_nothing_and_never_blocks(
    mosquitto: Mosquitto,
    make_influxd: Callable[..., Influxd],
    topic_prefix: str,
    make_ingester: Callable[..., Ingester],
) -> None:
    rate, duration = 200, 45  # load covers the whole hang and some time after
    influx = make_influxd()
    db = "telemetry"
    influx.create_database(db)
    ing = make_ingester(
        mqtt_url=mosquitto.url,
        influx_url=influx.url,
        database=db,
        prefix=topic_prefix,
        influx_timeout=str(INFLUX_TIMEOUT),
    )
    streams = device_streams(DEVICES)
    scrapes: list[tuple[float, float, float]] = []  # (t, received, spooled batches)
    failed_scrapes = 0
    with subscribed_ledger(mosquitto, topic_prefix, ing, influx, db) as (pub, rss):
        pub.run_in_background(streams, rate, duration)
        wait_for(lambda: len(pub.acked) >= rate * 5, 30, "load underway")
        influx.pause()
        t0 = time.monotonic()
        try:
            while time.monotonic() - t0 < HANG_S:
                try:
                    m = ing.metrics()  # the ingester must answer while its database hangs
                except httpx.HTTPError:
                    failed_scrapes += 1
                else:
                    scrapes.append(
                        (
                            time.monotonic() - t0,
                            m.get("telemetry_ingest_received_total", 0.0),
                            m.get("telemetry_ingest_spool_batches", 0.0),
                        )
                    )
                time.sleep(1)  # one scrape a second, like a Prometheus with a short interval
        finally:
            held = pub.acked_keys()  # acked while InfluxDB hung: spooled, not yet stored
            influx.resume()
        # The correctness bound of issue 10: every uplink acked during the hang is queryable
        # within RECOVERY_BOUND_S of SIGCONT, with the load still flowing. Polled well past the
        # bound so that the report gives the figure even when the bound is missed.
        recovery_s = stored_within(held, influx, db, timeout=BACKOFF_CAP * 2)
        pub.join(duration * 2)
        pub.wait_all_acked(30)
        settle_s = settle(pub, influx, db, timeout=120)
    rep = compare("InfluxDB hung (SIGSTOP 30 s)", influx, db, pub)
    first_spool = next((t for t, _, spooled in scrapes if spooled > 0), None)
    rep.figures = {
        "rate_per_s": rate,
        "duration_s": duration,
        "influx_timeout_s": INFLUX_TIMEOUT,
        "scrapes_ok_during_hang": len(scrapes),
        "scrapes_failed_during_hang": failed_scrapes,
        "received_during_hang": int(scrapes[-1][1] - scrapes[0][1]) if scrapes else 0,
        "first_spooled_after_s": round(first_spool, 1) if first_spool is not None else "never",
        "max_spooled_batches": max((s for _, _, s in scrapes), default=0),
        "acked_before_sigcont": len(held),
        "recovery_s": round(recovery_s, 2),
        "settle_s": round(settle_s, 1),
    }
    finish_report(rep, ing, rss)
    rep.figures["writes_over_2.5x_timeout"] = _slower_than(rep.metrics, INFLUX_TIMEOUT * 2.5)
    print(f"  writes_over_2.5x_timeout: {rep.figures['writes_over_2.5x_timeout']}")
    assert rep.missing == 0, "a hung InfluxDB must not lose acked uplinks"
    assert rep.forged == 0
    assert rep.corrupted == 0
    assert failed_scrapes == 0, "metrics must answer while InfluxDB hangs"
    assert scrapes[-1][1] > scrapes[0][1], "metrics must keep ticking during the hang"
    assert rep.figures["writes_over_2.5x_timeout"] == 0, "a write attempt outlived its timeout"
    assert recovery_s <= RECOVERY_BOUND_S, (
        f"uplinks acked during the hang were stored {recovery_s:.1f} s after SIGCONT"
    )


@pytest.mark.integration
@pytest.mark.slow
@pytest.mark.timeout(300)
def test_influx_slow_2s_per_response_loses_nothing(
    mosquitto: Mosquitto,
    influxd: Influxd,
    database: str,
    topic_prefix: str,
    make_ingester: Callable[..., Ingester],
) -> None:
    rate, duration = 300, 20
    with FaultProxy(influxd.host, influxd.port) as proxy:
        ing = make_ingester(
            mqtt_url=mosquitto.url,
            influx_url=f"http://{proxy.url_netloc}",
            database=database,
            prefix=topic_prefix,
        )
        streams = device_streams(DEVICES)
        with subscribed_ledger(mosquitto, topic_prefix, ing, influxd, database) as (pub, rss):
            proxy.delay(SLOW_RESPONSE_S, "downstream")
            pub.run_in_background(streams, rate, duration)
            pub.join(duration * 3)
            pub.wait_all_acked(30)
            # Still slow while it drains: the backlog must clear through the slow link.
            settle_s = settle(pub, influxd, database, timeout=150)
    rep = compare("InfluxDB slow (2 s per response)", influxd, database, pub)
    rep.figures = {
        "rate_per_s": rate,
        "duration_s": duration,
        "response_delay_s": SLOW_RESPONSE_S,
        "settle_s": round(settle_s, 1),
    }
    finish_report(rep, ing, rss)
    assert rep.missing == 0, "a slow InfluxDB must not lose acked uplinks"
    assert rep.forged == 0
    assert rep.corrupted == 0
