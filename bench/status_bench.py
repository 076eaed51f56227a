"""`/v1/fleet` and `/v1/alarms` latency with 10,000 devices, next to `/healthz` (the API's floor).

    .venv/bin/python bench/status_bench.py             # measure, print, update BENCHMARKS.md
    .venv/bin/python bench/status_bench.py --no-write  # measure and print only

Starts its own influxd and `telemetry api` (uvicorn, a separate process) on free loopback ports,
writes 10,000 devices over the four built-in types (newest uplinks spread so that about 70 %
are online, 15 % late and 15 % offline; 5 % with a low battery), waits until the API's status
cache holds them all, then times sequential keep-alive requests. It also times the cache's two
kinds of poll of InfluxDB in-process (the background cost behind those answers).
"""

from __future__ import annotations

import argparse
import asyncio
import platform
import random
import statistics
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

import httpx

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
from telemetry.servers import Influxd, free_port  # noqa: E402

DEVICES = 10_000
UPLINKS_PER_DEVICE = 3
SECTION = "## Status"


def make_lines(now: int, rng: random.Random) -> list[str]:
    """Every device's last few uplinks, its decoded battery, at ages that give each state."""
    catalogue = load_catalogue()
    types = list(catalogue)
    lines = []
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
        for k in range(UPLINKS_PER_DEVICE):
            t = now - int(age) - k * int(spec.interval)
            lines.append(f"uplink,device={device},type={dtype.name} seq={k}i,stations=1i {t}")
            lines.append(f"{dtype.name},device={device} battery={battery}i,seq={k}i {t}")
    return lines


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
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        server = Influxd(Path(tmp) / "influxd")
        server.start()
        api = None
        try:
            server.create_database(DATABASE)
            now = int(time.time())
            write(server, make_lines(now, random.Random(12)))
            port = free_port()
            api = start_api(server.url, port, Path(tmp) / "api.log")
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
            full, incremental = asyncio.run(poll_costs(server.url))
        finally:
            if api is not None:
                api.terminate()
                api.wait(20)
            server.stop()
    section = render(args.requests, states, alarms, results, full, incremental)
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
            f"{full * 1000:.0f} ms, an incremental poll (the last 5 minutes, every 5 s) "
            f"{incremental * 1000:.0f} ms (median of 5), for these {DEVICES:,} devices, most "
            "of it InfluxDB grouping the `uplink` measurement's 10,000 series; the ingester's "
            "status watcher polls the same way.",
            "",
        ]
    )


if __name__ == "__main__":
    main()
