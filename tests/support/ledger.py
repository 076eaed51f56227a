"""A ledger of acknowledged uplinks and an oracle that compares it with what InfluxDB holds.

The publisher is plain paho (not project code) at QoS 1 on its own network thread; an uplink
enters the ledger only when the broker's PUBACK for it arrived (`on_publish`). Every uplink is
generated with a known device, sequence number, time and payload, so the oracle can say, per
(device, time): stored, missing (loss), or stored without ever being published (a forgery), and
whether a missing one is visible as a sequence gap (an honest loss) or silent.
Every scenario ends in numbers: a `Report`, printed by the test.
"""

from __future__ import annotations

import collections
import contextlib
import dataclasses
import itertools
import json
import struct
import threading
import time
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion
from prometheus_client.parser import text_string_to_metric_families

from telemetry.servers import Influxd
from tests.support.influx import result_rows
from tests.support.poll import wait_for

SEQ_MODULO = 4096  # Sigfox 12-bit counters, restated here apart from the project's code
# Uplinks are stamped in the past (one second apart per device) so the time key is unique per
# uplink and never trips the future-time check; two days back stays inside any retention.
TIME_BASE_OFFSET = 2 * 86400


@dataclass(frozen=True)
class SentUplink:
    """One generated uplink: everything the oracle needs to recognise it in storage."""

    device: str
    device_type: str
    seq: int
    time: int
    data: str  # lower-case hex

    @property
    def key(self) -> tuple[str, int]:
        return (self.device, self.time)

    def topic(self, prefix: str) -> str:
        return f"{prefix}/{self.device_type}/{self.device}"

    def body(self, **override: object) -> bytes:
        doc: dict[str, object] = {
            "device": self.device,
            "time": self.time,
            "seqNumber": self.seq,
            "data": self.data,
            "station": "0A1B",
            "rssi": -120.0 + (self.seq % 40),
            "snr": 10.0,
        }
        return json.dumps(doc | override).encode()


def weather_payload(seq: int) -> str:
    """A valid `weather_station` payload, varied by seq: >hHHHB, all values in range."""
    temperature = 1800 + seq % 700  # 18.00..24.99 °C
    humidity = 300 + seq % 400  # 30.0..69.9 %RH
    co2 = 400 + seq % 1500  # ppm
    pressure = 9800 + seq % 400  # 980.0..1019.9 hPa
    battery = 100 - seq % 100
    return struct.pack(">hHHHB", temperature, humidity, co2, pressure, battery).hex()


class DeviceStream:
    """A device's uplinks in order: seq +1 (wrapping), time +1 s from a base in the past."""

    def __init__(
        self,
        device: str,
        device_type: str = "weather_station",
        start_seq: int = 0,
        *,
        wall_clock: bool = False,
    ) -> None:
        self.device = device.upper()
        self.device_type = device_type
        self.seq = start_seq % SEQ_MODULO
        self.time = int(time.time()) - TIME_BASE_OFFSET
        # A misbehaving device stamped by the network on arrival: many uplinks per second.
        self.wall_clock = wall_clock

    def next(self) -> SentUplink:
        t = int(time.time()) if self.wall_clock else self.time
        up = SentUplink(self.device, self.device_type, self.seq, t, weather_payload(self.seq))
        self.seq = (self.seq + 1) % SEQ_MODULO
        self.time += 1
        return up


def device_ids(count: int, first: int = 0x100000) -> list[str]:
    return [f"{first + i:X}" for i in range(count)]


def device_streams(count: int) -> list[DeviceStream]:
    """One stream per ledger device (`device_ids(count)`): the normal load of a scenario."""
    return [DeviceStream(d) for d in device_ids(count)]


class LedgerPublisher:
    """Publishes paced uplinks at QoS 1 and keeps those the broker acknowledged."""

    def __init__(
        self,
        host: str,
        port: int,
        prefix: str,
        *,
        client_id: str = "",
        username: str | None = None,
        password: str | None = None,
    ) -> None:
        self.prefix = prefix
        self._client = mqtt.Client(
            CallbackAPIVersion.VERSION2,
            client_id=client_id,
            protocol=mqtt.MQTTv311,
            clean_session=True,
        )
        if username is not None:
            self._client.username_pw_set(username, password)
        # Keep publishing while the broker is away: paho queues and resends QoS 1 on reconnect.
        self._client.max_queued_messages_set(0)
        self._client.max_inflight_messages_set(1000)
        self._client.reconnect_delay_set(1, 1)  # whole seconds in paho's signature
        self._client.on_publish = self._on_publish
        self._client.on_connect = self._on_connect
        self._client.on_disconnect = self._on_disconnect
        self._lock = threading.Lock()
        self._pending: dict[int, SentUplink] = {}
        self._acked_mids: collections.deque[int] = collections.deque()
        self.published: dict[tuple[str, int], SentUplink] = {}
        self._acked: dict[tuple[str, int], SentUplink] = {}
        self.acked_total = 0
        self.connects = 0
        self.disconnects = 0
        self._host, self._port = host, port
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    # --- paho callbacks (network thread) ---

    def _on_publish(self, _c: object, _u: object, mid: int, _rc: object, _p: object) -> None:
        # paho calls this holding its own message lock: taking ours here could deadlock with a
        # publish() in progress, so only record the mid (deque appends are thread-safe).
        self._acked_mids.append(mid)

    def _on_connect(self, *_args: object) -> None:
        self.connects += 1

    def _on_disconnect(self, *_args: object) -> None:
        self.disconnects += 1

    # --- test thread ---

    def connect(self, timeout: float = 10.0) -> LedgerPublisher:
        self._client.connect_async(self._host, self._port, keepalive=30)
        self._client.loop_start()
        wait_for(self._client.is_connected, timeout, "publisher connected")
        return self

    def _drain(self) -> None:
        """Move PUBACKed uplinks into the ledger; called with `_lock` held."""
        while self._acked_mids:
            up = self._pending.pop(self._acked_mids.popleft(), None)
            if up is not None:
                self._acked[up.key] = up
                self.acked_total += 1  # counts uplinks sharing a (device, time) key too

    def acked_keys(self) -> set[tuple[str, int]]:
        """A copy of the ledger's keys now, safe while the publisher thread goes on."""
        with self._lock:
            self._drain()
            return set(self._acked)

    @property
    def acked(self) -> dict[tuple[str, int], SentUplink]:
        """The uplinks whose PUBACK arrived: the ledger."""
        with self._lock:
            self._drain()
            return self._acked

    def publish(self, up: SentUplink, **override: object) -> None:
        # The mid is recorded before any drain can look at it: a PUBACK that comes back before
        # publish() returns waits in the deque. paho hands out mids in sequence (wrapping at
        # 65535) and we never have more than 1000 in flight, so a mid is not reused meanwhile.
        with self._lock:
            info = self._client.publish(up.topic(self.prefix), up.body(**override), qos=1)
            self._pending[info.mid] = up
            self.published[up.key] = up
            self._drain()

    def publish_raw(self, topic: str, body: bytes) -> None:
        """Outside the ledger: for bodies the test expects to be rejected."""
        self._client.publish(topic, body, qos=1)

    def run(self, streams: list[DeviceStream], rate: float, duration: float) -> int:
        """Publish `rate` uplinks/s round-robin over `streams` for `duration` s (blocking)."""
        t0 = time.monotonic()
        count = int(rate * duration)
        for i in range(count):
            if self._stop.is_set():
                return i
            due = t0 + i / rate
            if (wait := due - time.monotonic()) > 0:
                time.sleep(wait)  # pacing the load generator, not waiting for a result
            self.publish(streams[i % len(streams)].next())
        return count

    def run_in_background(self, streams: list[DeviceStream], rate: float, duration: float) -> None:
        self._thread = threading.Thread(
            target=self.run, args=(streams, rate, duration), daemon=True
        )
        self._thread.start()

    def join(self, timeout: float | None = None) -> None:
        if self._thread is not None:
            self._thread.join(timeout)

    @property
    def unacked(self) -> int:
        with self._lock:
            self._drain()
            return len(self._pending)

    def wait_all_acked(self, timeout: float) -> bool:
        """True when every published uplink got its PUBACK within `timeout`."""
        try:
            wait_for(lambda: not self.unacked, timeout, "all PUBACKs")
        except TimeoutError:
            return False
        return True

    def close(self) -> None:
        self._stop.set()
        self.join(5)
        self._client.disconnect()
        self._client.loop_stop()

    def __enter__(self) -> LedgerPublisher:
        return self.connect()

    def __exit__(self, *exc: object) -> None:
        self.close()


# --- oracle ---


def influx_query(server: Influxd, database: str, q: str) -> list[dict[str, Any]]:
    """Rows (tags merged in), times as epoch seconds; apart from the project's query code."""
    auth = server.admin if server.auth else None
    r = httpx.get(
        f"{server.url}/query",
        params={"q": q, "db": database, "epoch": "s"},
        auth=auth,
        timeout=60,
    )
    return result_rows(r, q)


def stored_uplinks(
    server: Influxd, database: str, devices: Iterable[str]
) -> dict[tuple[str, int], dict[str, Any]]:
    """The stored `uplink` rows of `devices`, by the ledger's key (device, time)."""
    ours = set(devices)
    rows = influx_query(server, database, 'SELECT "seq", "data" FROM "uplink" GROUP BY "device"')
    return {(str(r["device"]), int(r["time"])): r for r in rows if str(r["device"]) in ours}


def stored_count(server: Influxd, database: str) -> int:
    rows = influx_query(server, database, 'SELECT count("seq") FROM "uplink"')
    return int(rows[0]["count"]) if rows else 0


def rejected_by_reason(server: Influxd, database: str) -> dict[str, int]:
    rows = influx_query(server, database, 'SELECT count("topic") FROM "rejected" GROUP BY "reason"')
    return {str(r["reason"]): int(r["count"]) for r in rows}


def scrape_metrics(port: int, host: str = "127.0.0.1", timeout: float = 5.0) -> dict[str, float]:
    """Prometheus text as {'name{label="v",...}': value}."""
    r = httpx.get(f"http://{host}:{port}/metrics", timeout=timeout)
    r.raise_for_status()
    out: dict[str, float] = {}
    for family in text_string_to_metric_families(r.text):
        for s in family.samples:
            labels = ",".join(f'{k}="{v}"' for k, v in sorted(s.labels.items()))
            out[f"{s.name}{{{labels}}}" if labels else s.name] = float(s.value)
    return out


def metric_sum(metrics: dict[str, float], name: str, **labels: str) -> float:
    """Sum of a metric's samples whose labels include `labels`."""
    total = 0.0
    for key, value in metrics.items():
        base, _, rest = key.partition("{")
        if base != name:
            continue
        if all(f'{k}="{v}"' in rest for k, v in labels.items()):
            total += value
    return total


def rss_kb(pid: int) -> int:
    """Resident set size from /proc/<pid>/status (VmRSS, kB)."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    return 0


class RssSampler:
    """Samples a process's RSS every `every` s on a thread: first, peak, last."""

    def __init__(self, pid: int, every: float = 0.5) -> None:
        self.pid = pid
        self.every = every
        self.samples: list[int] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while not self._stop.is_set():
            with contextlib.suppress(OSError, ValueError):
                self.samples.append(rss_kb(self.pid))
            self._stop.wait(self.every)

    def __enter__(self) -> RssSampler:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(5)


@dataclass
class Report:
    """The figures a scenario ends with."""

    scenario: str
    published: int = 0
    acked: int = 0
    stored: int = 0  # acked uplinks found in `uplink` with their seq and data
    missing: int = 0  # acked, not stored: loss
    missing_as_gaps: int = 0  # of those, visible as a sequence gap between stored uplinks
    silent_loss: int = 0  # missing and invisible: the number that must be 0
    unacked_stored: int = 0  # published without a PUBACK seen, yet stored (harmless)
    forged: int = 0  # stored under our devices but never published
    corrupted: int = 0  # stored with another seq or payload than published
    rejected: dict[str, int] = field(default_factory=dict)
    rss_kb_first: int = 0
    rss_kb_peak: int = 0
    rss_kb_last: int = 0
    figures: dict[str, float | int | str] = field(default_factory=dict)
    metrics: dict[str, float] = field(default_factory=dict)

    def print(self) -> None:
        d = dataclasses.asdict(self)
        metrics = d.pop("metrics")
        print(f"\n=== {self.scenario} ===")
        for k, v in d.items():
            if (k != "scenario" and v not in ({}, 0)) or k in ("missing", "silent_loss"):
                print(f"  {k}: {v}")
        for k, v in sorted(metrics.items()):
            print(f"  metric {k} = {v:g}")


def compare(
    scenario: str,
    server: Influxd,
    database: str,
    ledger: LedgerPublisher,
    devices: Iterable[str] | None = None,
) -> Report:
    """Ledger against storage, per (device, time), with the sequence-gap analysis."""
    published, acked = ledger.published, ledger.acked
    ours = {d.upper() for d in devices} if devices is not None else {k[0] for k in published}
    stored = stored_uplinks(server, database, ours)
    rep = Report(scenario, published=len(published), acked=len(acked))
    for key, row in stored.items():
        up = published.get(key)
        if up is None:
            rep.forged += 1
            continue
        if int(row["seq"]) != up.seq or str(row["data"]) != up.data:
            rep.corrupted += 1
        if key in acked:
            rep.stored += 1
        else:
            rep.unacked_stored += 1
    missing = [up for key, up in acked.items() if key not in stored]
    rep.missing = len(missing)
    # A missing uplink is an honest loss when a later uplink of its device is stored: the API
    # then sees the gap in `seq` (times are 1 s apart and seq +1, so time order is seq order).
    last_stored: dict[str, int] = {}
    for dev, t in stored:
        last_stored[dev] = max(t, last_stored.get(dev, t))
    rep.missing_as_gaps = sum(1 for up in missing if up.time < last_stored.get(up.device, -1))
    rep.silent_loss = rep.missing - rep.missing_as_gaps
    rep.rejected = rejected_by_reason(server, database)
    return rep


def seq_gap_loss(seqs_in_time_order: list[int]) -> int:
    """Uplinks missing between consecutive seqs, wrap-aware; an independent restatement."""
    lost = 0
    for prev, cur in itertools.pairwise(seqs_in_time_order):
        step = (cur - prev) % SEQ_MODULO
        if 0 < step <= SEQ_MODULO // 2:
            lost += step - 1
    return lost
