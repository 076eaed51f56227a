"""`/v1/fleet` and `/v1/alarms` latency with 10,000 devices, next to `/healthz` (the API's floor).

    .venv/bin/python bench/status_bench.py             # measure, print, update BENCHMARKS.md
    .venv/bin/python bench/status_bench.py --no-write  # measure and print only

Starts its own influxd and `telemetry api` (uvicorn, a separate process) on free loopback ports,
writes 10,000 devices over the four built-in types (newest uplinks spread so that about 70 %
are online, 15 % late and 15 % offline; 5 % with a low battery), waits until the API's status
cache holds them all, then times sequential keep-alive requests. It also times the cache's two
kinds of poll of InfluxDB in-process (the background cost behind those answers).

Then what those polls cost the API's InfluxDB per minute, before and after the cache followed
the `up` events (api/statuscache.py), in two phases of `--phase-seconds` (60): uplinks of online
devices stored at EVENT_RATE a second (10,000 devices reporting every 10 min), first without
their `up` events (as an ingester with TELEMETRY_INGEST_EVENTS=false, and as the cache did
before it followed them: an incremental poll every 5 s), then with each one's event published
on a Mosquitto of its own once it is stored, as the ingester does. InfluxDB's own counters
(`/debug/vars`: HTTP query requests and their time) count the API's queries: nothing else
queries it meanwhile.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import platform
import random
import statistics
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

import httpx
import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

from api_bench import (  # noqa: E402  # after the path set-up
    API_KEY,
    DATABASE,
    percentile,
    start_api,
    write,
)
from benchmarks_md import cpu_model, write_section  # noqa: E402

from catalogue import load_catalogue  # noqa: E402
from influx.client import InfluxClient  # noqa: E402
from status.tracker import Tracker  # noqa: E402
from telemetry.servers import Influxd, Mosquitto, free_port  # noqa: E402

DEVICES = 10_000
UPLINKS_PER_DEVICE = 3
SECTION = "## Status"
EVENT_RATE = 17  # uplinks a second: 10,000 devices reporting every 10 min
EVENTS_PREFIX = "events"


def make_lines(now: int, rng: random.Random) -> tuple[list[str], list[tuple[str, str]]]:
    """Every device's last few uplinks, its decoded battery, at ages that give each state;
    and the online devices (device, type)."""
    catalogue = load_catalogue()
    types = list(catalogue)
    lines = []
    online = []
    for i in range(DEVICES):
        dtype = types[i % len(types)]
        spec = dtype.status
        roll = rng.random()
        if roll < 0.70:
            age = rng.uniform(0, spec.late_after * 0.9)
        elif roll < 0.85:
            age = rng.uniform(spec.late_after * 1.1, spec.offline_after * 0.9)
        else:
            age = rng.uniform(spec.offline_after * 1.1, spec.offline_after * 3)
        battery = rng.randrange(1, 15) if rng.random() < 0.05 else rng.randrange(30, 100)
        device = f"{0xB0000 + i:X}"
        if roll < 0.70:
            online.append((device, dtype.name))
        for k in range(UPLINKS_PER_DEVICE):
            t = now - int(age) - k * int(spec.interval)
            lines.append(f"uplink,device={device},type={dtype.name} seq={k}i,stations=1i {t}")
            lines.append(f"{dtype.name},device={device} battery={battery}i,seq={k}i {t}")
    return lines, online


def influx_queries(server: Influxd) -> tuple[int, float]:
    """InfluxDB's count of HTTP query requests so far, and their seconds."""
    stats = httpx.get(f"{server.url}/debug/vars", timeout=10).json()
    httpd = next(v for k, v in stats.items() if k.startswith("httpd"))["values"]
    return int(httpd["queryReq"]), httpd["queryReqDurationNs"] / 1e9


def feed(
    server: Influxd, broker: Mosquitto, online: list[tuple[str, str]], seconds: int, *, events: bool
) -> tuple[int, float]:
    """Store EVENT_RATE uplinks a second of `online` devices for `seconds`, each `up` event
    published after its point is stored when `events`; InfluxDB's queries and their seconds
    meanwhile."""
    pub = mqtt.Client(CallbackAPIVersion.VERSION2, client_id="status-bench")
    pub.connect(broker.host, broker.port)
    pub.loop_start()
    q0, s0 = influx_queries(server)
    start = time.monotonic()
    sent = 0
    with httpx.Client(timeout=30) as http:
        for tick in range(seconds):
            t = int(time.time())
            batch = [online[(sent + k) % len(online)] for k in range(EVENT_RATE)]
            sent += EVENT_RATE
            lines = []
            for device, type_name in batch:
                lines.append(f"uplink,device={device},type={type_name} seq=9i,stations=1i {t}")
                lines.append(f"{type_name},device={device} battery=80i,seq=9i {t}")
            http.post(
                f"{server.url}/write",
                params={"db": DATABASE, "precision": "s"},
                content="\n".join(lines).encode(),
            ).raise_for_status()
            if events:
                for device, type_name in batch:
                    body = {
                        "device": device,
                        "type": type_name,
                        "time": datetime.fromtimestamp(t, UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
                        "seq": 9,
                        "stations": 1,
                        "station": "0A1B",
                        "rssi": -120.0,
                        "snr": 8.0,
                        "values": {"battery": 80},
                    }
                    topic = f"{EVENTS_PREFIX}/{type_name}/{device}/up"
                    pub.publish(topic, json.dumps(body), qos=1)
            time.sleep(max(0.0, start + tick + 1 - time.monotonic()))  # paced, one batch a second
    q1, s1 = influx_queries(server)
    pub.loop_stop()
    pub.disconnect()
    return q1 - q0, s1 - s0


def timed_requests(client: httpx.Client, path: str, n: int) -> tuple[list[float], int]:
    times = []
    size = 0
    for _ in range(n):
        t0 = time.perf_counter()
        r = client.get(path)
        times.append(time.perf_counter() - t0)
        r.raise_for_status()
        size = len(r.content)
    return times, size


async def poll_costs(url: str) -> tuple[float, float]:
    """Seconds for one full and one incremental poll of the tracker, in this process."""
    catalogue = load_catalogue()
    async with httpx.AsyncClient(base_url=url, timeout=120) as http:
        tracker = Tracker(catalogue, InfluxClient(http, DATABASE))
        t0 = time.perf_counter()
        await tracker.poll(time.time_ns(), full=True)
        await tracker.updates(time.time_ns())
        full = time.perf_counter() - t0
        incremental = []
        for _ in range(5):
            t0 = time.perf_counter()
            await tracker.poll(time.time_ns(), full=False)
            for update in await tracker.updates(time.time_ns()):
                tracker.commit(update)
            incremental.append(time.perf_counter() - t0)
        return full, statistics.median(incremental)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=300, help="timed requests per path")
    parser.add_argument("--no-write", action="store_true", help="do not update BENCHMARKS.md")
    parser.add_argument(
        "--phase-seconds", type=int, default=60, help="each phase of the polls' cost per minute"
    )
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        server = Influxd(Path(tmp) / "influxd")
        server.start()
        broker = Mosquitto(Path(tmp) / "mosquitto")
        broker.start()
        api = None
        try:
            server.create_database(DATABASE)
            now = int(time.time())
            lines, online = make_lines(now, random.Random(12))
            write(server, lines)
            port = free_port()
            broker_env = {
                "TELEMETRY_MQTT_URL": broker.url,
                "TELEMETRY_MQTT_EVENTS_PREFIX": EVENTS_PREFIX,
            }
            api = start_api(server.url, port, Path(tmp) / "api.log", broker_env)
            headers = {"Authorization": f"Bearer {API_KEY}"}
            with httpx.Client(
                base_url=f"http://127.0.0.1:{port}", headers=headers, timeout=30
            ) as client:
                deadline = time.monotonic() + 120
                while time.monotonic() < deadline:
                    fleet = client.get("/v1/fleet")
                    if (
                        fleet.status_code == 200
                        and sum(t["devices"] for t in fleet.json()["types"]) == DEVICES
                    ):
                        break
                    time.sleep(0.2)
                else:
                    raise SystemExit("the status cache did not load the 10,000 devices")
                states: dict[str, int] = {}
                for t in fleet.json()["types"]:
                    for s, n in t["states"].items():
                        states[s] = states.get(s, 0) + n
                alarms = len(client.get("/v1/alarms").json()["alarms"])
                results = {
                    path: timed_requests(client, path, args.requests)
                    for path in ("/healthz", "/v1/fleet", "/v1/alarms", "/v1/alarms?type=scale")
                }
            # the API is queried by nothing else now: the counts are its cache's alone
            phases = [
                feed(server, broker, online, args.phase_seconds, events=events)
                for events in (False, True)
            ]
            full, incremental = asyncio.run(poll_costs(server.url))
        finally:
            if api is not None:
                api.terminate()
                api.wait(20)
            broker.stop()
            server.stop()
    section = render(args.requests, states, alarms, results, full, incremental)
    section += render_phases(args.phase_seconds, phases)
    print(section)
    if not args.no_write:
        write_section("Status", section)


def render(  # noqa: PLR0917  # the figures of one run
    n: int,
    states: dict[str, int],
    alarms: int,
    results: dict[str, tuple[list[float], int]],
    full: float,
    incremental: float,
) -> str:
    when = datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC")
    rows = [
        f"| `{path}` | {size / 1024:.1f} KiB | {percentile(t, 50) * 1000:.1f} ms | "
        f"{percentile(t, 99) * 1000:.1f} ms |"
        for path, (t, size) in results.items()
    ]
    return "\n".join(
        [
            SECTION,
            "",
            f"Measured {when} by `.venv/bin/python bench/status_bench.py` on "
            f"{cpu_model()}, Python {platform.python_version()}, InfluxDB 1.6.7 and the API "
            "(uvicorn, one process) on loopback, all on the same machine as the client.",
            f"Data: {DEVICES:,} devices over the four built-in types, {UPLINKS_PER_DEVICE} "
            f"uplinks each; the API's view: {states} and {alarms} active alarms.",
            f"Latency: {n} sequential keep-alive requests per path; `/healthz` is the API's "
            "floor (HTTP and routing, no work).",
            "",
            "| path | response | p50 | p99 |",
            "| --- | ---: | ---: | ---: |",
            *rows,
            "",
            "Both answer from the status cache (api/statuscache.py), so their cost does not "
            "depend on InfluxDB. Behind it, the cache polls InfluxDB in the background: one full "
            f"poll (all history and the recorded events, at start and every 5 min) took "
            f"{full * 1000:.0f} ms, an incremental poll (the last 5 minutes, every 5 s, or every "
            f"60 s while the `up` events are followed) "
            f"{incremental * 1000:.0f} ms (median of 5), for these {DEVICES:,} devices, most "
            "of it InfluxDB grouping the `uplink` measurement's 10,000 series; the ingester's "
            "status watcher polls the same way.",
            "",
        ]
    )


def render_phases(seconds: int, phases: list[tuple[int, float]]) -> str:
    """The polls' cost per minute without and with the `up` events."""
    per_min = 60 / seconds
    rows = [
        f"| {what} | {queries * per_min:.0f} | {busy * per_min:.2f} s |"
        for what, (queries, busy) in zip(
            ("without `up` events (an incremental poll every 5 s, as before)", "with them"),
            phases,
            strict=True,
        )
    ]
    return "\n".join(
        [
            "",
            f"The same API's InfluxDB queries per minute (over {seconds} s each, no full poll "
            f"in either), with {EVENT_RATE} uplinks of online devices stored a second "
            "(10,000 devices every 10 min), counted by InfluxDB (`/debug/vars`):",
            "",
            "| the status cache | queries/min | InfluxDB query time/min |",
            "| --- | ---: | ---: |",
            *rows,
            "",
            "With the events it takes each uplink from its event and polls only as a backstop "
            "(TELEMETRY_STATUS_BACKSTOP_SECONDS, 60 s); without them, or with the broker away, it "
            "polls every 5 s as before.",
            "",
        ]
    )


if __name__ == "__main__":
    main()
