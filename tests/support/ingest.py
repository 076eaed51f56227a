"""Helpers for ingest tests: the ingester as a real subprocess, a plain paho publisher, uplinks."""

from __future__ import annotations

import json
import struct
import subprocess
import time
import uuid
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, Literal, Protocol

import httpx
import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion

from influx.writer import BACKOFF_CAP
from telemetry.servers import Influxd, free_port
from tests.support.cli import TelemetryProcess, telemetry_env
from tests.support.influx import select
from tests.support.ledger import scrape_metrics
from tests.support.poll import wait_for

# How long a test waits for storing to resume after InfluxDB is back: longer than any pause
# between two replay attempts, so that a test never gives up while the ingester sleeps.
RECOVERY = 2 * BACKOFF_CAP


# What an integration test wants by default: a stored point soon after it is published (a flush
# every 0.1 s), and a rate bucket that lets a test's burst of uplinks through.
# Status judged 1 s after subscribing, not 10: the tests' backlogs are small, their beacons fast.
QUICK: dict[str, object] = {
    "ingest_flush_interval": 0.1,
    "ingest_rate_burst": 1000,
    "status_settle_seconds": 1,
}
# Readiness `start` waits for: "subscribed" (its connection line logged, so a publish now is
# received) or "serving" (its `/metrics` answers: for scenarios whose broker may be away).
Ready = Literal["subscribed", "serving"]


class Ingester(TelemetryProcess):
    """`telemetry ingest` in a subprocess, in a folder of its own (no stray `.env`), configured
    only by the environment built here: `TELEMETRY_*` of the caller's shell are not inherited.

    `defaults` are settings under the test's own (`QUICK` unless the caller gives others).
    """

    def __init__(  # the settings every ingester needs, then its own
        self,
        workdir: Path,
        *,
        mqtt_url: str,
        influx_url: str,
        database: str,
        prefix: str,
        client_id: str | None = None,
        metrics: bool = False,
        ready: Ready = "subscribed",
        defaults: Mapping[str, object] = QUICK,
        **settings: object,
    ) -> None:
        self.metrics_port = free_port() if metrics or ready == "serving" else 0
        self.ready: Ready = ready
        own = {
            "mqtt_url": mqtt_url,
            "influx_url": influx_url,
            "influx_database": database,
            "mqtt_topic_prefix": prefix,
            "mqtt_client_id": client_id or f"ingest-{uuid.uuid4().hex[:8]}",
            "ingest_spool_dir": workdir / "spool",
            "ingest_metrics_port": self.metrics_port,
        }
        super().__init__("ingest", workdir, telemetry_env(**(own | dict(defaults) | settings)))

    @property
    def pid(self) -> int:
        assert self.proc is not None
        return self.proc.pid

    def start(self, connected: bool = True) -> Ingester:
        """Start; unless not `connected`, wait until this start (not an earlier) is `ready`."""
        self._spawn()
        if connected and self.ready == "subscribed":
            wait_for(
                lambda: self.connections() >= self.starts or self.exited(),
                what="ingest to subscribe",
            )
        elif connected:
            wait_for(lambda: self._serves() or self.exited(), what="ingest metrics endpoint")
        assert not (connected and self.exited()), f"ingest exited:\n{self.log_tail()}"
        return self

    def _serves(self) -> bool:
        try:
            scrape_metrics(self.metrics_port, timeout=0.5)
        except httpx.HTTPError:
            return False
        return True

    def connections(self) -> int:
        """MQTT (re)connections so far, from the ingester's own log line."""
        return self.log().count("connected to MQTT")

    def disconnections(self) -> int:
        return self.log().count("MQTT connection lost")

    def metrics(self) -> dict[str, float]:
        """Every sample of its `/metrics`, labelled ones included."""
        return scrape_metrics(self.metrics_port)

    def stop_timed(self, sig: int, timeout: float) -> tuple[int | None, float]:
        """Signal and wait; (exit code, seconds it took), the code None if killed past `timeout`."""
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


class StartIngester(Protocol):
    """The `start_ingester` fixture: an ingester started with these settings, ready on return."""

    def __call__(
        self, *, mqtt_url: str, influx_url: str, database: str, prefix: str, **settings: Any
    ) -> Ingester: ...


class Publisher:
    """A plain paho client publishing at QoS 1 and waiting for every PUBACK."""

    def __init__(self, host: str, port: int) -> None:
        self.client = mqtt.Client(
            CallbackAPIVersion.VERSION2, client_id=f"pub-{uuid.uuid4().hex[:8]}"
        )
        self.client.max_inflight_messages_set(1000)
        self.client.connect(host, port)
        self.client.loop_start()

    def publish(self, topic: str, body: bytes | str | dict[str, Any]) -> None:
        self.many([(topic, body)])

    def many(self, messages: Sequence[tuple[str, bytes | str | dict[str, Any]]]) -> None:
        infos = []
        for topic, body in messages:
            payload = json.dumps(body).encode() if isinstance(body, dict) else body
            infos.append(self.client.publish(topic, payload, qos=1))
        for info in infos:
            info.wait_for_publish(30)
            assert info.is_published()

    def close(self) -> None:
        self.client.loop_stop()
        self.client.disconnect()

    def __enter__(self) -> Publisher:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def ingest_metric(ing: Ingester, name: str) -> float:
    """One sample from the ingester's `/metrics` (a name, or a name with its labels as the
    exposition writes them); NaN while it is not exported."""
    return ing.metrics().get(name, float("nan"))


def count_points(
    influxd: Influxd, database: str, field: str = "seq", measurement: str = "uplink"
) -> int:
    """`count(field)` of a measurement; -1 while the server or the database is not there yet."""
    try:
        got = select(influxd, database, f"SELECT count({field}) FROM {measurement}")  # noqa: S608
    except Exception:  # the server may be down or restarting: not yet
        return -1
    return int(got[0]["count"]) if got else 0


def wristband_uplinks(
    prefix: str,
    n: int,
    device: str,
    t0: int | None = None,
    *,
    heart_rate: int = 70,
    heart_rate_step: int = 0,
    **extra: object,
) -> list[tuple[str, dict[str, Any]]]:
    """`n` wristband uplinks of one device, a second apart ending now (or from `t0`), seq 0.."""
    t0 = int(time.time()) - n if t0 is None else t0
    return [
        (
            f"{prefix}/wristband/{device}",
            {
                "device": device,
                "time": t0 + i,
                "seqNumber": i,
                "data": wristband_payload(heart_rate + heart_rate_step * i, i, i, 0, 50),
            }
            | extra,
        )
        for i in range(n)
    ]


def wristband_payload(hr: int, steps: int, kcal: int, sleep: int, battery: int) -> str:
    """Independent of the catalogue: `>B I H B B` as DESIGN section 2 lays the wristband out."""
    return struct.pack(">BIHBB", hr, steps, kcal, sleep, battery).hex()


def decode_wristband(data: str) -> dict[str, int]:
    hr, steps, kcal, sleep, battery = struct.unpack(">BIHBB", bytes.fromhex(data)[:9])
    return {
        "heart_rate": hr,
        "steps": steps,
        "calories": kcal,
        "sleep_phase": sleep,
        "battery": battery,
    }


def decode_weather(data: str) -> dict[str, float]:
    """`>h H H H B`, scales 0.01 °C, 0.1 %RH, 1 ppm, 0.1 hPa, 1 %."""
    t, h, co2, p, b = struct.unpack(">hHHHB", bytes.fromhex(data)[:9])
    return {
        "temperature": t / 100,
        "humidity": h / 10,
        "co2": co2,
        "pressure": p / 10,
        "battery": b,
    }
