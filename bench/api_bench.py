"""API latency and throughput next to InfluxDB's own time for the same InfluxQL.

    .venv/bin/python bench/api_bench.py             # measure, print, update BENCHMARKS.md
    .venv/bin/python bench/api_bench.py --no-write  # measure and print only

Starts its own influxd and `telemetry api` (uvicorn, a separate process) on free loopback ports,
writes a device with 30 days of uplinks at 140/day and one with a year, then for each scenario
alternates one API request and one direct InfluxDB request of the same statement(s) with the same
bound parameters, so both see the same machine state. Throughput: 16 concurrent keep-alive
clients for a fixed time. Client, API and InfluxDB share this machine's cores.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import random
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

from benchmarks_md import cpu_model, write_section  # noqa: E402  # after the path set-up

from catalogue import DeviceType, load_catalogue  # noqa: E402
from influx import query as q  # noqa: E402
from influx.statement import Query  # noqa: E402
from telemetry.servers import Influxd, free_port  # noqa: E402

NS = 1_000_000_000
DAY = 86_400
PER_DAY = 140  # Sigfox's ceiling per device (DESIGN section 1)
MONTH_DEVICE = "30D0A1"
YEAR_DEVICE = "365D01"
API_KEY = "bench-key"
BATCH = 5_000  # InfluxDB's documented efficient batch size for one writer
CONCURRENCY = 16
DATABASE = "telemetry"


def make_lines(device: str, days: int, end: int, rng: random.Random) -> list[str]:
    """140 uplinks a day ending at `end`, with some losses so the loss query has work."""
    lines = []
    step = DAY / PER_DAY
    seq = rng.randrange(4096)
    count = days * PER_DAY
    for i in range(count):
        t = end - int((count - i) * step) + rng.randrange(-60, 60)
        seq = (seq + (2 if rng.random() < 0.03 else 1)) % 4096
        hr = 50 + rng.randrange(80)
        steps = rng.randrange(20_000)
        stations = 1 + rng.randrange(3)
        rssi = -90 - rng.random() * 40
        link = f"seq={seq}i,rssi={rssi:.1f},snr=8.5,stations={stations}i"
        lines.append(
            f"wristband,device={device} heart_rate={hr}i,steps={steps}i,calories=900i,"
            f"sleep_phase=0i,battery=77i,{link} {t}"
        )
        lines.append(
            f'uplink,device={device},type=wristband data="3c000004b0012c0064",{link},'
            f'station="0A1B",station_ids="0A1B",out_of_range=0i {t}'
        )
    return lines


def write(server: Influxd, lines: list[str]) -> None:
    with httpx.Client(timeout=120) as client:
        for i in range(0, len(lines), BATCH):
            r = client.post(
                f"{server.url}/write",
                params={"db": DATABASE, "precision": "s"},
                content="\n".join(lines[i : i + BATCH]).encode(),
            )
            r.raise_for_status()


def start_api(
    influx_url: str, port: int, log: Path, extra_env: dict[str, str] | None = None
) -> subprocess.Popen[bytes]:
    """`telemetry api` on `port`, ready on return; `extra_env` adds settings (a broker)."""
    env = (
        os.environ
        | {
            "TELEMETRY_INFLUX_URL": influx_url,
            "TELEMETRY_INFLUX_DATABASE": DATABASE,
            "TELEMETRY_API_KEYS": API_KEY,
            "TELEMETRY_LOG_LEVEL": "WARNING",
        }
        | (extra_env or {})
    )
    cmd = [sys.executable, "-c", "from telemetry.cli import main; main()", "api"]
    proc = subprocess.Popen(  # our own argv, no shell
        [*cmd, "--host", "127.0.0.1", "--port", str(port)],
        env=env,
        stdout=log.open("wb"),
        stderr=subprocess.STDOUT,
        cwd=tempfile.gettempdir(),  # no stray .env
    )
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise SystemExit(f"the API exited: {log.read_text()}")
        try:
            if httpx.get(f"http://127.0.0.1:{port}/readyz", timeout=0.5).status_code == 200:
                return proc
        except httpx.HTTPError:
            pass
        time.sleep(0.05)
    proc.kill()
    raise SystemExit("the API did not become ready in 30 s")


def percentile(values: list[float], p: float) -> float:
    ordered = sorted(values)
    k = max(0, min(len(ordered) - 1, round(p / 100 * (len(ordered) - 1))))
    return ordered[k]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=200, help="timed requests per scenario")
    parser.add_argument("--seconds", type=float, default=10.0, help="throughput run length")
    parser.add_argument("--no-write", action="store_true", help="do not update BENCHMARKS.md")
    args = parser.parse_args()

    catalogue = load_catalogue()
    wrist = catalogue["wristband"]
    now = int(time.time())
    end = now - now % DAY + DAY  # the end of today (UTC), so every window ends on a boundary
    rng = random.Random(7)
    with tempfile.TemporaryDirectory(prefix="api-bench-") as tmp:
        influx = Influxd(Path(tmp) / "influxd")
        influx.start()
        api_proc = None
        try:
            influx.create_database(DATABASE)
            t0 = time.perf_counter()
            year = make_lines(YEAR_DEVICE, 365, now, rng)
            lines = make_lines(MONTH_DEVICE, 30, now, rng) + year
            write(influx, lines)
            # the year device's newest point: where the API's loss fold stands once warmed up
            last_time_ns = max(int(line.rsplit(" ", 1)[1]) for line in year) * NS
            print(f"wrote {len(lines)} points in {time.perf_counter() - t0:.1f} s")
            port = free_port()
            api_proc = start_api(influx.url, port, Path(tmp) / "api.log")
            results, throughput = run(
                args, influx, port, wrist, now=now, end=end, last_time_ns=last_time_ns
            )
        finally:
            if api_proc is not None:
                api_proc.terminate()
                api_proc.wait(15)
            influx.stop()
    report = render(results, throughput, args)
    print(report)
    if not args.no_write:
        write_section("API", report)
        print(f"updated {ROOT / 'BENCHMARKS.md'} (section ## API)")


Scenario = tuple[str, str, dict[str, str], list[Query]]


def scenarios(wrist: DeviceType, now: int, end: int, last_time_ns: int) -> list[Scenario]:
    fields = tuple(wrist.fields)
    day_start, month_start, year_start = now - DAY, end - 30 * DAY, end - 365 * DAY

    def hist(device: str, start: int, stop: int, every: int | None) -> Query:
        return q.history(
            wrist,
            device,
            fields=fields,
            start_ns=start * NS,
            end_ns=stop * NS,
            order="asc",
            limit=1001,
            every_ns=every * NS if every else None,
            agg="mean",
        )

    return [
        (
            "(a) raw 24 h history (30-day device)",
            f"/v1/devices/{MONTH_DEVICE}/history",
            {"start": str(day_start), "end": str(now)},
            [hist(MONTH_DEVICE, day_start, now, None)],
        ),
        (
            "(b) 30-day history, every=1h",
            f"/v1/devices/{MONTH_DEVICE}/history",
            {"start": str(month_start), "end": str(end), "every": "1h"},
            [hist(MONTH_DEVICE, month_start, end, 3600)],
        ),
        (
            "(c) one-year history, every=1d",
            f"/v1/devices/{YEAR_DEVICE}/history",
            {"start": str(year_start), "end": str(end), "every": "1d"},
            [hist(YEAR_DEVICE, year_start, end, DAY)],
        ),
        (
            "(d) /v1/devices/{device} (one-year device)",
            f"/v1/devices/{YEAR_DEVICE}",
            {},
            # steady state: the loss is folded on from the newest point already folded
            [
                *q.device_summary(YEAR_DEVICE),
                q.seq_since(YEAR_DEVICE, last_time_ns),
                q.latest(wrist, YEAR_DEVICE),
            ],
        ),
    ]


def influx_call(client: httpx.Client, query: Query) -> None:
    r = client.post(
        "/query",
        data={"db": DATABASE, "q": query.text, "epoch": "ns", "params": json.dumps(query.params)},
    )
    r.raise_for_status()
    if '"error"' in r.text:
        raise SystemExit(f"InfluxDB refused {query.text}: {r.text[:300]}")


def timed(fn: Callable[[], None]) -> float:
    t = time.perf_counter()
    fn()
    return (time.perf_counter() - t) * 1000


def run(
    args: argparse.Namespace,
    influx: Influxd,
    port: int,
    wrist: DeviceType,
    *,
    now: int,
    end: int,
    last_time_ns: int,
) -> tuple[list[dict[str, object]], dict[str, float]]:
    base = f"http://127.0.0.1:{port}"
    headers = {"Authorization": f"Bearer {API_KEY}"}
    results = []
    cases = scenarios(wrist, now, end, last_time_ns)
    with (
        httpx.Client(base_url=base, headers=headers, timeout=60) as api,
        httpx.Client(base_url=influx.url, timeout=60) as db,
        ThreadPoolExecutor(4) as pool,
    ):
        for label, path, params, queries in cases:

            def call_api(path: str = path, params: dict[str, str] = params) -> None:
                r = api.get(path, params=params)
                r.raise_for_status()

            def call_db(queries: list[Query] = queries) -> None:
                # concurrently, as the API sends them
                if len(queries) == 1:
                    influx_call(db, queries[0])
                else:
                    list(pool.map(lambda query: influx_call(db, query), queries))

            size = len(api.get(path, params=params).content)
            for _ in range(10):  # warm-up: connections, caches, the device-type memo
                call_api()
                call_db()
            api_ms, db_ms = [], []
            for _ in range(args.requests):
                api_ms.append(timed(call_api))
                db_ms.append(timed(call_db))
            results.append(
                {
                    "label": label,
                    "bytes": size,
                    "api_p50": statistics.median(api_ms),
                    "api_p99": percentile(api_ms, 99),
                    "db_p50": statistics.median(db_ms),
                    "db_p99": percentile(db_ms, 99),
                }
            )
            print(f"{label}: API p50 {results[-1]['api_p50']:.1f} ms")
    throughput = {
        label: asyncio.run(load(base, headers, [(path, params)], args.seconds))
        for label, path, params in (
            ("(a) raw 24 h history", cases[0][1], cases[0][2]),
            ("(d) device detail", cases[3][1], cases[3][2]),
        )
    }
    throughput["mix of (a)-(d)"] = asyncio.run(
        load(base, headers, [(c[1], c[2]) for c in cases], args.seconds)
    )
    return results, throughput


async def load(
    base: str, headers: dict[str, str], targets: list[tuple[str, dict[str, str]]], seconds: float
) -> float:
    """Requests per second answered 200 by CONCURRENCY clients looping over `targets`."""
    done = 0
    failures = 0
    limits = httpx.Limits(max_connections=CONCURRENCY, max_keepalive_connections=CONCURRENCY)
    async with httpx.AsyncClient(base_url=base, headers=headers, limits=limits, timeout=60) as c:
        stop_at = time.monotonic() + seconds

        async def worker(offset: int) -> None:
            nonlocal done, failures
            i = offset
            while time.monotonic() < stop_at:
                path, params = targets[i % len(targets)]
                r = await c.get(path, params=params)
                if r.status_code == 200:
                    done += 1
                else:
                    failures += 1
                i += 1

        started = time.monotonic()
        await asyncio.gather(*(worker(k) for k in range(CONCURRENCY)))
        elapsed = time.monotonic() - started
    if failures:
        raise SystemExit(f"{failures} requests failed under load")
    return done / elapsed


def render(
    results: list[dict[str, object]], throughput: dict[str, float], args: argparse.Namespace
) -> str:
    when = datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC")
    lines = [
        "## API",
        "",
        f"Measured {when} by `.venv/bin/python bench/api_bench.py` on {os.cpu_count()} CPUs "
        f"({cpu_model()}), Python {platform.python_version()}, InfluxDB 1.6.7 and the API "
        "(uvicorn, one process) on loopback, all on the same machine as the load generator.",
        f"Data: device `{MONTH_DEVICE}` with 30 days and `{YEAR_DEVICE}` with 365 days of "
        f"uplinks at {PER_DAY}/day (wristband: 5 decoded fields + link fields), written as both "
        "the type and the `uplink` measurement.",
        f"Latency: {args.requests} sequential keep-alive requests per scenario, each followed by "
        "the same InfluxQL (same text, same bound parameters) sent straight to InfluxDB, so the "
        "difference is the API's own cost (HTTP, auth, validation, JSON).",
        "",
        "| scenario | response | API p50 | API p99 | InfluxDB p50 | InfluxDB p99 "
        "| API overhead p50 |",
        "| --- | ---: | ---: | ---: | ---: | ---: | ---: |",
    ]
    for r in results:
        api50, api99 = float(r["api_p50"]), float(r["api_p99"])  # type: ignore[arg-type]
        db50, db99 = float(r["db_p50"]), float(r["db_p99"])  # type: ignore[arg-type]
        lines.append(
            f"| {r['label']} | {int(r['bytes']) / 1024:.1f} KiB | {api50:.1f} ms | "  # type: ignore[call-overload]
            f"{api99:.1f} ms | {db50:.1f} ms | {db99:.1f} ms | {api50 - db50:+.1f} ms |"
        )
    lines += [
        "",
        "(d) is four InfluxDB queries sent concurrently on both sides: identity, link counts, the "
        "sequence numbers since the newest point already folded into the device's loss (the API "
        "folds the whole history once, on its first request for the device) and the latest "
        "point.",
        "",
        f"Throughput, {CONCURRENCY} concurrent keep-alive clients for {args.seconds:.0f} s "
        "(one asyncio httpx client process; it shares the cores with the API and InfluxDB):",
        "",
        "| load | requests/s |",
        "| --- | ---: |",
    ]
    lines += [f"| {label} | {rate:.0f} |" for label, rate in throughput.items()]
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    main()
