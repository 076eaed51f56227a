"""What publishing DESIGN section 9's events costs the ingester: `ingest_bench.py --events`.

Rounds of a new live stream of N uplinks (published at full speed by `rawpub`), each to a fresh
`telemetry ingest`, in three modes, their order turning from one set of three to the next:

- `off`: events off (`TELEMETRY_INGEST_EVENTS=false`);
- `on`: events on, an `up` event per uplink, counted by the ingester's own counters (no one
  subscribes: Mosquitto answers "no matching subscribers");
- `broker`: events off, while a second `rawpub` publishes the same `up` events (MQTT 5, QoS 1,
  as the ingester would, paced at the last `off` round's rate, under a prefix no one
  subscribes to). Its publisher costs next to nothing, so this is what the broker's taking
  the events costs the pipeline on these shared cores, whoever publishes them: the floor
  under `on`.

Reported: the medians of each mode (rate, the ingester's CPU per uplink, Mosquitto's), `on`
over `off` (the cost of the events), `broker` over `off` (the broker's part) and `on` over
`broker` (the ingester's own part), and each set of three's ratios. `--write` puts the table
under `## Ingest events` in BENCHMARKS.md, with `bench/ingest_events_notes.md` after it.
"""

from __future__ import annotations

import json
import math
import os
import signal
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

from ingest_bench import (
    _POLL,
    cpu_seconds,
    cpu_split,
    make_uplinks,
    median,
    metric,
    publish,
    start_ingest,
    wait_stored,
)

from catalogue import load_catalogue
from ingest.eventbodies import up_document
from ingest.merge import Copy
from telemetry.servers import Influxd, Mosquitto, free_port

MODES = ("off", "on", "broker")
PREPARE = 1.5  # s for the publishers to read their messages and make the packets
Uplinks = list[tuple[str, bytes, str]]


def events_counted(port: int, what: str = "published") -> int:
    """The ingester's `telemetry_ingest_events_<what>_total`."""
    text = _POLL.get(f"http://127.0.0.1:{port}/metrics").text
    value = metric(text, f"telemetry_ingest_events_{what}_total")
    return -1 if math.isnan(value) else int(value)


def up_events(uplinks: Uplinks) -> Uplinks:
    """The `up` event of each uplink, as (topic suffix, body, ""): what the ingester publishes
    for them (one station each, values decoded by the catalogue), for the `broker` mode."""
    catalogue = load_catalogue(None)
    out = []
    for suffix, raw, _ in uplinks:
        body = json.loads(raw)
        dtype = catalogue[suffix.split("/")[0]]
        values = dtype.decode(bytes.fromhex(body["data"])).values
        best = Copy(body["station"], body["rssi"], body["snr"])
        doc = up_document(dtype, body["device"], body["time"], body["seqNumber"], 1, best, values)
        out.append((f"{suffix}/up", json.dumps(doc, separators=(",", ":")).encode(), ""))
    return out


@dataclass(frozen=True)
class Round:
    """One round's figures: its rate (uplinks/s), the ingester's user and system CPU and
    Mosquitto's CPU per uplink (us)."""

    mode: str
    rate: float
    user: float
    system: float
    broker: float
    publisher: float  # the bare publisher's CPU per event (`broker` mode)

    @property
    def cpu(self) -> float:
        """The ingester's own CPU per uplink, events' work included."""
        return self.user + self.system


def one_round(  # noqa: PLR0917  # a round's settings
    mosq: Mosquitto,
    influx: Influxd,
    tmp: Path,
    k: int,
    mode: str,
    uplinks: Uplinks,
    pace: float,
    profile: str | None,
) -> tuple[Round, int]:
    """Run round `k` in `mode`; its figures and the events the ingester dropped."""
    port = free_port()
    proc = start_ingest(
        mosq,
        influx,
        tmp,
        f"{profile}.{k}-{mode}" if profile else None,
        events=mode == "on",
        client_id=f"bench-ingest-{k}",
        metrics_port=port,
        # Each round's ingester leaves a persistent session subscribed to its prefix: with one
        # prefix for all, the broker queued every later round's uplinks for every earlier
        # session too (and saved them each second), its CPU per uplink growing from 14 to
        # 60 us over 12 rounds and later rounds slower either way.
        topic_prefix=f"uplink{k}",
    )
    events = up_events(uplinks) if mode == "broker" else []
    time.sleep(2)  # set-up: let it connect and subscribe (not a measured interval)
    assert mosq.proc is not None
    cpu_before, broker_before = cpu_split(proc.pid), cpu_seconds(mosq.proc.pid)
    # Both publishers make their packets first, then start together: making them is not
    # in the round (in the `broker` mode it would weigh on the round's first half second).
    start_at = time.time() + PREPARE
    with ThreadPoolExecutor(2) as pool:
        sent = pool.submit(publish, mosq, uplinks, f"uplink{k}", tmp, start_at=start_at)
        floor = (  # the same events, from a publisher that costs next to nothing
            pool.submit(publish, mosq, events, f"floor{k}", tmp, pace, v5=True, start_at=start_at)
            if events
            else None
        )
        _, _, done = wait_stored(influx, uplinks, first=False)
        start = sent.result()["start"]
        publisher_us = floor.result()["cpu"] / len(events) * 1e6 if floor else 0.0
    rate = len(uplinks) / (done - start)
    # The same pause in every mode for the last events to go out and be acked: no polling of
    # the ingester's /metrics meanwhile (each scrape costs it CPU).
    time.sleep(1.0)
    n = len(uplinks)
    user, system = (
        (after - before) / n * 1e6
        for after, before in zip(cpu_split(proc.pid), cpu_before, strict=True)
    )
    broker_us = (cpu_seconds(mosq.proc.pid) - broker_before) / n * 1e6
    got, lost = events_counted(port), events_counted(port, "dropped")
    proc.send_signal(signal.SIGTERM)
    proc.wait(60)
    print(
        f"round {k}: {mode}: {rate:,.0f} uplinks/s, {user + system:.1f} us CPU per uplink (user "
        f"{user:.1f}, system {system:.1f}; broker {broker_us:.1f}"
        + (f"; the bare publisher {publisher_us:.1f} an event" if floor else "")
        + f"), {got:,} events published by the ingester, {lost:,} dropped",
        flush=True,
    )
    return Round(mode, rate, user, system, broker_us, publisher_us), lost


def events_cost(
    n: int, devices: int, rounds: int, profile: str | None = None
) -> tuple[list[tuple[str, str, str]], str]:
    """`rounds` sets of the three modes; the table's rows and the workload's description.

    With `profile`, each round's ingester runs under cProfile, its stats to
    `<profile>.<round>-<mode>` (the profiler's overhead then weighs on every figure)."""
    tmp = Path(tempfile.mkdtemp(prefix="ingest-events-bench-"))
    started, load_before = time.strftime("%Y-%m-%d %H:%M", time.gmtime()), os.getloadavg()[0]
    mosq, influx = Mosquitto(tmp / "mosquitto"), Influxd(tmp / "influxd")
    mosq.start()
    influx.start()
    results: dict[str, list[Round]] = {mode: [] for mode in MODES}
    dropped = 0
    total = len(MODES) * rounds
    try:
        now, span = int(time.time()), -(-n // devices) + 5
        influx.create_database("bench")
        pace = 20_000.0  # until an `off` round has run
        for k in range(total):
            j, i = divmod(k, len(MODES))
            mode = MODES[(i + j) % len(MODES)]  # off/on/broker, on/broker/off, ...
            uplinks = make_uplinks(n, devices, now - 60 - (total - k) * span)
            result, lost = one_round(mosq, influx, tmp, k, mode, uplinks, pace, profile)
            results[mode].append(result)
            dropped += lost
            if mode == "off":
                pace = result.rate
    finally:
        mosq.stop()
        influx.stop()
    rows = _rows(results, rounds, dropped, n)
    when = (
        f"{started}-{time.strftime('%H:%M', time.gmtime())} UTC, load average (1 min) "
        f"{load_before:.1f} before and {os.getloadavg()[0]:.1f} after"
    )
    return rows, f"{n:,} uplinks a round from {devices:,} devices, {total} rounds, {when}"


def _rows(
    results: dict[str, list[Round]], rounds: int, dropped: int, n: int
) -> list[tuple[str, str, str]]:
    med = {
        m: {f: median([getattr(r, f) for r in rs]) for f in _FIGURES} for m, rs in results.items()
    }

    def each(mode: str) -> str:
        rs = results[mode]
        return (
            f"rounds: {' / '.join(f'{r.rate:,.0f}' for r in rs)}; CPU "
            f"{' / '.join(f'{r.cpu:.1f}' for r in rs)} us per uplink; Mosquitto "
            f"{med[mode]['broker']:.1f} us per uplink"
        )

    def ratio(a: str, b: str) -> str:
        return (
            f"{med[a]['rate'] / med[b]['rate'] - 1:+.0%} throughput, "
            f"{med[a]['cpu'] / med[b]['cpu'] - 1:+.0%} CPU per uplink"
        )

    def sets(a: str, b: str) -> str:
        return " / ".join(
            f"{ra.rate / rb.rate - 1:+.0%}" for ra, rb in zip(results[a], results[b], strict=True)
        )

    return [
        (
            f"**off**: events off (TELEMETRY_INGEST_EVENTS=false), median of {rounds}",
            f"{med['off']['rate']:,.0f} uplinks/s",
            each("off"),
        ),
        (
            f"**on**: events on (an `up` event per uplink), median of {rounds}",
            f"{med['on']['rate']:,.0f} uplinks/s",
            f"{each('on')}; events dropped: {dropped:,} of {n * rounds:,}",
        ),
        (
            f"**broker**: events off, the same events from a bare publisher, median of {rounds}",
            f"{med['broker']['rate']:,.0f} uplinks/s",
            f"{each('broker')}; the bare publisher {med['broker']['publisher']:.1f} us CPU an "
            "event",
        ),
        (
            "**cost of the events** (on over off)",
            f"**{ratio('on', 'off')}**",
            f"target: at most 10% less throughput; each set of three: {sets('on', 'off')}",
        ),
        (
            "of which the broker's (broker over off)",
            ratio("broker", "off"),
            f"Mosquitto taking a QoS 1 PUBLISH an event; each set: {sets('broker', 'off')}",
        ),
        (
            "of which the ingester's (on over broker)",
            ratio("on", "broker"),
            f"making, writing and acking the events; each set: {sets('on', 'broker')}",
        ),
        (
            "**where the CPU goes**, medians, off / on / broker",
            " / ".join(f"{med[m]['cpu']:.1f}" for m in MODES) + " us per uplink",
            "ingester user "
            + " / ".join(f"{med[m]['user']:.1f}" for m in MODES)
            + ", system "
            + " / ".join(f"{med[m]['system']:.1f}" for m in MODES)
            + "; Mosquitto "
            + " / ".join(f"{med[m]['broker']:.1f}" for m in MODES)
            + " us per uplink",
        ),
    ]


_FIGURES = ("rate", "cpu", "user", "system", "broker", "publisher")
