"""Fixtures for fault scenarios: `telemetry ingest` as a real subprocess, configured by env."""

from __future__ import annotations

import functools
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager

import httpx
import pytest

from influx.writer import BACKOFF_CAP
from telemetry.servers import Influxd, Mosquitto
from tests.support.ingest import Ingester, StartIngester
from tests.support.ledger import (
    DeviceStream,
    LedgerPublisher,
    Report,
    RssSampler,
    influx_query,
    stored_uplinks,
)
from tests.support.poll import WaitTimeout, seconds_until, wait_for

# Scenarios that are not about rate limiting send many uplinks per device; a huge bucket keeps
# the limiter out of their way (the flood scenario sets its own). The product's own flush
# interval, not the integration tests' quick one: these scenarios measure the real batching.
FAULTS: dict[str, object] = {"ingest_rate_burst": 1_000_000_000, "log_level": "INFO"}


@pytest.fixture
def make_ingester(start_ingester: StartIngester) -> Callable[..., Ingester]:
    """`start_ingester` with the scenarios' settings, ready once its `/metrics` answers (the
    broker may be away or refuse it); `make_ingester(mqtt_url=..., influx_url=..., ...)`."""
    return functools.partial(start_ingester, ready="serving", defaults=FAULTS)


PROBE_DEVICE = "FFFFF0"


def probe_stored(
    pub: LedgerPublisher, server: Influxd, database: str, timeout: float, probe: DeviceStream
) -> float:
    """Publish probe uplinks until one is stored; seconds from the call to the stored probe.

    Used both to know that the ingester is subscribed (before the ledger starts) and to time
    a recovery. Probes are outside the ledger's devices, so they never count as forged.
    """
    t0 = time.monotonic()
    sent: list[int] = []

    def stored() -> bool:
        if not sent or time.monotonic() - t0 > len(sent) * 0.5:
            up = probe.next()
            pub.publish_raw(up.topic(pub.prefix), up.body())
            sent.append(up.time)
        q = f'SELECT "seq" FROM "uplink" WHERE "device" = \'{probe.device}\''  # noqa: S608
        rows = influx_query(server, database, q)
        return any(int(r["time"]) in sent for r in rows)

    wait_for(stored, timeout, "probe uplink stored", step=0.2)
    return time.monotonic() - t0


# Storage may pause for one write backoff (an InfluxDB answering with errors is retried that
# rarely), so a pause shorter than the longest backoff is not yet a loss. CI once gave up after
# 15 s quiet while the replayer slept a 30 s backoff: 1,028 of 9,000 stored.
SETTLE_QUIET = BACKOFF_CAP + 15


def stored_within(
    keys: set[tuple[str, int]], server: Influxd, database: str, timeout: float
) -> float:
    """Seconds until every ledger key in `keys` is stored, polled; `inf` past `timeout`.

    Never raises, so that the report still prints the figure the test then asserts on.
    """
    devices = {device for device, _ in keys}
    try:
        return seconds_until(
            lambda: keys <= stored_uplinks(server, database, devices).keys(),
            timeout,
            "every held uplink stored",
            step=0.2,
        )
    except WaitTimeout:
        return float("inf")


def count_ours(server: Influxd, database: str, device_regex: str = "^1") -> int:
    """Stored `uplink` rows of the ledger's devices (ids from `device_ids()` start with 1)."""
    q = f'SELECT count("seq") FROM "uplink" WHERE "device" =~ /{device_regex}/'  # noqa: S608
    rows = influx_query(server, database, q)
    return int(rows[0]["count"]) if rows else 0


def settle(
    pub: LedgerPublisher,
    server: Influxd,
    database: str,
    *,
    timeout: float = 90,
    quiet: float = SETTLE_QUIET,
    device_regex: str = "^1",
) -> float:
    """Wait until every acked uplink could be stored, or storage stops growing for `quiet` s.

    Never raises: the oracle's report, printed next, says what is missing. Returns the seconds.
    """
    t0 = last_change = time.monotonic()
    last = -1
    while time.monotonic() - t0 < timeout:
        n = count_ours(server, database, device_regex)
        if n >= len(pub.acked):
            break
        if n != last:
            last, last_change = n, time.monotonic()
        elif time.monotonic() - last_change > quiet:
            break
        time.sleep(0.5)
    return time.monotonic() - t0


def ingest_metrics(ing: Ingester) -> dict[str, float]:
    """The ingester's own counters and gauges, without histogram buckets and timestamps."""
    try:
        metrics = ing.metrics()
    except httpx.HTTPError:
        return {}
    return {
        k: v
        for k, v in metrics.items()
        if k.startswith("telemetry_ingest_")
        and "_bucket" not in k
        and "_created" not in k
        and (v != 0 or "{" not in k)
    }


@contextmanager
def subscribed_ledger(
    broker: Mosquitto, prefix: str, ing: Ingester, server: Influxd, database: str
) -> Iterator[tuple[LedgerPublisher, RssSampler]]:
    """A ledger publisher and the ingester's RSS sampler, opened once a probe uplink is stored.

    Every load scenario starts so: the ledger only counts from a subscribed ingester on.
    """
    with LedgerPublisher(broker.host, broker.port, prefix) as pub, RssSampler(ing.pid) as rss:
        probe_stored(pub, server, database, 30, DeviceStream(PROBE_DEVICE))
        yield pub, rss


def finish_report(rep: Report, ing: Ingester, rss: RssSampler | None = None) -> Report:
    """Add the ingester's memory (first, peak, last) and own metrics to the report, print it."""
    if rss is not None:
        rep.rss_kb_first, rep.rss_kb_peak, rep.rss_kb_last = (
            rss.samples[0],
            max(rss.samples),
            rss.samples[-1],
        )
    rep.metrics = ingest_metrics(ing)
    rep.print()
    return rep
