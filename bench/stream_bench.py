"""`GET /v1/stream` under load: 100 clients, 1,000 uplinks/s, p99 publish-to-client, API RSS.

Run: `.venv/bin/python bench/stream_bench.py` (`--duration 600` for the 10-minute run, `--write`
to put the table in BENCHMARKS.md, section `## Stream`). It starts a fresh Mosquitto and
InfluxDB under a temporary folder, `telemetry ingest` and `telemetry api` as subprocesses, then:

1. opens `--clients` stream connections (one asyncio process, raw sockets: parsing 100,000
   events a second with an HTTP library would make the clients the bottleneck);
2. publishes `--rate` uplinks a second for `--duration` seconds from a separate process
   (`bench/rawpub.py`, QoS 1, paced, each publish time-stamped);
3. a third of the way in, connects one more client that reads nothing (a receive buffer of
   4 KiB): it must be overflowed and dropped, and the others must not notice (`--no-slow`:
   not, for comparison);
4. latency: from each uplink's publish to its `up` event read by each client (event bodies
   matched by device and seq), p50/p99/max, before and after the slow client came;
5. the API's RSS sampled every 5 s.
"""

from __future__ import annotations

import argparse
import array
import asyncio
import gc
import json
import os
import re
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

from ingest_bench import make_uplinks, publish  # noqa: E402

from telemetry.servers import Influxd, Mosquitto, free_port  # noqa: E402

TELEMETRY = str(Path(sys.executable).with_name("telemetry"))
KEY = "bench-stream-key"
# The device and seq of an `up` event, as ingest writes its body (api/eventbus.py keeps it).
EVENT_RE = re.compile(rb'"device":"([0-9A-F]+)","type":"[a-z_]+","time":"[^"]+","seq":(\d+)')


def rss_mb(pid: int) -> float:
    m = re.search(r"VmRSS:\s+(\d+) kB", Path(f"/proc/{pid}/status").read_text())
    return int(m.group(1)) / 1024 if m else float("nan")


# Latency is sampled on every SAMPLE-th uplink (all clients, all the run): 100 clients keeping
# a record of every event would need gigabytes over 10 minutes. Every event is counted.
SAMPLE = 10


class Client:
    """One stream connection: events counted, and when sampled uplinks were read."""

    def __init__(self, index: dict[tuple[str, int], int]) -> None:
        self.index = index
        self.count = 0
        self.which = array.array("I")  # the uplink's index in the published list
        self.when = array.array("d")  # when it was read (wall clock)
        self.ended = False

    async def run(self, port: int, opened: asyncio.Event) -> None:
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        writer.write(
            f"GET /v1/stream?events=up HTTP/1.1\r\nHost: bench\r\n"
            f"Authorization: Bearer {KEY}\r\n\r\n".encode()
        )
        buf = b""
        index, which, when = self.index, self.which, self.when
        while True:
            data = await reader.read(1 << 18)
            if not data:
                break
            now = time.time()
            buf += data
            end = buf.rfind(b"\n\n")  # only whole events: a read may end inside one
            if end < 0:
                continue
            if not opened.is_set() and b": stream open" in buf:
                opened.set()
            found = EVENT_RE.findall(buf, 0, end)
            self.count += len(found)
            for device, seq in found:
                i = index.get((device.decode(), int(seq)), -1)
                if i >= 0 and i % SAMPLE == 0:
                    which.append(i)
                    when.append(now)
            buf = buf[end + 2 :]
        self.ended = True
        writer.close()


def stuck_client(port: int) -> socket.socket:
    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    s.connect(("127.0.0.1", port))
    s.sendall(f"GET /v1/stream HTTP/1.1\r\nHost: b\r\nAuthorization: Bearer {KEY}\r\n\r\n".encode())
    return s


def metric(base: str, name: str) -> float:
    text = httpx.get(f"{base}/metrics", headers={"Authorization": f"Bearer {KEY}"}).text
    for line in text.splitlines():
        if line.startswith(name + " "):
            return float(line.split()[1])
    return float("nan")


def cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def stamps_start(result: dict[str, object]) -> float:
    stamps = result["stamps"]
    assert isinstance(stamps, list)
    return float(stamps[0])


def percentile(values: list[float], p: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(len(ordered) * p))] if ordered else float("nan")


def run(  # noqa: PLR0912, PLR0915  # one scenario, top to bottom
    clients: int, rate: float, duration: float, slow: bool
) -> tuple[list[tuple[str, str, str]], str]:
    tmp = Path(tempfile.mkdtemp(prefix="stream-bench-"))
    mosq, influx = Mosquitto(tmp / "mosquitto"), Influxd(tmp / "influxd")
    mosq.start()
    influx.start()
    env = {k: v for k, v in os.environ.items() if not k.startswith("TELEMETRY_")} | {
        "TELEMETRY_MQTT_URL": mosq.url,
        "TELEMETRY_INFLUX_URL": influx.url,
        "TELEMETRY_INFLUX_DATABASE": "bench",
        "TELEMETRY_LOG_LEVEL": "WARNING",
    }
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    ingest = subprocess.Popen(
        [TELEMETRY, "ingest"],
        env=env
        | {
            "TELEMETRY_INGEST_SPOOL_DIR": str(tmp / "spool"),
            "TELEMETRY_INGEST_METRICS_PORT": "0",
            "TELEMETRY_INGEST_RATE_BURST": "100000",
        },
        stderr=(tmp / "ingest.log").open("ab"),
    )
    api = subprocess.Popen(
        [TELEMETRY, "api", "--port", str(port)],
        env=env
        | {
            "TELEMETRY_API_KEYS": KEY,
            "TELEMETRY_API_STREAM_CLIENTS_MAX": str(clients + 10),
            "TELEMETRY_LOG_LEVEL": "INFO",
        },
        stderr=(tmp / "api.log").open("ab"),
    )
    rss: list[tuple[float, float]] = []
    try:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            try:
                if httpx.get(f"{base}/healthz", timeout=1).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            time.sleep(0.1)
        while "stream: subscribed" not in (tmp / "api.log").read_text():
            time.sleep(0.1)
        time.sleep(2)  # set-up: the ingester connects and subscribes (not a measured interval)
        n = int(rate * duration)
        devices = max(1, int(rate))  # one uplink per device per second: the rate limit's pace
        uplinks = make_uplinks(n, devices, int(time.time()))
        index = {
            (json.loads(b)["device"], json.loads(b)["seqNumber"]): i
            for i, (_, b, _) in enumerate(uplinks)
        }
        stop_rss = threading.Event()

        def sample() -> None:
            started = time.monotonic()
            while not stop_rss.is_set():
                rss.append((time.monotonic() - started, rss_mb(api.pid)))
                stop_rss.wait(5)

        sampler = threading.Thread(target=sample, daemon=True)
        sampler.start()
        cpu0 = {name: cpu_seconds(p.pid) for name, p in (("api", api), ("ingest", ingest))}
        cpu0["clients"] = time.process_time()
        stream_clients = [Client(index) for _ in range(clients)]
        result: dict[str, object] = {}
        slow_holder: list[socket.socket] = []

        # The clients keep millions of samples: the cyclic collector's full passes over them
        # paused the reading for longer and longer (measured: p99 from 0.4 to 1.7 s over 40 s,
        # in this process, not in the API). They make no cycles: collect none.
        gc.disable()

        async def main() -> None:
            opened = [asyncio.Event() for _ in stream_clients]
            tasks = [
                asyncio.create_task(c.run(port, o))
                for c, o in zip(stream_clients, opened, strict=True)
            ]
            await asyncio.wait_for(asyncio.gather(*(o.wait() for o in opened)), 60)
            loop = asyncio.get_running_loop()
            pub = loop.run_in_executor(None, publish, mosq, uplinks, "uplink", tmp, rate)
            await asyncio.sleep(duration / 3)
            if slow:
                slow_holder.append(stuck_client(port))
            result["slow_at"] = time.time()
            stamps = (await pub)["stamps"]
            result["stamps"] = stamps
            # the last events: until every client has them all, or 30 s
            wait_until = time.monotonic() + 30
            while time.monotonic() < wait_until and any(  # noqa: ASYNC110  # plain counters
                c.count < n for c in stream_clients
            ):
                await asyncio.sleep(0.1)
            result["overflows"] = metric(base, "telemetry_api_stream_overflows_total")
            result["connected"] = metric(base, "telemetry_api_stream_clients")
            for t in tasks:
                t.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)

        asyncio.run(main())
        stop_rss.set()
        cpu = {
            name: cpu_seconds(p.pid) - cpu0[name] for name, p in (("api", api), ("ingest", ingest))
        }
        cpu["clients"] = time.process_time() - cpu0["clients"]
        wall = time.time() - stamps_start(result)
        overflows, connected = result["overflows"], result["connected"]
        assert isinstance(overflows, float)
        assert isinstance(connected, float)
        for s in slow_holder:
            s.close()
        api.send_signal(signal.SIGTERM)
        api_code = api.wait(30)
        ingest.send_signal(signal.SIGTERM)
        ingest.wait(60)
    finally:
        for proc in (api, ingest):
            if proc.poll() is None:
                proc.kill()
        mosq.stop()
        influx.stop()
    stamps = result["stamps"]
    assert isinstance(stamps, list)
    slow_at = result["slow_at"]
    assert isinstance(slow_at, float)
    before: list[float] = []
    after: list[float] = []
    missing = 0
    for c in stream_clients:
        missing += max(0, n - c.count)
        for i, seen_at in zip(c.which, c.when, strict=True):
            (before if stamps[i] < slow_at else after).append(seen_at - stamps[i])
    every = before + after
    windows: dict[int, list[float]] = {}
    for c in stream_clients[:1]:
        for i, seen_at in zip(c.which, c.when, strict=True):
            windows.setdefault(int(stamps[i] - stamps[0]) // 10, []).append(seen_at - stamps[i])
    for w, lat in sorted(windows.items()):
        print(
            f"  {w * 10:>4}-{w * 10 + 10:<4}s: p50 {percentile(lat, 0.5) * 1000:,.0f} ms, "
            f"p99 {percentile(lat, 0.99) * 1000:,.0f} ms (first client)"
        )

    def ms(values: list[float], p: float) -> str:
        return f"{percentile(values, p) * 1000:,.0f} ms"

    mbs = [m for _, m in rss]
    rows = [
        (
            f"publish-to-client latency, {clients} clients, {rate:,.0f} uplinks/s, "
            f"{duration:,.0f} s",
            f"**p50 {ms(every, 0.5)}, p99 {ms(every, 0.99)}**",
            f"max {ms(every, 1.0)}; {sum(c.count for c in stream_clients):,} events read in "
            f"all, latency of every {SAMPLE}th uplink at every client ({len(every):,}); "
            f"{missing:,} not read by the end (target p99 < 1 s)",
        ),
        (
            "the same, before the slow client came / after",
            f"p99 {ms(before, 0.99)} / {ms(after, 0.99)}",
            (
                f"p50 {ms(before, 0.5)} / {ms(after, 0.5)}; the slow client (reads nothing) was "
                f"{'overflowed and dropped' if overflows >= 1 else '**not** overflowed'} "
                f"({overflows:.0f} overflow, {connected:.0f} clients connected at the end)"
            )
            if slow
            else f"p50 {ms(before, 0.5)} / {ms(after, 0.5)}; `--no-slow`: no slow client came",
        ),
        (
            "API RSS, sampled every 5 s",
            f"{mbs[0]:.0f} MB at start, {mbs[-1]:.0f} MB at the end",
            f"min {min(mbs):.0f} MB, max {max(mbs):.0f} MB over {rss[-1][0]:.0f} s; "
            f"exit status {api_code} after SIGTERM with the streams open",
        ),
        (
            "CPU used (share of one core, from the first publish until all events were read)",
            f"API {cpu['api'] / wall:.0%}",
            f"ingest {cpu['ingest'] / wall:.0%}, the {clients} clients (one process) "
            f"{cpu['clients'] / wall:.0%}",
        ),
    ]
    return (
        rows,
        f"{clients} stream clients (`events=up`), {rate:,.0f} uplinks/s for {duration:,.0f} s",
    )


def table(rows: list[tuple[str, str, str]], workload: str, duration: float) -> str:
    flag = f" --duration {duration:g}" if duration != 60 else ""
    head = (
        f"Measured {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())} on {os.cpu_count()} "
        f"CPUs (load average {os.getloadavg()[0]:.1f} at the end: the machine is shared); "
        "Mosquitto, InfluxDB, ingest, the API, the publisher and the clients on the same "
        f"machine.\nWorkload: {workload}. Run: `.venv/bin/python bench/stream_bench.py"
        f"{flag} --write`.\n\n| what | figure | note |\n| --- | --- | --- |\n"
    )
    return head + "\n".join(f"| {a} | {b} | {c} |" for a, b, c in rows) + "\n"


def write_section(text: str) -> None:
    path = ROOT / "BENCHMARKS.md"
    doc = path.read_text()
    section = f"## Stream\n\n{text}\n"
    m = re.search(r"^## Stream\n.*?(?=^## |\Z)", doc, flags=re.S | re.M)
    doc = doc[: m.start()] + section + doc[m.end() :] if m else doc.rstrip("\n") + "\n\n" + section
    path.write_text(doc)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--clients", type=int, default=100)
    parser.add_argument("--rate", type=float, default=1000.0, help="uplinks a second")
    parser.add_argument("--duration", type=float, default=60.0, help="seconds of publishing")
    parser.add_argument("--write", action="store_true", help="update BENCHMARKS.md ## Stream")
    parser.add_argument("--no-slow", action="store_true", help="no client that reads nothing")
    args = parser.parse_args()
    rows, workload = run(args.clients, args.rate, args.duration, not args.no_slow)
    text = table(rows, workload, args.duration)
    print(text)
    if args.write:
        write_section(text)


if __name__ == "__main__":
    main()
