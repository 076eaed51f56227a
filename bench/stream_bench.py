"""`GET /v1/stream` under load: 100 clients, 1,000 uplinks/s, p99 publish-to-client, API RSS.

Run: `.venv/bin/python bench/stream_bench.py` (`--duration 600` for the 10-minute run, `--write`
to put the table in BENCHMARKS.md, section `## Stream`). It starts a fresh Mosquitto and
InfluxDB under a temporary folder, `telemetry ingest` and `telemetry api` as subprocesses, then:

1. opens `--clients` stream connections, spread over `--procs` reader processes (asyncio, raw
   sockets: parsing 100,000 events a second with an HTTP library would make the clients the
   bottleneck; one process for all 100 was itself the tail, see BENCHMARKS.md);
2. publishes `--rate` uplinks a second for `--duration` seconds from a separate process
   (`bench/rawpub.py`, QoS 1, paced, each publish time-stamped);
3. a third of the way in, connects one more client that reads nothing (a receive buffer of
   4 KiB): it must be overflowed and dropped, and the others must not notice (`--no-slow`:
   not, for comparison);
4. latency: from each uplink's publish to its `up` event read by each client (event bodies
   matched by device and seq), p50/p99/max, before and after the slow client came, per reader
   process and for the worst client;
5. where the time goes: a plain MQTT subscriber to `events/+/+/up` times each uplink's event
   at the broker (publish -> ingest -> broker), and the API's histogram
   `telemetry_api_stream_delay_seconds` times its fan-out (hub -> the end of the write);
6. the API's RSS sampled every 5 s.
"""

from __future__ import annotations

import argparse
import array
import asyncio
import bisect
import gc
import json
import multiprocessing
import os
import re
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from multiprocessing.connection import Connection
from multiprocessing.process import BaseProcess
from pathlib import Path

import httpx
import paho.mqtt.client as paho

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

from benchmarks_md import write_section  # noqa: E402
from ingest_bench import cpu_seconds, make_uplinks, metric, publish  # noqa: E402

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


def scrape(base: str) -> str:
    """The API's `/metrics` text, read once for every figure taken from it at one moment."""
    return httpx.get(f"{base}/metrics", headers={"Authorization": f"Bearer {KEY}"}).text


def stuck_client(port: int) -> socket.socket:
    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    s.connect(("127.0.0.1", port))
    s.sendall(f"GET /v1/stream HTTP/1.1\r\nHost: b\r\nAuthorization: Bearer {KEY}\r\n\r\n".encode())
    return s


# What a reader process sends back for each client: its count, and the sampled uplinks' indexes
# and read times as the bytes of their arrays (a pipe carries them cheaply).
Samples = tuple[int, bytes, bytes]


def read_streams(
    port: int, clients: int, index: dict[tuple[str, int], int], n: int, conn: Connection
) -> None:
    """Reader process: `clients` streams; "opened" once all are, samples after "drain"."""
    # The clients keep millions of samples: the cyclic collector's full passes over them
    # paused the reading for longer and longer (measured: p99 from 0.4 to 1.7 s over 40 s,
    # in this process, not in the API). They make no cycles: collect none.
    gc.disable()
    streams = [Client(index) for _ in range(clients)]

    async def main() -> None:
        opened = [asyncio.Event() for _ in streams]
        tasks = [asyncio.create_task(c.run(port, o)) for c, o in zip(streams, opened, strict=True)]
        await asyncio.wait_for(asyncio.gather(*(o.wait() for o in opened)), 60)
        conn.send("opened")
        await asyncio.get_running_loop().run_in_executor(None, conn.recv)  # "drain"
        wait_until = time.monotonic() + 30  # the last events: until all are read, or 30 s
        while time.monotonic() < wait_until and any(  # noqa: ASYNC110  # plain counters
            c.count < n for c in streams
        ):
            await asyncio.sleep(0.1)
        for t in tasks:
            t.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)

    asyncio.run(main())
    samples: list[Samples] = [(c.count, c.which.tobytes(), c.when.tobytes()) for c in streams]
    conn.send((samples, time.process_time()))


def probe_broker(
    host: str, port: int, index: dict[tuple[str, int], int], n: int, conn: Connection
) -> None:
    """Probe process: when each sampled uplink's `up` event reached a plain MQTT subscriber."""
    which, when = array.array("I"), array.array("d")
    count = [0]

    def on_message(_c: object, _u: object, message: paho.MQTTMessage) -> None:
        now = time.time()
        count[0] += 1
        m = EVENT_RE.search(message.payload)
        i = index.get((m.group(1).decode(), int(m.group(2))), -1) if m else -1
        if i >= 0 and i % SAMPLE == 0:
            which.append(i)
            when.append(now)

    subscribed = threading.Event()
    version = paho.CallbackAPIVersion.VERSION2  # type: ignore[attr-defined]  # re-exported
    client = paho.Client(version, client_id=f"probe-{os.getpid()}")
    client.on_message = on_message
    client.on_subscribe = lambda *_a: subscribed.set()
    client.connect(host, port)
    client.subscribe("events/+/+/up", qos=1)  # as the API subscribes
    client.loop_start()
    subscribed.wait(30)
    conn.send("opened")
    conn.recv()  # "drain"
    wait_until = time.monotonic() + 30
    while time.monotonic() < wait_until and count[0] < n:
        time.sleep(0.1)
    client.loop_stop()
    client.disconnect()
    conn.send(((count[0], which.tobytes(), when.tobytes()), time.process_time()))


def histogram(text: str, name: str) -> list[tuple[float, float]]:
    """An API histogram's buckets: (upper bound, cumulative count)."""
    out = []
    for m in re.finditer(rf'^{name}_bucket\{{le="([^"]+)"\}} (\S+)', text, re.M):
        out.append((float(m.group(1)), float(m.group(2))))
    return out


LAG = "telemetry_api_loop_lag_seconds"


def late(buckets: list[tuple[float, float]], bound: float) -> float:
    """How many observations of a histogram were over `bound` (one of its buckets)."""
    under = dict(buckets)
    return under.get(float("inf"), 0.0) - under.get(bound, 0.0)


def bucket_quantile(buckets: list[tuple[float, float]], p: float) -> str:
    """The bucket bound under which a share `p` of the writes fell (a bound, not interpolated)."""
    if not buckets or buckets[-1][1] == 0:
        return "n/a"
    total = buckets[-1][1]
    for bound, count in buckets:
        if count >= total * p:
            return f"≤ {bound * 1000:,.0f} ms" if bound != float("inf") else "> 5 s"
    return "n/a"


def print_windows(
    stamps: list[float],
    ingress: list[tuple[float, float, float]],
    readers: list[tuple[list[Samples], float]],
    probe: Samples,
) -> None:
    """Latency per 10 s of publishing, at the clients and at the broker, and the API's intake."""
    at_clients: dict[int, list[float]] = {}
    at_broker: dict[int, list[float]] = {}
    for into, samples in [(at_broker, probe)] + [(at_clients, c) for r, _ in readers for c in r]:
        b, a = latencies(stamps, float("inf"), samples)
        which = array.array("I")
        which.frombytes(samples[1])
        for i, lat in zip(which, b + a, strict=True):
            into.setdefault(int(stamps[i] - stamps[0]) // 10, []).append(lat)
    for w in sorted(at_clients):
        print(
            f"  {w * 10:>4}-{w * 10 + 10:<4}s: clients p50 "
            f"{percentile(at_clients[w], 0.5) * 1000:,.0f} ms, "
            f"p99 {percentile(at_clients[w], 0.99) * 1000:,.0f} ms; broker p99 "
            f"{percentile(at_broker.get(w, []), 0.99) * 1000:,.0f} ms"
        )
    for when, got, stalls in ingress:
        published = bisect.bisect_right(stamps, when)
        if 0 < published < len(stamps):
            print(
                f"  at {when - stamps[0]:5.0f} s: {published:,} published, the API had "
                f"{got:,.0f} (behind by {published - got:,.0f}); loop late > 0.1 s "
                f"{stalls:.0f} times so far"
            )


def percentile(values: list[float], p: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(len(ordered) * p))] if ordered else float("nan")


def latencies(
    stamps: list[float], slow_at: float, samples: Samples
) -> tuple[list[float], list[float]]:
    """One client's (or the probe's) sampled latencies, before and after the slow client came."""
    which, when = array.array("I"), array.array("d")
    which.frombytes(samples[1])
    when.frombytes(samples[2])
    before: list[float] = []
    after: list[float] = []
    for i, seen_at in zip(which, when, strict=True):
        (before if stamps[i] < slow_at else after).append(seen_at - stamps[i])
    return before, after


def run(  # noqa: PLR0912, PLR0915  # one scenario, top to bottom
    clients: int, procs: int, rate: float, duration: float, slow: bool
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
    # (when, `up` events the API had received by then, its loop's timers late by over 0.1 s)
    ingress: list[tuple[float, float, float]] = []
    workers: list[tuple[BaseProcess, Connection]] = []
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
        # Forked before any thread of ours starts: each inherits the index, none copies it.
        fork = multiprocessing.get_context("fork")
        shares = [clients // procs + (1 if k < clients % procs else 0) for k in range(procs)]
        for k, share in enumerate([-1, *shares]):  # -1: the broker probe
            here, there = fork.Pipe()
            proc: BaseProcess
            if k == 0:
                args: tuple[object, ...] = (mosq.host, mosq.port, index, n, there)
                proc = fork.Process(target=probe_broker, args=args, daemon=True)
            else:
                proc = fork.Process(
                    target=read_streams, args=(port, share, index, n, there), daemon=True
                )
            proc.start()
            workers.append((proc, here))
        for _, conn in workers:
            if not conn.poll(90) or conn.recv() != "opened":
                raise RuntimeError("a reader process did not open its streams")
        stop_rss = threading.Event()

        def sample() -> None:
            started = time.monotonic()
            while not stop_rss.is_set():
                rss.append((time.monotonic() - started, rss_mb(api.pid)))
                text = scrape(base)  # one request each 5 s: the run is what is measured
                up = metric(text, 'telemetry_api_stream_events_total{kind="up"}')
                ingress.append((time.time(), up, late(histogram(text, LAG), 0.1)))
                stop_rss.wait(5)

        sampler = threading.Thread(target=sample, daemon=True)
        sampler.start()
        cpu0 = {name: cpu_seconds(p.pid) for name, p in (("api", api), ("ingest", ingest))}
        result: dict[str, object] = {}
        pub = threading.Thread(
            target=lambda: result.update(publish(mosq, uplinks, "uplink", tmp, rate))
        )
        pub.start()
        time.sleep(duration / 3)
        slow_holder = [stuck_client(port)] if slow else []
        slow_at = time.time()
        pub.join()
        stamps = result["stamps"]
        assert isinstance(stamps, list)
        for _, conn in workers:
            conn.send("drain")
        gathered = []
        for _, conn in workers:
            if not conn.poll(120):
                raise RuntimeError("a reader process sent nothing back")
            gathered.append(conn.recv())
        stop_rss.set()
        cpu = {
            name: cpu_seconds(p.pid) - cpu0[name] for name, p in (("api", api), ("ingest", ingest))
        }
        wall = time.time() - float(stamps[0])
        text = scrape(base)
        overflows = metric(text, "telemetry_api_stream_overflows_total")
        connected = metric(text, "telemetry_api_stream_clients")
        fanout = histogram(text, "telemetry_api_stream_delay_seconds")
        lag = histogram(text, LAG)
        for s in slow_holder:
            s.close()
        api.send_signal(signal.SIGTERM)
        api_code = api.wait(30)
        ingest.send_signal(signal.SIGTERM)
        ingest.wait(60)
    finally:
        for proc, _ in workers:
            if proc.is_alive():
                proc.kill()
        for p in (api, ingest):
            if p.poll() is None:
                p.kill()
        mosq.stop()
        influx.stop()

    probe_samples, _ = gathered[0]
    probe_before, probe_after = latencies(stamps, slow_at, probe_samples)
    probe_all = probe_before + probe_after
    before: list[float] = []
    after: list[float] = []
    missing = read = 0
    client_p99: list[float] = []
    client_cpu = 0.0
    for k, (samples, cpu_s) in enumerate(gathered[1:]):
        client_cpu += cpu_s
        mine: list[float] = []
        for one in samples:
            read += one[0]
            missing += max(0, n - one[0])
            b, a = latencies(stamps, slow_at, one)
            before += b
            after += a
            mine += b + a
            client_p99.append(percentile(b + a, 0.99))
        print(
            f"  reader process {k} ({len(samples)} clients): "
            f"p50 {percentile(mine, 0.5) * 1000:,.0f} ms, "
            f"p99 {percentile(mine, 0.99) * 1000:,.0f} ms, CPU {cpu_s / wall:.0%}"
        )
    every = before + after
    print_windows(stamps, ingress, gathered[1:], gathered[0][0])

    def ms(values: list[float], p: float) -> str:
        return f"{percentile(values, p) * 1000:,.0f} ms"

    client_p99.sort()
    mbs = [m for _, m in rss]
    writes = fanout[-1][1] if fanout else 0
    rows = [
        (
            f"publish-to-client latency, {clients} clients in {procs} reader processes, "
            f"{rate:,.0f} uplinks/s, {duration:,.0f} s",
            f"**p50 {ms(every, 0.5)}, p99 {ms(every, 0.99)}**",
            f"max {ms(every, 1.0)}; {read:,} events read in all, latency of every {SAMPLE}th "
            f"uplink at every client ({len(every):,}); {missing:,} not read by the end "
            "(target p99 < 1 s)",
        ),
        (
            "the same, before the slow client came / after",
            f"p99 {ms(before, 0.99)} / {ms(after, 0.99)}",
            (
                f"p50 {ms(before, 0.5)} / {ms(after, 0.5)}; the slow client (reads nothing) was "
                f"{'overflowed and dropped' if overflows >= 1 else '**not** overflowed'} "
                f"({overflows:.0f} overflow, {connected:.0f} streams still open once the readers "
                "closed)"
            )
            if slow
            else f"p50 {ms(before, 0.5)} / {ms(after, 0.5)}; `--no-slow`: no slow client came",
        ),
        (
            "each client's own p99: best / median / worst",
            f"{client_p99[0] * 1000:,.0f} / {client_p99[len(client_p99) // 2] * 1000:,.0f} / "
            f"{client_p99[-1] * 1000:,.0f} ms",
            "a tail in a few clients only would show as a worst far above the median",
        ),
        (
            "publish to the `up` event at the broker (a plain MQTT subscriber)",
            f"p50 {ms(probe_all, 0.5)}, p99 {ms(probe_all, 0.99)}",
            f"max {ms(probe_all, 1.0)}: publisher, Mosquitto, ingest (its batching and write), "
            "Mosquitto again; the API and the clients come after",
        ),
        (
            "the API's fan-out: hub to the end of the write (`telemetry_api_stream_delay_seconds`)",
            f"p50 {bucket_quantile(fanout, 0.5)}, p99 {bucket_quantile(fanout, 0.99)}",
            f"{writes:,.0f} writes, oldest event of each; a histogram bucket's bound, not an "
            "exact figure",
        ),
        (
            "the API's event loop: how late a 50 ms timer fires (`telemetry_api_loop_lag_seconds`)",
            f"p50 {bucket_quantile(lag, 0.5)}, p99 {bucket_quantile(lag, 0.99)}",
            f"{late(lag, 0.1):,.0f} of {lag[-1][1] if lag else 0:,.0f} samples late by over "
            f"100 ms, {late(lag, 0.5):,.0f} by over 500 ms",
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
            f"ingest {cpu['ingest'] / wall:.0%}, the {clients} clients ({procs} processes) "
            f"{client_cpu / wall:.0%}",
        ),
    ]
    return (
        rows,
        f"{clients} stream clients (`events=up`) in {procs} reader processes, "
        f"{rate:,.0f} uplinks/s for {duration:,.0f} s",
    )


def table(rows: list[tuple[str, str, str]], workload: str, duration: float, procs: int) -> str:
    flag = f" --duration {duration:g}" if duration != 60 else ""
    flag += f" --procs {procs}" if procs != 4 else ""
    head = (
        f"Measured {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())} on {os.cpu_count()} "
        f"CPUs (load average {os.getloadavg()[0]:.1f} at the end: the machine is shared); "
        "Mosquitto, InfluxDB, ingest, the API, the publisher and the clients on the same "
        f"machine.\nWorkload: {workload}. Run: `.venv/bin/python bench/stream_bench.py"
        f"{flag} --write`.\n\n| what | figure | note |\n| --- | --- | --- |\n"
    )
    return head + "\n".join(f"| {a} | {b} | {c} |" for a, b, c in rows) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--clients", type=int, default=100)
    parser.add_argument("--procs", type=int, default=4, help="reader processes for the clients")
    parser.add_argument("--rate", type=float, default=1000.0, help="uplinks a second")
    parser.add_argument("--duration", type=float, default=60.0, help="seconds of publishing")
    parser.add_argument("--write", action="store_true", help="update BENCHMARKS.md ## Stream")
    parser.add_argument("--no-slow", action="store_true", help="no client that reads nothing")
    args = parser.parse_args()
    rows, workload = run(args.clients, args.procs, args.rate, args.duration, not args.no_slow)
    text = table(rows, workload, args.duration, args.procs)
    print(text)
    if args.write:
        write_section("Stream", f"## Stream\n\n{text}")


if __name__ == "__main__":
    main()
