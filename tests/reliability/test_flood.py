"""One device flooding at 1,000 uplinks/s amid normal traffic: its excess is rate limited."""

from __future__ import annotations

import time
from collections.abc import Callable

import pytest

from telemetry.servers import Influxd, Mosquitto
from tests.reliability.conftest import finish_report, settle, subscribed_ledger
from tests.support.ingest import Ingester
from tests.support.ledger import (
    DeviceStream,
    LedgerPublisher,
    compare,
    device_streams,
    influx_query,
    rejected_by_reason,
)
from tests.support.poll import seconds_until

BURST = 60  # TELEMETRY_INGEST_RATE_BURST for this scenario
PER_S = 5  # sustained uplinks/s per device (TELEMETRY_INGEST_RATE_PER_HOUR = 18000)
FLOOD_DEVICE = "F100D"
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
    streams = device_streams(100)
    # The limiter runs on the uplinks' own clock: the flood is stamped with the wall clock, so
    # about 1,000 uplinks share each second, as a network would stamp a jammed device.
    flooder = DeviceStream(FLOOD_DEVICE, wall_clock=True)
    with (
        subscribed_ledger(mosquitto, topic_prefix, ing, influxd, database) as (pub, rss),
        LedgerPublisher(mosquitto.host, mosquitto.port, topic_prefix) as flood,
    ):
        pub.run_in_background(streams, normal_rate, duration)
        t_first = int(time.time())
        flood.run([flooder], flood_rate, duration)
        span = int(time.time()) - t_first + 1  # seconds of uplink clock the flood covered
        pub.join(duration * 3)
        pub.wait_all_acked(30)
        flood.wait_all_acked(30)
        settle_s = settle(pub, influxd, database, timeout=120)
        flood_acked = flood.acked_total
        # At most the burst plus the sustained rate over the flood's span may pass.
        allowed_max = BURST + PER_S * span

        def limited() -> int:
            return rejected_by_reason(influxd, database).get("rate_limited", 0)

        try:
            flood_settle = seconds_until(
                lambda: limited() >= flood_acked - allowed_max, 120, "flood rejects kept"
            )
        except TimeoutError:
            flood_settle = -1.0
    rep = compare("one device flooding at 1,000/s", influxd, database, pub)
    flood_rows = len(influx_query(influxd, database, FLOOD_ROWS))
    rate_limited = rep.rejected.get("rate_limited", 0)
    rep.figures = {
        "normal_rate_per_s": normal_rate,
        "flood_rate_per_s": flood_rate,
        "duration_s": duration,
        "flood_acked": flood_acked,
        "flood_span_s": span,
        "flood_allowed_max": allowed_max,
        "flood_rate_limited": rate_limited,
        "flood_rows_stored": flood_rows,
        "settle_s": round(settle_s, 1),
        "flood_settle_s": round(flood_settle, 1),
    }
    finish_report(rep, ing, rss)
    assert rep.missing == 0, "the other devices must lose nothing"
    assert rep.forged == 0
    assert rep.corrupted == 0
    assert rep.rejected.keys() <= {"rate_limited"}, "only the flood may be rejected"
    assert rate_limited >= flood_acked - allowed_max, "the flood's excess was not rate limited"
    assert rate_limited <= flood_acked
    # Points are keyed by (device, second): what passed is at most one row per second.
    assert 1 <= flood_rows <= span
