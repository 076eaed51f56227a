"""Fixtures for fault scenarios: `telemetry ingest` as a real subprocess, configured by env."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx
import pytest

from influx.writer import BACKOFF_CAP
from telemetry.servers import Influxd, Mosquitto, free_port
from tests.support.ledger import (
    DeviceStream,
    LedgerPublisher,
    Report,
    RssSampler,
    influx_query,
    scrape_metrics,
    stored_uplinks,
    wait_for,
)

TELEMETRY = Path(sys.executable).parent / "telemetry"
# Scenarios that are not about rate limiting send many uplinks per device; a huge bucket keeps
# the limiter out of their way (the flood scenario sets its own).
NO_RATE_LIMIT = {"TELEMETRY_INGEST_RATE_BURST": "1000000000"}


class Ingester:
    """`telemetry ingest` in its own process, started in a scratch folder (no stray `.env`)."""

    def __init__(self, workdir: Path, env: dict[str, str]) -> None:
        self.workdir = workdir
        self.env = env
        self.metrics_port = int(env["TELEMETRY_INGEST_METRICS_PORT"])
        self.log_path = workdir / "ingest.log"
        self.proc: subprocess.Popen[bytes] | None = None
        self.starts = 0

    @property
    def pid(self) -> int:
        assert self.proc is not None
        return self.proc.pid

    def start(self) -> Ingester:
        self.workdir.mkdir(parents=True, exist_ok=True)
        with self.log_path.open("ab") as log:
            self.proc = subprocess.Popen(
                [str(TELEMETRY), "ingest"],
                cwd=self.workdir,
                env=self.env,
                stdout=log,
                stderr=subprocess.STDOUT,
            )
        self.starts += 1
        wait_for(self._metrics_up, 30, "ingest metrics endpoint")
        return self

    def _metrics_up(self) -> bool:
        assert self.proc is not None
        if self.proc.poll() is not None:
            raise AssertionError(f"ingest exited with {self.proc.returncode}:\n{self.log_tail()}")
        try:
            scrape_metrics(self.metrics_port, timeout=0.5)
        except httpx.HTTPError:
            return False
        return True

    def metrics(self) -> dict[str, float]:
        return scrape_metrics(self.metrics_port)

    def stop(self, sig: int = signal.SIGTERM, timeout: float = 60) -> tuple[int | None, float]:
        """Signal and wait; returns (exit code, seconds it took). SIGKILL past `timeout`."""
        if self.proc is None or self.proc.poll() is not None:
            return (self.proc.returncode if self.proc else None), 0.0
        t0 = time.monotonic()
        self.proc.send_signal(sig)
        try:
            code: int | None = self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(10)
            code = None
        return code, time.monotonic() - t0

    def log_text(self) -> str:
        try:
            return self.log_path.read_text(errors="replace")
        except OSError:
            return ""

    def connections(self) -> int:
        """MQTT (re)connections so far, from the ingester's own log line."""
        return self.log_text().count("connected to MQTT")

    def disconnections(self) -> int:
        return self.log_text().count("MQTT connection lost")

    def log_tail(self, lines: int = 40) -> str:
        return "\n".join(self.log_text().splitlines()[-lines:])


def ingest_env(
    *, mqtt_url: str, influx_url: str, database: str, prefix: str, spool: Path, **extra: str
) -> dict[str, str]:
    """The environment of a `telemetry ingest` process: ours only, nothing inherited."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("TELEMETRY_")}
    env |= NO_RATE_LIMIT | {
        "TELEMETRY_MQTT_URL": mqtt_url,
        "TELEMETRY_MQTT_TOPIC_PREFIX": prefix,
        "TELEMETRY_MQTT_CLIENT_ID": f"ingest-{uuid.uuid4().hex[:8]}",
        "TELEMETRY_INFLUX_URL": influx_url,
        "TELEMETRY_INFLUX_DATABASE": database,
        "TELEMETRY_INGEST_METRICS_PORT": str(free_port()),
        "TELEMETRY_INGEST_SPOOL_DIR": str(spool),
        "TELEMETRY_LOG_LEVEL": "INFO",
    }
    return env | {f"TELEMETRY_{k.upper()}": v for k, v in extra.items()}


@pytest.fixture
def make_ingester(tmp_path: Path) -> Iterator[Callable[..., Ingester]]:
    """`make_ingester(mqtt_url=..., influx=..., database=..., prefix=..., **env)`, stopped after."""
    started: list[Ingester] = []

    def make(
        *, mqtt_url: str, influx_url: str, database: str, prefix: str, **extra: str
    ) -> Ingester:
        env = ingest_env(
            mqtt_url=mqtt_url,
            influx_url=influx_url,
            database=database,
            prefix=prefix,
            spool=tmp_path / f"spool{len(started)}",
            **extra,
        )
        ing = Ingester(tmp_path / f"ingest{len(started)}", env)
        started.append(ing)
        return ing.start()

    yield make
    for ing in started:
        ing.stop(signal.SIGKILL)


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
    t0 = time.monotonic()
    devices = {device for device, _ in keys}
    while True:
        stored = stored_uplinks(server, database, devices)
        if keys <= stored.keys():
            return time.monotonic() - t0
        if time.monotonic() - t0 > timeout:
            return float("inf")
        time.sleep(0.2)


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
