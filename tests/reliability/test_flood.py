"""One device flooding at 1,000 uplinks/s amid normal traffic: its excess is rate limited."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from telemetry.servers import Influxd, Mosquitto
from tests.reliability.conftest import (
    PROBE_DEVICE,
    Ingester,
    ingest_metrics,
    probe_stored,
    settle,
)
from tests.support.ledger import (
    DeviceStream,
    LedgerPublisher,
    RssSampler,
    compare,
    device_ids,
    influx_query,
    wait_for,
)

BURST = 60  # TELEMETRY_INGEST_RATE_BURST for this scenario
PER_S = 5  # sustained uplinks/s per device (TELEMETRY_INGEST_RATE_PER_HOUR = 18000)
FLOOD_DEVICE = "F100D"
FLOOD_COUNT = f'SELECT count("seq") FROM "uplink" WHERE "device" = \'{FLOOD_DEVICE}\''  # noqa: S608
FLOOD_ROWS = f'SELECT "seq" FROM "uplink" WHERE "device" = \'{FLOOD_DEVICE}\''  # noqa: S608


@pytest.mark.integration
@pytest.mark.slow
@pytest.mark.timeout(300)
def test_flooding_device_is_rate_limited_and_others_lose_nothing(
    mosquitto: Mosquitto,
    influxd: Influxd,
    database: str,
    topic_prefix: str,
    make_ingester: Callable[..., Ingester],
) -> None:
    normal_rate, flood_rate, duration = 100, 1000, 15  # 100 devices at 1/s, one at 1,000/s
    ing = make_ingester(
        mqtt_url=mosquitto.url,
        influx_url=influxd.url,
        database=database,
        prefix=topic_prefix,
        ingest_rate_burst=str(BURST),
        ingest_rate_per_hour=str(PER_S * 3600),
    )
    streams = [DeviceStream(d) for d in device_ids(100)]
    with (
        LedgerPublisher(mosquitto.host, mosquitto.port, topic_prefix) as pub,
        LedgerPublisher(mosquitto.host, mosquitto.port, topic_prefix) as flood,
        RssSampler(ing.pid) as rss,
    ):
        probe_stored(pub, influxd, database, 30, DeviceStream(PROBE_DEVICE))
        pub.run_in_background(streams, normal_rate, duration)
        flood.run([DeviceStream(FLOOD_DEVICE)], flood_rate, duration)
        pub.join(duration * 3)
        pub.wait_all_acked(30)
        flood.wait_all_acked(30)
        settle_s = settle(pub, influxd, database, timeout=120)
        # The flood's fate: every acked flood uplink either stored or kept as rate_limited.
        flood_acked = len(flood.acked)

        def flood_accounted() -> int:
            rows = influx_query(influxd, database, FLOOD_COUNT)
            stored = int(rows[0]["count"]) if rows else 0
            rows = influx_query(
                influxd,
                database,
                'SELECT count("topic") FROM "rejected" WHERE "reason" = \'rate_limited\'',
            )
            return stored + (int(rows[0]["count"]) if rows else 0)

        settle_flood = 0.0
        try:
            settle_flood = wait_for(lambda: flood_accounted() >= flood_acked, 120, "flood kept")
        except TimeoutError:
            settle_flood = -1
    rep = compare("one device flooding at 1,000/s", influxd, database, pub)
    flood_stored = len(influx_query(influxd, database, FLOOD_ROWS))
    rate_limited = rep.rejected.get("rate_limited", 0)
    rep.figures = {
        "normal_rate_per_s": normal_rate,
        "flood_rate_per_s": flood_rate,
        "duration_s": duration,
        "flood_acked": flood_acked,
        "flood_stored": flood_stored,
        "flood_rate_limited": rate_limited,
        "settle_s": round(settle_s, 1),
        "flood_settle_s": round(settle_flood, 1),
    }
    rep.rss_kb_first, rep.rss_kb_peak, rep.rss_kb_last = (
        rss.samples[0],
        max(rss.samples),
        rss.samples[-1],
    )
    rep.metrics = ingest_metrics(ing)
    rep.print()
    assert rep.missing == 0, "the other devices must lose nothing"
    assert rep.forged == 0
    assert rep.corrupted == 0
    assert rep.rejected.keys() <= {"rate_limited"}, "only the flood may be rejected"
    # The limiter admits at most the burst plus the sustained rate over the flood's life
    # (the flood lasts `duration`; the slack covers a slow drain of the broker's queue).
    assert flood_stored <= BURST + PER_S * (duration + settle_s + 30)
    assert flood_stored + rate_limited >= flood_acked, "a flood uplink vanished unaccounted"
    assert rate_limited >= flood_acked - BURST - PER_S * (duration + settle_s + 30)
