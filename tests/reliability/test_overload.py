"""10x the normal load with InfluxDB slowed: memory flat and capped, backlog in the broker.

The brief asks for a few minutes; CI runs this on a 2-core box with the whole suite under
~8 minutes, so the overload lasts 45 s (scaled down) and the backlog then drains at full speed.
The full-length soak: `OVERLOAD_SECONDS=300 .venv/bin/pytest -s tests/reliability/test_overload.py`.
"""

from __future__ import annotations

import os
from collections.abc import Callable

import pytest

from telemetry.servers import Influxd, Mosquitto
from tests.reliability.conftest import finish_report, settle, subscribed_ledger
from tests.support.faultproxy import FaultProxy
from tests.support.ingest import Ingester
from tests.support.ledger import compare, device_streams

NORMAL_RATE = 100  # uplinks/s: the normal load of these scenarios' scale
OVERLOAD = 10  # the brief's factor
# s, scaled down from "a few minutes" to fit CI; OVERLOAD_SECONDS sets the full length
DURATION = int(os.environ.get("OVERLOAD_SECONDS", "45"))
INFLUX_DELAY = 3.0  # s per response: with 5,000-point batches ingest then stores less than arrives
RSS_CAP_KB = 200 * 1024  # the ingester's resident memory must stay under this
RSS_GROWTH_KB = 48 * 1024  # "flat": late-load RSS within this of early-load RSS


@pytest.mark.integration
@pytest.mark.slow
@pytest.mark.timeout(DURATION + 360)
def test_tenfold_load_with_slow_influx_keeps_memory_flat(
    mosquitto: Mosquitto,
    influxd: Influxd,
    database: str,
    topic_prefix: str,
    make_ingester: Callable[..., Ingester],
) -> None:
    rate = NORMAL_RATE * OVERLOAD
    with FaultProxy(influxd.host, influxd.port) as proxy:
        ing = make_ingester(
            mqtt_url=mosquitto.url,
            influx_url=f"http://{proxy.url_netloc}",
            database=database,
            prefix=topic_prefix,
        )
        streams = device_streams(500)
        with subscribed_ledger(mosquitto, topic_prefix, ing, influxd, database) as (pub, rss):
            proxy.delay(INFLUX_DELAY, "downstream")
            published = pub.run(streams, rate, DURATION)
            pub.wait_all_acked(60)
            at_end = ing.metrics()
            load_samples = list(rss.samples)
            backlog = len(pub.acked) - int(at_end.get("telemetry_ingest_received_total", 0))
            proxy.heal()
            settle_s = settle(pub, influxd, database, timeout=180)
    rep = compare(f"10x load, InfluxDB slowed ({DURATION} s)", influxd, database, pub)
    third = max(1, len(load_samples) // 3)
    early, late = max(load_samples[:third]), max(load_samples[-third:])
    rep.figures = {
        "rate_per_s": rate,
        "duration_s": DURATION,
        "published": published,
        "influx_delay_s": INFLUX_DELAY,
        "backlog_in_broker_at_end_of_load": backlog,
        "rss_kb_early_load_peak": early,
        "rss_kb_late_load_peak": late,
        "drain_s": round(settle_s, 1),
    }
    finish_report(rep, ing, rss)
    assert rep.missing == 0, "overload must not lose acked uplinks"
    assert rep.forged == 0
    assert rep.corrupted == 0
    assert rep.rss_kb_peak < RSS_CAP_KB, "ingester memory over its cap"
    assert late - early < RSS_GROWTH_KB, "ingester memory grew with the backlog"
    assert backlog > 0, "the backlog must wait in the broker, not inside the ingester"
