"""The ingester's own work per event, in-process and without servers: steadier than a live run.

    .venv/bin/python bench/event_cost.py                  # CPU time per uplink: off / proc / on
    valgrind --tool=callgrind --callgrind-out-file=/dev/null \
        .venv/bin/python bench/event_cost.py --mode on --count 6000 --rounds 1

Runs the processing stage (`ingest.processor.Processor`) over N uplinks of the live benchmark's
kind (`ingest_bench.make_uplinks`), 500 a call as the receiving stage hands them over, in one of
three modes: `off` (TELEMETRY_INGEST_EVENTS=false), `proc` (the `up` events made, not sent) and
`on` (made, queued by `EventPublisher.emit_many`, written by `EventLink.send` to a writer that
drops the bytes, and their PUBACKs read back, 5-byte ones as Mosquitto sends when no one
subscribes). The PUBACKs are made before the clock starts. Without `--mode` all three run in
turn, `--rounds` times, and the least CPU time per uplink of each is printed: on a shared
machine the least disturbed round is the best estimate. Under callgrind (one mode, one round),
the instruction counts of two modes differ by the work of their difference, exactly; the
kernel's share (the socket writes) and the broker's are not in it: `ingest_bench.py --events`.
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import struct
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

from ingest_bench import make_uplinks  # noqa: E402

from catalogue import load_catalogue  # noqa: E402
from ingest.eventlink import EventLink  # noqa: E402
from ingest.events import EventPublisher  # noqa: E402
from ingest.metrics import Metrics  # noqa: E402
from ingest.mqtt import Incoming  # noqa: E402
from ingest.processor import Processor  # noqa: E402
from ingest.service import GC_THRESHOLD0  # noqa: E402
from telemetry.settings import Settings  # noqa: E402

NOW = 1_716_000_000
CHUNK = 500  # messages per `process` call


class _Drop:
    """The socket's stand-in: the bytes are made and handed over, then dropped."""

    def write(self, data: bytes) -> None:
        pass


async def run(mode: str, messages: list[Incoming], acks: bytes) -> float:
    """CPU seconds per uplink of one pass in `mode`."""
    settings = Settings(ingest_events=mode != "off", ingest_rate_burst=1_000_000)
    metrics = Metrics()
    processor = Processor(settings, load_catalogue(None), metrics, clock=lambda: float(NOW))
    publisher = EventPublisher(settings, metrics, capacity=len(messages) + 1)
    link = EventLink(settings, lambda *a: None)
    link._writer = _Drop()  # type: ignore[assignment]  # what `connect` would set
    start = time.process_time()
    for k in range(0, len(messages), CHUNK):
        processed = await processor.process(messages[k : k + CHUNK])
        if mode == "on":
            publisher.emit_many(processed.events)
            block, publisher._queue = publisher._queue, []
            link.send(block)
    if mode == "on":
        for k in range(0, len(acks), 4099):  # reads that cut PUBACKs anywhere
            link._feed(acks[k : k + 4099])
        assert not link.inflight, f"{len(link.inflight)} events not acked"
    return (time.process_time() - start) / len(messages)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--mode", choices=("off", "proc", "on"))
    parser.add_argument("--count", type=int, default=30_000)
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args()
    if args.count >= 65_535:
        parser.error("--count: at most 65,534 (one packet id each)")
    uplinks = make_uplinks(args.count, 1_000, NOW - 60)
    messages = [Incoming(f"uplink/{t}", b, i + 1, 1, 1, 0) for i, (t, b, _) in enumerate(uplinks)]
    acks = b"".join(b"\x40\x03" + struct.pack("!H", i) + b"\x10" for i in range(1, args.count + 1))
    # The collector tuned as `telemetry ingest` tunes it (ingest/service.py, `_tune_gc`).
    gc.collect()
    gc.freeze()
    gc.set_threshold(GC_THRESHOLD0, *gc.get_threshold()[1:])
    modes = [args.mode] if args.mode else ["off", "proc", "on"]
    best = {m: float("inf") for m in modes}
    for _ in range(args.rounds):
        for mode in modes:
            best[mode] = min(best[mode], asyncio.run(run(mode, messages, acks)))
    print(" / ".join(f"{m} {best[m] * 1e6:.2f}" for m in modes), "us CPU per uplink (least)")
    if len(modes) == 3:
        off = best["off"]
        print(
            f"events: making {(best['proc'] - off) * 1e6:.2f} us, sending and acks "
            f"{(best['on'] - best['proc']) * 1e6:.2f} us per event; "
            f"{best['on'] / off - 1:+.0%} on the processing stage"
        )


if __name__ == "__main__":
    main()
