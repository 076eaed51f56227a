"""`telemetry simulate` as a user runs it, against a real Mosquitto, checked by a plain subscriber.

Every message is checked against DESIGN sections 1 and 2 with a decoder written here (struct),
not the project's codec.
"""

from __future__ import annotations

import itertools
import json
import re
import signal
import struct
import subprocess
import threading
import time
from collections import defaultdict
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import paho.mqtt.client as mqtt
import pytest
from paho.mqtt.enums import CallbackAPIVersion

from telemetry.servers import Mosquitto, find_binary, free_port
from tests.support.cli import TELEMETRY, run_telemetry, telemetry_env

pytestmark = pytest.mark.integration

DAY = 86400

# DESIGN section 2: struct format, field names, scales, valid ranges after scaling.
TYPES: dict[str, tuple[str, list[tuple[str, float, float, float]]]] = {
    "wristband": (
        ">BIHBB",
        [
            ("heart_rate", 1, 25, 230),
            ("steps", 1, 0, 200000),
            ("calories", 1, 0, 20000),
            ("sleep_phase", 1, 0, 3),
            ("battery", 1, 0, 100),
        ],
    ),
    "scale": (
        ">HHHB",
        [
            ("weight", 0.01, 2, 300),
            ("body_fat", 0.1, 2, 75),
            ("bmi", 0.1, 8, 80),
            ("battery", 1, 0, 100),
        ],
    ),
    "weather_station": (
        ">hHHHB",
        [
            ("temperature", 0.01, -40, 85),
            ("humidity", 0.1, 0, 100),
            ("co2", 1, 250, 10000),
            ("pressure", 0.1, 800, 1100),
            ("battery", 1, 0, 100),
        ],
    ),
    "plant_sensor": (
        ">BHhB",
        [
            ("soil_moisture", 1, 0, 100),
            ("light", 1, 0, 65535),
            ("temperature", 0.01, -30, 60),
            ("battery", 1, 0, 100),
        ],
    ),
}
KEYS = {
    "device",
    "time",
    "seqNumber",
    "data",
    "station",
    "rssi",
    "snr",
    "duplicate",
    "deviceTypeId",
}

THERMOSTAT = """
name = "thermostat"
description = "A room thermostat, added as a file with no code"
layout = "setpoint::int:16 valve::uint:8 heating::bool:7 mode::char:2"

[fields.setpoint]
unit = "°C"
scale = 0.1
min = 5
max = 30
[fields.valve]
unit = "%"
min = 0
max = 100
[fields.heating]
unit = ""
[fields.mode]
unit = ""
"""


@dataclass
class Received:
    topic: str
    body: dict[str, Any]
    at: float  # wall clock when the subscriber got it


class Subscriber:
    """A plain paho client on `<prefix>/#`, independent of the project's code."""

    def __init__(self, broker: Mosquitto, prefix: str) -> None:
        self.messages: list[Received] = []
        self._subscribed = threading.Event()
        self.client = mqtt.Client(CallbackAPIVersion.VERSION2)
        self.client.on_message = self._on_message
        self.client.on_subscribe = lambda *args: self._subscribed.set()
        self.client.connect(broker.host, broker.port)
        self.client.subscribe(f"{prefix}/#", qos=1)
        self.client.loop_start()
        assert self._subscribed.wait(10)

    def _on_message(self, client: Any, userdata: Any, msg: mqtt.MQTTMessage) -> None:
        self.messages.append(Received(msg.topic, json.loads(msg.payload), time.time()))

    def wait_for(self, count: int, timeout: float = 20.0) -> list[Received]:
        deadline = time.monotonic() + timeout
        while len(self.messages) < count and time.monotonic() < deadline:
            time.sleep(0.05)
        return list(self.messages)

    def close(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()


@pytest.fixture
def subscriber(mosquitto: Mosquitto, topic_prefix: str) -> Iterator[Subscriber]:
    sub = Subscriber(mosquitto, topic_prefix)
    yield sub
    sub.close()


def _env(broker_url: str, prefix: str) -> dict[str, str]:
    """Our settings only: a TELEMETRY_* variable of the caller's shell must not leak in."""
    return telemetry_env(mqtt_url=broker_url, mqtt_topic_prefix=prefix)


def simulate(
    broker_url: str, prefix: str, tmp_path: Path, *args: str, catalogue_dir: Path | None = None
) -> tuple[subprocess.CompletedProcess[str], dict[str, Any]]:
    env = _env(broker_url, prefix)
    if catalogue_dir is not None:
        env["TELEMETRY_CATALOGUE_DIR"] = str(catalogue_dir)
    report = tmp_path / "report.json"
    proc = run_telemetry("simulate", *args, "--report-json", str(report), env=env, timeout=90)
    assert proc.returncode == 0, proc.stderr
    return proc, json.loads(report.read_text())


def decode(type_name: str, data: str) -> dict[str, float]:
    fmt, fields = TYPES[type_name]
    payload = bytes.fromhex(data)
    assert len(payload) == struct.calcsize(fmt), (type_name, data)
    raw = struct.unpack(fmt, payload)
    return {name: r * scale for (name, scale, _, _), r in zip(fields, raw, strict=True)}


def check_envelope(msg: Received, prefix: str) -> tuple[str, str]:
    """DESIGN section 1 for one message; returns (type, device)."""
    parts = msg.topic.split("/")
    assert parts[:-2] == prefix.split("/")
    type_name, device = parts[-2], parts[-1]
    body = msg.body
    assert set(body) == KEYS
    assert re.fullmatch(r"[0-9A-F]{1,8}", device)
    assert body["device"] == device
    assert type(body["time"]) is int
    assert body["time"] <= msg.at  # never stamped in the future
    assert type(body["seqNumber"]) is int
    assert 0 <= body["seqNumber"] < 4096
    assert re.fullmatch(r"([0-9a-f]{2}){0,12}", body["data"])
    assert re.fullmatch(r"[0-9A-F]{1,16}", body["station"])
    assert isinstance(body["rssi"], float)
    assert -200 <= body["rssi"] <= 50
    assert isinstance(body["snr"], float)
    assert -50 <= body["snr"] <= 100
    assert type(body["duplicate"]) is bool
    assert isinstance(body["deviceTypeId"], str)
    return type_name, device


def group_copies(messages: list[Received]) -> dict[tuple[str, int, int], list[Received]]:
    copies: dict[tuple[str, int, int], list[Received]] = defaultdict(list)
    for m in messages:
        copies[(m.body["device"], m.body["seqNumber"], m.body["time"])].append(m)
    return copies


def test_backfill_then_live_matches_the_contract(
    mosquitto: Mosquitto, topic_prefix: str, subscriber: Subscriber, tmp_path: Path
) -> None:
    started = time.time()
    proc, report = simulate(
        mosquitto.url,
        topic_prefix,
        tmp_path,
        *("--backfill", "1d", "--devices", "2", "--seed", "7", "--duration", "4s"),
        *("--speed", "300", "--loss", "0.05"),
    )
    messages = subscriber.wait_for(report["messages"])

    # what the simulator reports is what a subscriber got, copies counted
    assert report["messages"] == report["acknowledged"] == len(messages)
    stderr_lines = proc.stderr.strip().splitlines()
    assert f"published {report['uplinks']} uplinks as {len(messages)} messages" in stderr_lines[-1]
    assert f"acknowledged {len(messages)}" in stderr_lines[-1]

    per_device: dict[str, list[tuple[int, int]]] = defaultdict(list)
    types_seen: dict[str, str] = {}
    copies = group_copies(messages)
    assert len(copies) == report["uplinks"]
    for (device, seq, stamp), group in copies.items():
        assert 1 <= len(group) <= 3
        assert len({m.body["station"] for m in group}) == len(group)
        assert len({m.body["rssi"] for m in group}) == len(group)
        assert sorted(m.body["duplicate"] for m in group) == [False] + [True] * (len(group) - 1)
        assert len({m.body["data"] for m in group}) == 1
        for m in group:
            type_name, _ = check_envelope(m, topic_prefix)
            assert types_seen.setdefault(device, type_name) == type_name
        assert stamp >= started - DAY - 1  # from the backfilled day or later
        for name, value in decode(type_name, group[0].body["data"]).items():
            _, _, lo, hi = next(f for f in TYPES[type_name][1] if f[0] == name)
            assert lo - 1e-9 <= value <= hi + 1e-9, (type_name, name, value)
        per_device[device].append((stamp, seq))

    assert sorted(set(types_seen.values())) == sorted(TYPES)  # every built-in type by default
    assert sum(1 for t in types_seen.values() if t == "wristband") == 2
    gaps = 0
    live = 0
    for device, uplinks in per_device.items():
        uplinks.sort()
        stamps = [s for s, _ in uplinks]
        assert len(set(stamps)) == len(stamps)  # never two uplinks in one second
        for (_, a), (_, b) in itertools.pairwise(uplinks):
            step = (b - a) % 4096
            assert 1 <= step <= 8, (device, a, b)  # consecutive, except for a few lost
            gaps += step - 1
        if types_seen[device] != "scale":
            assert len(uplinks) <= 140 + 20  # a day of history, plus the sped-up live part
        live += sum(1 for s in stamps if s >= started)
    assert 0 < gaps <= report["lost"]  # losses show as gaps, and only losses do
    assert live > 0  # the sped-up live mode followed the backfill


def test_a_type_added_as_a_file_is_simulated(
    mosquitto: Mosquitto, topic_prefix: str, subscriber: Subscriber, tmp_path: Path
) -> None:
    folder = tmp_path / "types"
    folder.mkdir()
    (folder / "thermostat.toml").write_text(THERMOSTAT)
    _, report = simulate(
        mosquitto.url,
        topic_prefix,
        tmp_path,
        *("--backfill", "1d", "--backfill-only", "--devices", "2", "--loss", "0"),
        catalogue_dir=folder,
    )
    messages = subscriber.wait_for(report["messages"])
    assert len(messages) == report["messages"] == report["acknowledged"]
    assert report["lost"] == 0
    by_type: dict[str, set[str]] = defaultdict(set)
    for m in messages:
        type_name, device = check_envelope(m, topic_prefix)
        by_type[type_name].add(device)
        if type_name != "thermostat":
            continue
        payload = bytes.fromhex(m.body["data"])
        setpoint, valve, flags, mode = struct.unpack(">hBB2s", payload)
        assert 5 <= setpoint * 0.1 <= 30
        assert 0 <= valve <= 100
        assert flags & 0x7F == 0  # only the heating bit is used
        assert mode.isascii()
        assert mode.decode().isprintable()
    assert set(by_type) == {*TYPES, "thermostat"}  # no --types: every type of the catalogue
    assert len(by_type["thermostat"]) == 2
    assert report["per_type"]["thermostat"] >= 90  # every 15 minutes for a day, two devices


def test_help_lists_the_flags() -> None:
    proc = run_telemetry("simulate", "--help")
    assert proc.returncode == 0
    for flag in ("--devices", "--types", "--speed", "--duration", "--backfill", "--rate"):
        assert flag in proc.stdout
    for flag in ("--loss", "--seed", "--mqtt-url", "--backfill-only"):
        assert flag in proc.stdout


@pytest.mark.parametrize(
    ("url", "expect"),
    [
        (f"mqtt://127.0.0.1:{free_port()}", "cannot reach the MQTT broker at 127.0.0.1:"),
        ("http://127.0.0.1:1883", "invalid setting TELEMETRY_MQTT_URL"),
        ("mqtt://", "invalid setting TELEMETRY_MQTT_URL"),
    ],
)
def test_a_bad_or_unreachable_broker_is_one_line(url: str, expect: str) -> None:
    proc = run_telemetry("simulate", "--mqtt-url", url, "--broker-wait", "0.5", timeout=30)
    assert proc.returncode == 2
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1, proc.stderr
    assert expect in lines[0]
    assert "Traceback" not in proc.stderr


def test_load_mode_spreads_the_rate_over_devices(
    mosquitto: Mosquitto, topic_prefix: str, subscriber: Subscriber, tmp_path: Path
) -> None:
    proc, report = simulate(
        mosquitto.url,
        topic_prefix,
        tmp_path,
        *("--rate", "40", "--duration", "3s", "--devices", "1", "--types", "wristband,scale"),
    )
    assert "needs 40 devices of each type" in proc.stderr  # 2 s per device at most
    messages = subscriber.wait_for(report["messages"])
    assert len(messages) == report["messages"] == report["acknowledged"]
    copies = group_copies(messages)
    devices = {device for device, _, _ in copies}
    assert len(devices) > 40
    assert report["transmissions"] <= 40 * 3 + 1
    per_device: dict[str, list[int]] = defaultdict(list)
    for (device, _, stamp), group in copies.items():
        check_envelope(group[0], topic_prefix)
        per_device[device].append(stamp)
    for stamps in per_device.values():
        assert len(set(stamps)) == len(stamps)  # never twice in one second


def test_sigterm_stops_cleanly_with_a_report(
    mosquitto: Mosquitto, topic_prefix: str, subscriber: Subscriber
) -> None:
    proc = subprocess.Popen(
        [str(TELEMETRY), "simulate", "--speed", "500", "--types", "weather_station"],
        env=_env(mosquitto.url, topic_prefix),
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert subscriber.wait_for(1, timeout=30), "no uplink within 30 s at 500x"
        proc.send_signal(signal.SIGTERM)
        _, stderr = proc.communicate(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert proc.returncode == 0, stderr
    last = stderr.strip().splitlines()[-1]
    match = re.search(r"as (\d+) messages .* acknowledged (\d+);", last)
    assert match is not None, last
    assert match[1] == match[2]
    assert len(subscriber.wait_for(int(match[1]))) == int(match[1])
    assert "Traceback" not in stderr


def test_wrong_credentials_are_one_line(
    make_mosquitto: Callable[..., Mosquitto], tmp_path: Path
) -> None:
    passwd = tmp_path / "passwd"
    subprocess.run(
        [find_binary("mosquitto_passwd"), "-b", "-c", str(passwd), "sim", "secret"], check=True
    )
    broker = make_mosquitto(password_file=passwd)
    url = f"mqtt://sim:wrong@{broker.host}:{broker.port}"
    proc = run_telemetry("simulate", "--mqtt-url", url, "--broker-wait", "0", timeout=30)
    assert proc.returncode == 2
    assert proc.stderr.strip().splitlines() == [
        f"telemetry: the MQTT broker at {broker.host}:{broker.port} refused us: Not authorized"
    ]
