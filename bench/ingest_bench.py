"""Ingest throughput and memory, next to baselines measured in the same run.

Run: `.venv/bin/python bench/ingest_bench.py` (add `--write` to put the table in BENCHMARKS.md,
section `## Ingest`). It starts a fresh Mosquitto and InfluxDB under a temporary folder, then:

1. baseline: raw InfluxDB writes of the uplinks' points (2 per uplink), 5,000 a batch;
2. `telemetry ingest` (a subprocess, default settings) drains a backlog of N: from the first
   uplinks queryable until all are (its start-up left out); then a bare paho subscriber
   (auto-ack, no work) drains the same backlog, from its reconnect;
3. three live rounds, each a new stream of N uplinks published at full speed: first to the bare
   subscriber (first publish until it has received the last), then to the running ingester
   (first publish until all N are queryable: the sustained end-to-end rate). Issue 3's figure
   is the ingester's rate over the bare subscriber's, round by round; the median is reported,
   because the machine is shared and one round can be slowed by a neighbour;
4. latency: a paced publisher sends at half the sustained rate for about 10 s; p50/p99 from
   each publish until InfluxDB counts the uplink; then the ingester's peak RSS and exit status.

`--events`: instead, the cost of publishing DESIGN section 9's events, in one run: rounds with
events off, on, and off with the same events published by a bare publisher (the broker's part),
see `bench/ingest_events.py` (`--write` puts them under `## Ingest events`); `--profile PATH`
profiles every round's ingester.

Publishing is done by a separate process (`--publish` mode of this script) with
`bench/rawpub.py`: pre-encoded packets, far faster than the broker takes them in, so the
publisher cannot be what limits (a paho publisher reached only about 4,000 msg/s here, less
than the ingester takes). The table gives the publisher's rate next to each live figure.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import re
import signal
import struct
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import httpx
import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

from benchmarks_md import cpu_model, write_section  # noqa: E402
from rawpub import RawPublisher  # noqa: E402

from telemetry.servers import Influxd, Mosquitto  # noqa: E402

_POLL = httpx.Client(timeout=30)
TELEMETRY = str(Path(sys.executable).with_name("telemetry"))
TYPES = ("wristband", "weather_station", "scale")


def make_uplinks(count: int, devices: int, t_end: int) -> list[tuple[str, bytes, str]]:
    """(topic suffix, body, line-protocol of its 2 points) for `count` uplinks."""
    per_device = -(-count // devices)
    out = []
    for i in range(count):
        d, k = i % devices, i // devices
        device = f"{0x100000 + d:X}"
        dtype = TYPES[d % 3]
        t = t_end - per_device + k
        if dtype == "wristband":
            data = struct.pack(">BIHBB", 60 + k % 60, 100 * k, 10 * k, k % 4, 80)
        elif dtype == "weather_station":
            data = struct.pack(">hHHHB", 2150, 450, 800, 10130, 80)
        else:
            data = struct.pack(">HHHB", 7000 + k, 200, 230, 80)
        body = {
            "device": device,
            "time": t,
            "seqNumber": k % 4096,
            "data": data.hex(),
            "station": "0A1B",
            "rssi": -110.5,
            "snr": 8.0,
        }
        lines = (
            f"{dtype},device={device} seq={k}i,rssi=-110.5 {t}000000000\n"
            f'uplink,device={device},type={dtype} data="{data.hex()}",seq={k}i {t}000000000'
        )
        out.append((f"{dtype}/{device}", json.dumps(body).encode(), lines))
    return out


def publish_main(
    path: str,
    host: str,
    port: int,
    prefix: str,
    rate: float = 0.0,
    *,
    v5: bool = False,
    start_at: float = 0.0,
) -> None:
    """Child-process mode: publish every line of `path` at QoS 1 (at `rate`/s if given; over
    MQTT 5 if `v5`, as the ingester's events; from the wall-clock time `start_at` if given).

    Prints one JSON object: the overall rate (until the last PUBACK), the wall-clock start,
    its CPU seconds from then, and (paced mode) the wall-clock time of every publish, for
    latency.
    """
    items = [json.loads(line) for line in Path(path).read_text().splitlines()]
    pub = RawPublisher(host, port, f"bench-pub-{os.getpid()}", v5=v5)
    stamps: list[float] = []
    messages = [(f"{prefix}/{t}", b.encode()) for t, b in items]
    started = pub.publish_all(messages, rate, stamps, start_at)
    elapsed, cpu = time.time() - started, time.process_time() - pub.started_cpu
    pub.close()
    out = {
        "rate": len(items) / elapsed,
        "start": started,
        "cpu": cpu,
        "stamps": stamps if rate else [],
    }
    print(json.dumps(out))


def publish(
    mosq: Mosquitto,
    uplinks: list[tuple[str, bytes, str]],
    prefix: str,
    tmp: Path,
    rate: float = 0.0,
    *,
    v5: bool = False,
    start_at: float = 0.0,
) -> dict[str, Any]:
    """Publish `uplinks` (topic suffix, body) under `prefix` from a child process (`rawpub`),
    as `publish_main` says; what it prints."""
    path = tmp / f"pub-{prefix}.jsonl"
    path.write_text("\n".join(json.dumps([t, b.decode()]) for t, b, _ in uplinks))
    argv = [sys.executable, __file__, "--publish", str(path), mosq.host, str(mosq.port), prefix]
    argv += [str(rate), str(start_at), *(["v5"] if v5 else [])]
    out = subprocess.run(argv, capture_output=True, text=True, check=True)
    result: dict[str, Any] = json.loads(out.stdout)
    return result


class BareSubscriber:
    """A persistent paho session doing nothing (auto-ack): the ceiling of a Python consumer."""

    def __init__(self, mosq: Mosquitto, tmp: Path) -> None:
        self.mosq, self.tmp = mosq, tmp
        self.received = 0
        self.target = 0
        self.done_at = 0.0
        self.client = self._connect()
        self.client.loop_start()
        self.client.subscribe("base/#", qos=1)
        time.sleep(0.5)  # benchmark set-up, not a test: let the SUBACK arrive

    def _on_message(self, c: mqtt.Client, u: object, m: mqtt.MQTTMessage) -> None:
        self.received += 1
        if self.received == self.target:
            self.done_at = time.time()

    def _connect(self) -> mqtt.Client:
        c = mqtt.Client(CallbackAPIVersion.VERSION2, client_id="bench-bare", clean_session=False)
        c.on_message = self._on_message
        c.connect(self.mosq.host, self.mosq.port)
        return c

    def _wait(self) -> None:
        deadline = time.monotonic() + 300
        while self.received < self.target and time.monotonic() < deadline:
            time.sleep(0.01)
        if self.received < self.target:
            raise SystemExit(f"bare subscriber: {self.received} of {self.target} received")

    def live(self, uplinks: list[tuple[str, bytes, str]]) -> tuple[float, float]:
        """(msg/s from the first publish until the last is received, publisher msg/s)."""
        self.target = self.received + len(uplinks)
        pub = publish(self.mosq, uplinks, "base", self.tmp)
        self._wait()
        return len(uplinks) / (self.done_at - pub["start"]), pub["rate"]

    def drain(self, backlog: list[tuple[str, bytes, str]]) -> float:
        """msg/s for a backlog queued while the session was away, from the reconnect."""
        self.client.loop_stop()
        self.client.disconnect()
        publish(self.mosq, backlog, "base", self.tmp)
        self.target = self.received + len(backlog)
        self.client = self._connect()
        started = time.time()
        self.client.loop_start()
        self._wait()
        return len(backlog) / (self.done_at - started)

    def close(self) -> None:
        self.client.loop_stop()
        self.client.disconnect()


def raw_writes(influx: Influxd, uplinks: list[tuple[str, bytes, str]]) -> float:
    influx.create_database("raw")
    lines = "\n".join(line for _, _, line in uplinks).split("\n")
    started = time.perf_counter()
    with httpx.Client(base_url=influx.url, timeout=60) as http:
        for i in range(0, len(lines), 5000):
            r = http.post("/write", params={"db": "raw"}, content="\n".join(lines[i : i + 5000]))
            r.raise_for_status()
    return len(lines) / (time.perf_counter() - started)


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of a process so far (/proc/<pid>/stat, fields 14 and 15)."""
    return sum(cpu_split(pid))


def cpu_split(pid: int) -> tuple[float, float]:
    """(user, system) CPU time of a process so far, in seconds."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    tick = os.sysconf("SC_CLK_TCK")
    return int(fields[11]) / tick, int(fields[12]) / tick


def metric(text: str, name: str) -> float:
    """The value of sample `name` (with its labels, if any) in a `/metrics` text; NaN if absent."""
    for line in text.splitlines():
        if line.startswith(name + " "):
            return float(line.split()[1])
    return float("nan")


def peak_rss_mb(pid: int) -> float:
    text = Path(f"/proc/{pid}/status").read_text()
    m = re.search(r"VmHWM:\s+(\d+) kB", text)
    return int(m.group(1)) / 1024 if m else float("nan")


def start_ingest(
    mosq: Mosquitto,
    influx: Influxd,
    tmp: Path,
    profile: str | None = None,
    *,
    events: bool = True,
    client_id: str = "bench-ingest",
    metrics_port: int = 0,
    topic_prefix: str = "uplink",
    share_group: str | None = None,
) -> subprocess.Popen[bytes]:
    """`telemetry ingest` as a subprocess; under cProfile (stats to `profile`) if given; the
    one member of `share_group` if given."""
    env = (
        os.environ
        | ({"TELEMETRY_MQTT_SHARE_GROUP": share_group} if share_group else {})
        | {
            "TELEMETRY_INGEST_EVENTS": "true" if events else "false",
            "TELEMETRY_MQTT_CLIENT_ID": client_id,
            "TELEMETRY_MQTT_TOPIC_PREFIX": topic_prefix,
            "TELEMETRY_MQTT_URL": mosq.url,
            "TELEMETRY_INFLUX_URL": influx.url,
            "TELEMETRY_INFLUX_DATABASE": "bench",
            "TELEMETRY_INGEST_SPOOL_DIR": str(tmp / "spool"),
            "TELEMETRY_INGEST_METRICS_PORT": str(metrics_port),
            "TELEMETRY_INGEST_RATE_BURST": "100000",
            "TELEMETRY_LOG_LEVEL": "WARNING",
        }
    )
    argv = [TELEMETRY, "ingest"]
    if profile:
        argv = [sys.executable, "-m", "cProfile", "-o", profile, *argv]
    return subprocess.Popen(argv, env=env, stderr=(tmp / "ingest.log").open("ab"))


def wait_stored(
    influx: Influxd, uplinks: list[tuple[str, bytes, str]], *, first: bool, timeout: float = 600
) -> tuple[float, int, float]:
    """(when the first uplinks were queryable, how many were then, when all were): wall clock.

    The ingester stores in arrival order. The first uplinks published share the earliest time
    and the last ones the latest, so polling those two time slots keeps each query small: a
    count over everything stored, every few ms, would load InfluxDB more and more as the run
    goes. Once the last slot is complete, one count over the whole range confirms all are there.
    Polled every 25 ms (the resolution); the first slot only if `first`.
    """
    times = [json.loads(b)["time"] for _, b, _ in uplinks]
    lo, hi = min(times), max(times)
    in_last = times.count(hi)
    deadline = time.monotonic() + timeout
    first_at, first_count = 0.0, 0
    while time.monotonic() < deadline:
        if first and not first_at and count_between(influx, lo, lo):
            first_at = time.time()
            first_count = count_between(influx, lo, hi)
        if (not first or first_at) and count_between(influx, hi, hi) >= in_last:
            done_at = time.time()
            if count_between(influx, lo, hi) >= len(uplinks):
                return first_at or done_at, first_count, done_at
        time.sleep(0.025)
    raise SystemExit(f"ingest stored {count_between(influx, lo, hi)} of {len(uplinks)} in time")


def count_between(influx: Influxd, lo: int, hi: int) -> int:
    """Uplinks stored with a time in [lo, hi] seconds (cheap: a narrow time range)."""
    q = f"SELECT count(seq) FROM uplink WHERE time >= {lo}s AND time <= {hi}s"  # noqa: S608
    # One keep-alive client for all polls: `Influxd.query` makes a client (and an SSL
    # context) per call, which cost the benchmark process half a core at this polling rate.
    r = _POLL.get(f"{influx.url}/query", params={"q": q, "db": "bench"}).json()
    series = r["results"][0].get("series")
    return int(series[0]["values"][0][1]) if series else 0


def latency(
    mosq: Mosquitto, influx: Influxd, uplinks: list[tuple[str, bytes, str]], rate: float, tmp: Path
) -> tuple[float, float]:
    """p50 and p99 (s) from each paced publish until InfluxDB counts that uplink.

    The ingester stores in arrival order, so uplink k is queryable once the count reaches k+1;
    the count is polled every 20 ms (its resolution).
    """
    times = [json.loads(b)["time"] for _, b, _ in uplinks]
    lo, hi = min(times), max(times)
    samples: list[tuple[float, int]] = []
    with ThreadPoolExecutor(1) as pool:
        pub = pool.submit(publish, mosq, uplinks, "uplink", tmp, rate)
        deadline = time.monotonic() + 120 + len(uplinks) / rate
        while time.monotonic() < deadline:
            c = count_between(influx, lo, hi)
            samples.append((time.time(), c))
            if c >= len(uplinks):
                break
            time.sleep(0.02)
        stamps = pub.result()["stamps"]
    lat, i = [], 0
    for k, sent in enumerate(stamps):
        while i < len(samples) and samples[i][1] < k + 1:
            i += 1
        if i == len(samples):
            raise SystemExit(f"latency run: only {samples[-1][1]} of {len(uplinks)} stored")
        lat.append(max(0.0, samples[i][0] - sent))
    lat.sort()
    return lat[len(lat) // 2], lat[min(len(lat) - 1, int(len(lat) * 0.99))]


ROUNDS = 3  # live rounds, bare subscriber and ingester in turn: the medians are reported


def median(values: list[float]) -> float:
    return sorted(values)[len(values) // 2]


def run(
    n: int,
    devices: int,
    profile: str | None,
    *,
    events: bool = True,
    share_group: str | None = None,
) -> tuple[list[tuple[str, str, str]], str]:
    tmp = Path(tempfile.mkdtemp(prefix="ingest-bench-"))
    mosq, influx = Mosquitto(tmp / "mosquitto"), Influxd(tmp / "influxd")
    mosq.start()
    influx.start()
    try:
        # Every set is new transmissions, each later than the one before (the ingester looks
        # up InfluxDB only for times at or below what was stored when it started).
        now, span = int(time.time()), -(-n // devices) + 5
        backlog = make_uplinks(n, devices, now - 60 - (ROUNDS + 1) * span)
        live_sets = [
            make_uplinks(n, devices, now - 60 - (ROUNDS - r) * span) for r in range(ROUNDS)
        ]
        raw = raw_writes(influx, backlog)
        bare_sub = BareSubscriber(mosq, tmp)
        # The ingester subscribes once, so the backlog is queued for its session.
        proc = start_ingest(mosq, influx, tmp, events=events, share_group=share_group)
        time.sleep(2)  # set-up: let it connect and subscribe (not a measured interval)
        proc.send_signal(signal.SIGTERM)
        proc.wait(30)
        pub_rate = publish(mosq, backlog, "uplink", tmp)["rate"]
        proc = start_ingest(mosq, influx, tmp, profile, events=events, share_group=share_group)
        cpu_start = cpu_seconds(proc.pid)
        first_at, first_count, done = wait_stored(influx, backlog, first=True)
        drain_cpu_us = (cpu_seconds(proc.pid) - cpu_start) / n * 1e6
        drain = (n - first_count) / (done - first_at)  # from the first stored: start-up left out
        bare_drain = bare_sub.drain(backlog)
        # Live rounds: the same stream to the bare subscriber, then to the ingester.
        bare_live, ingest_live, ratios, cpu_us, pub_rates = [], [], [], [], []
        for uplinks in live_sets:
            rate, pub = bare_sub.live(uplinks)
            bare_live.append(rate)
            pub_rates.append(pub)
            cpu_before = cpu_seconds(proc.pid)
            with ThreadPoolExecutor(1) as pool:
                sent = pool.submit(publish, mosq, uplinks, "uplink", tmp)
                _, _, done = wait_stored(influx, uplinks, first=False)
                live_pub = sent.result()
            cpu_us.append((cpu_seconds(proc.pid) - cpu_before) / n * 1e6)
            pub_rates.append(live_pub["rate"])
            ingest_live.append(n / (done - live_pub["start"]))
            ratios.append(ingest_live[-1] / rate)
        bare_sub.close()
        sustained = median(ingest_live)
        # Latency at half the sustained rate, for about 10 s. Stamped just after the wall clock,
        # as live traffic is: older times than those stored make the ingester look up InfluxDB
        # for copies already stored (a backfill, not the live case measured here).
        half = sustained / 2
        m = max(1000, int(half * 10))
        paced = make_uplinks(m, devices, int(time.time()) + 1 - (-m // devices))
        p50, p99 = latency(mosq, influx, paced, half, tmp)
        rss = peak_rss_mb(proc.pid)
        proc.send_signal(signal.SIGTERM)
        code = proc.wait(60)
    finally:
        mosq.stop()
        influx.stop()

    def each(values: list[float], fmt: str = "{:,.0f}") -> str:
        return " / ".join(fmt.format(v) for v in values)

    rows = [
        (
            "bare paho subscriber, auto-ack, no work (baseline): live stream, median of "
            f"{ROUNDS} rounds",
            f"{median(bare_live):,.0f} msg/s",
            f"first publish until the last is received; rounds: {each(bare_live)}",
        ),
        (
            "**telemetry ingest**: sustained end to end, the same live stream (unique uplinks, "
            f"first publish until all are queryable), median of {ROUNDS} rounds",
            f"**{sustained:,.0f} uplinks/s**",
            f"**{median(ratios):.0%} of the bare subscriber** (median of the rounds' ratios: "
            f"{each(ratios, '{:.0%}')}); rounds: {each(ingest_live)}; ingester CPU "
            f"{each(cpu_us)} us per uplink",
        ),
        (
            "publisher (`bench/rawpub.py`, QoS 1, until the broker's last PUBACK)",
            f"{min(pub_rates):,.0f} msg/s at the slowest",
            f"alone: {pub_rate:,.0f} msg/s; during the live rounds: {each(pub_rates)}; "
            + (
                "always faster than the ingester"
                if min(pub_rates) > max(ingest_live) * 1.2
                else "**not clearly faster than the ingester: the figure may be the publisher's**"
            ),
        ),
        (
            "bare paho subscriber (baseline): backlog drain",
            f"{bare_drain:,.0f} msg/s",
            "from its reconnect",
        ),
        (
            "**telemetry ingest**: backlog drain",
            f"**{drain:,.0f} uplinks/s**",
            f"{drain / bare_drain:.0%} of the bare subscriber's drain; from the first uplinks "
            f"queryable (start-up left out); ingester CPU {drain_cpu_us:.0f} us per uplink "
            f"(start-up included); peak RSS {rss:.0f} MB (whole run)",
        ),
        (
            "raw InfluxDB writes, 5,000 lines a batch (baseline)",
            f"{raw:,.0f} points/s",
            f"= {raw / 2:,.0f} uplinks/s (2 points each)",
        ),
        (
            f"**telemetry ingest**: publish-to-queryable latency at {half:,.0f} uplinks/s "
            f"({len(paced):,} uplinks)",
            f"**p50 {p50 * 1000:,.0f} ms, p99 {p99 * 1000:,.0f} ms**",
            f"count polled every 20 ms; exit status {code} after SIGTERM",
        ),
    ]
    return rows, f"{n:,} uplinks from {devices:,} devices (wristband, weather_station, scale)"


def table(rows: list[tuple[str, str, str]], workload: str, *, notes: bool = True) -> str:
    head = (
        f"Machine: {os.cpu_count()} CPUs (nproc {len(os.sched_getaffinity(0))}), {cpu_model()}, "
        f"Python {platform.python_version()}; Mosquitto and InfluxDB on the same machine.\n"
        f"Workload: {workload}. Run: `.venv/bin/python bench/ingest_bench.py --write`.\n\n"
        "| what | rate | note |\n| --- | --- | --- |\n"
    )
    body = head + "\n".join(f"| {a} | {b} | {c} |" for a, b, c in rows) + "\n"
    if not notes:
        return body
    return body + "\n" + (ROOT / "bench" / "ingest_notes.md").read_text()  # reading guide


def main() -> None:
    if len(sys.argv) > 1 and sys.argv[1] == "--publish":
        host, port, prefix = sys.argv[3], int(sys.argv[4]), sys.argv[5]
        rate, start_at, v5 = float(sys.argv[6]), float(sys.argv[7]), sys.argv[8:] == ["v5"]
        publish_main(sys.argv[2], host, port, prefix, rate, v5=v5, start_at=start_at)
        return
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--count", type=int, default=60_000)
    parser.add_argument("--devices", type=int, default=1_000)
    parser.add_argument("--write", action="store_true", help="update BENCHMARKS.md ## Ingest")
    parser.add_argument(
        "--profile", metavar="PATH", help="run the ingester under cProfile, stats to PATH"
    )
    parser.add_argument(
        "--events", action="store_true", help="measure the cost of the events: off and on"
    )
    parser.add_argument("--rounds", type=int, default=3, help="with --events: rounds of each")
    parser.add_argument(
        "--no-events",
        action="store_true",
        help="the ingester without events (TELEMETRY_INGEST_EVENTS=false): to compare with code "
        "from before they existed",
    )
    parser.add_argument(
        "--share-group",
        metavar="NAME",
        help="the ingester as the one member of a share group (TELEMETRY_MQTT_SHARE_GROUP): "
        "what a member pays for looking up every miss and checking its copies; not --write",
    )
    args = parser.parse_args()
    if args.share_group and args.write:
        parser.error("--share-group measures a variant: it does not --write BENCHMARKS.md")
    if args.events:
        from ingest_events import events_cost  # noqa: PLC0415  # it imports this module

        rows, workload = events_cost(args.count, args.devices, args.rounds, args.profile)
        text = table(rows, workload, notes=False).replace(
            "ingest_bench.py --write",
            f"ingest_bench.py --events --count {args.count} --rounds {args.rounds} --write",
        )
        text += "\n" + (ROOT / "bench" / "ingest_events_notes.md").read_text()  # reading guide
        print(text)
        if args.write:
            write_section("Ingest events", f"## Ingest events\n\n{text}")
        return
    rows, workload = run(
        args.count,
        args.devices,
        args.profile,
        events=not args.no_events,
        share_group=args.share_group,
    )
    text = table(rows, workload)
    print(text)
    if args.write:
        write_section("Ingest", f"## Ingest\n\n{text}")


if __name__ == "__main__":
    main()
