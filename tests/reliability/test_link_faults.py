"""The ingester-broker link stalled half-open for 30 s: detected by keepalive, zero loss."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator

import pytest

from telemetry.servers import Influxd, Mosquitto
from tests.reliability.conftest import (
    PROBE_DEVICE,
    finish_report,
    probe_stored,
    settle,
    subscribed_ledger,
)
from tests.support.faultproxy import FaultProxy
from tests.support.ingest import Ingester
from tests.support.ledger import DeviceStream, LedgerPublisher, compare, device_streams
from tests.support.poll import seconds_until, wait_for

KEEPALIVE = 5  # s, TELEMETRY_MQTT_KEEPALIVE: small so that detection fits in the test
STALL_S = 30  # the brief's half-open period


ProxiedLink = tuple[Mosquitto, FaultProxy, Ingester]


@pytest.fixture
def proxied_link(
    make_mosquitto: Callable[..., Mosquitto],
    influxd: Influxd,
    database: str,
    topic_prefix: str,
    make_ingester: Callable[..., Ingester],
) -> Iterator[ProxiedLink]:
    """A broker of the test's own, and an ingester that reaches it only through a fault proxy."""
    broker = make_mosquitto()
    with FaultProxy(broker.host, broker.port) as proxy:
        ing = make_ingester(
            mqtt_url=f"mqtt://{proxy.url_netloc}",
            influx_url=influxd.url,
            database=database,
            prefix=topic_prefix,
            mqtt_keepalive=str(KEEPALIVE),
        )
        yield broker, proxy, ing


@pytest.mark.integration
@pytest.mark.slow
@pytest.mark.timeout(300)
def test_half_open_link_detected_and_nothing_lost(
    proxied_link: ProxiedLink,
    influxd: Influxd,
    database: str,
    topic_prefix: str,
) -> None:
    rate, duration = 200, 45
    broker, proxy, ing = proxied_link
    streams = device_streams(100)
    # The publisher goes straight to the broker, not via the proxy.
    with subscribed_ledger(broker, topic_prefix, ing, influxd, database) as (pub, rss):
        pub.run_in_background(streams, rate, duration)
        wait_for(lambda: len(pub.acked) >= rate * 5, 30, "load underway")
        lost_before = ing.disconnections()
        proxy.stall()
        t0 = time.monotonic()
        try:
            # Poll up to the whole stall; the figure is compared with 1.5 x keepalive below.
            detected = seconds_until(
                lambda: ing.disconnections() > lost_before, STALL_S, "dead link detected"
            )
        except TimeoutError:
            detected = float("inf")
        if (left := STALL_S - (time.monotonic() - t0)) > 0:
            time.sleep(left)  # the fault's length is the scenario, not a wait for a result
        connections = ing.connections()
        proxy.heal()
        t_heal = time.monotonic()
        pub.join(duration * 2)
        pub.wait_all_acked(30)
        settle_s = settle(pub, influxd, database, timeout=120)
        reconnected = ing.connections() > connections
        back_after = time.monotonic() - t_heal
    rep = compare("ingester-broker link half-open 30 s", influxd, database, pub)
    rep.figures = {
        "rate_per_s": rate,
        "duration_s": duration,
        "keepalive_s": KEEPALIVE,
        "detected_after_s": round(detected, 1),
        "bound_s": 1.5 * KEEPALIVE,
        "reconnected_after_heal": str(reconnected),
        "heal_to_settled_s": round(back_after, 1),
        "settle_s": round(settle_s, 1),
        "proxy_connections": proxy.stats.accepted,
    }
    finish_report(rep, ing, rss)
    assert rep.missing == 0, "nothing may be lost once the link heals"
    assert rep.forged == 0
    assert rep.corrupted == 0
    assert reconnected, "the ingester must reconnect once the link heals"
    assert detected < STALL_S, "the dead link was never noticed during the stall"


@pytest.mark.integration
def test_dead_link_detected_within_one_and_a_half_keepalives(
    proxied_link: ProxiedLink,
    influxd: Influxd,
    database: str,
    topic_prefix: str,
) -> None:
    broker, proxy, ing = proxied_link
    # The main scenario's load keeps the link busy up to the stall, as in production: an
    # idle link (or a trickle) makes the time depend on where the last PINGREQ fell.
    with LedgerPublisher(broker.host, broker.port, topic_prefix) as pub:
        probe_stored(pub, influxd, database, 30, DeviceStream(PROBE_DEVICE))
        pub.run_in_background(device_streams(100), 200, 6 * KEEPALIVE)
        wait_for(lambda: len(pub.acked) >= 1000, 20, "load flowing")
        lost_before = ing.disconnections()
        proxy.stall()
        try:
            detected = seconds_until(
                lambda: ing.disconnections() > lost_before,
                4 * KEEPALIVE,
                "dead link detected",
            )
        finally:
            proxy.heal()
    print(f"\n  dead link detected after {detected:.1f} s (keepalive {KEEPALIVE} s)")
    print("  " + "\n  ".join(ing.log_tail(6).splitlines()))
    assert detected <= 1.5 * KEEPALIVE, f"dead link noticed after {detected:.1f} s"


def _acked_at_least(pub: LedgerPublisher, n: int) -> Callable[[], bool]:
    return lambda: len(pub.acked) >= n


@pytest.mark.integration
@pytest.mark.slow
@pytest.mark.timeout(300)
def test_repeated_resets_on_both_links_lose_nothing(
    make_mosquitto: Callable[..., Mosquitto],
    influxd: Influxd,
    database: str,
    topic_prefix: str,
    make_ingester: Callable[..., Ingester],
) -> None:
    """RSTs every few seconds on the broker link and on the InfluxDB link, mid-stream."""
    rate, duration, rounds = 200, 24, 4
    broker = make_mosquitto()
    with (
        FaultProxy(broker.host, broker.port) as mqtt_link,
        FaultProxy(influxd.host, influxd.port) as influx_link,
    ):
        ing = make_ingester(
            mqtt_url=f"mqtt://{mqtt_link.url_netloc}",
            influx_url=f"http://{influx_link.url_netloc}",
            database=database,
            prefix=topic_prefix,
            mqtt_keepalive=str(KEEPALIVE),
        )
        with subscribed_ledger(broker, topic_prefix, ing, influxd, database) as (pub, rss):
            pub.run_in_background(device_streams(100), rate, duration)
            resets = 0
            for i in range(rounds):
                target = rate * duration * (i + 1) // (rounds + 1)
                wait_for(_acked_at_least(pub, target), 60, "load underway")
                resets += mqtt_link.reset() + influx_link.reset()
            pub.join(duration * 3)
            pub.wait_all_acked(30)
            settle_s = settle(pub, influxd, database, timeout=120)
    rep = compare("RST on both links every ~5 s", influxd, database, pub)
    rep.figures = {
        "rate_per_s": rate,
        "duration_s": duration,
        "reset_rounds": rounds,
        "connections_reset": resets,
        "ingester_reconnections": ing.connections() - 1,
        "settle_s": round(settle_s, 1),
    }
    finish_report(rep, ing, rss)
    assert resets >= rounds, "the proxy reset nothing: the scenario did not happen"
    assert rep.missing == 0, "connection resets must not lose acked uplinks"
    assert rep.forged == 0
    assert rep.corrupted == 0
