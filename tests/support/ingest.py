"""Helpers for ingest tests: the ingester as a real subprocess, a plain paho publisher, uplinks."""

from __future__ import annotations

import json
import os
import signal
import struct
import subprocess
import sys
import time
import urllib.request
import uuid
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, Literal, Protocol, TypeVar

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion

from influx.writer import BACKOFF_CAP
from telemetry.servers import Influxd, free_port
from tests.support.influx import select

T = TypeVar("T")
# How long a test waits for storing to resume after InfluxDB is back: longer than any pause
# between two replay attempts, so that a test never gives up while the ingester sleeps.
RECOVERY = 2 * BACKOFF_CAP
TELEMETRY = str(Path(sys.executable).with_name("telemetry"))


def wait_for(
    probe: Callable[[], T | Literal[False] | None], timeout: float = 30.0, what: str = "condition"
) -> T:
    """Poll `probe` until it returns something truthy; fail after `timeout` seconds."""
    deadline = time.monotonic() + timeout
    while True:
        value = probe()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}; last value {value!r}")
        time.sleep(0.05)


class Ingester:
    """`telemetry ingest` in a subprocess with settings from the environment."""

    def __init__(
        self,
        workdir: Path,
        *,
        mqtt_url: str,
        influx_url: str,
        database: str,
        prefix: str,
        client_id: str | None = None,
        metrics: bool = False,
        **env: object,
    ) -> None:
        self.workdir = workdir
        workdir.mkdir(parents=True, exist_ok=True)
        self.metrics_port = free_port() if metrics else 0
        self.env = os.environ | {
            "TELEMETRY_MQTT_URL": mqtt_url,
            "TELEMETRY_INFLUX_URL": influx_url,
            "TELEMETRY_INFLUX_DATABASE": database,
            "TELEMETRY_MQTT_TOPIC_PREFIX": prefix,
            "TELEMETRY_MQTT_CLIENT_ID": client_id or f"ingest-{uuid.uuid4().hex[:8]}",
            "TELEMETRY_INGEST_SPOOL_DIR": str(workdir / "spool"),
            "TELEMETRY_INGEST_METRICS_PORT": str(self.metrics_port),
            "TELEMETRY_INGEST_FLUSH_INTERVAL": "0.1",
            "TELEMETRY_INGEST_RATE_BURST": "1000",
        }
        self.env |= {f"TELEMETRY_{k.upper()}": str(v) for k, v in env.items()}
        self.log_path = workdir / "ingest.log"
        self.proc: subprocess.Popen[bytes] | None = None
        self.starts = 0

    def start(self, connected: bool = True) -> None:
        """Start; by default wait until it is subscribed (its `starts`-th connection line)."""
        self.starts += 1
        with self.log_path.open("ab") as log:
            self.proc = subprocess.Popen(
                [TELEMETRY, "ingest"], env=self.env, stderr=log, stdout=log, cwd=self.workdir
            )
        if connected:
            wait_for(
                lambda: self.log().count("connected to MQTT") >= self.starts or self.exited(),
                what="ingest to subscribe",
            )
            assert not self.exited(), self.log()

    def exited(self) -> bool:
        return self.proc is not None and self.proc.poll() is not None

    def log(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    def stop(self, sig: int = signal.SIGTERM, timeout: float = 30.0) -> int:
        assert self.proc is not None
        if self.proc.poll() is None:
            self.proc.send_signal(sig)
        return self.proc.wait(timeout)

    def kill(self) -> None:
        self.stop(signal.SIGKILL)


class StartIngester(Protocol):
    """The `start_ingester` fixture: an ingester started with these settings, subscribed."""

    def __call__(
        self, *, mqtt_url: str, influx_url: str, database: str, prefix: str, **settings: object
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
    """One unlabelled sample from the ingester's `/metrics`; NaN while it is not exported."""
    with urllib.request.urlopen(f"http://127.0.0.1:{ing.metrics_port}/metrics", timeout=5) as r:
        for line in r.read().decode().splitlines():
            if line.startswith(name + " "):
                return float(line.split()[1])
    return float("nan")


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
