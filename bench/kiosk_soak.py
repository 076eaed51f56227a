"""Kiosk soak: `/?kiosk=1` in Chromium on a live `telemetry dev` stack, browser memory sampled.

    .venv/bin/python bench/kiosk_soak.py                      # 8 simulated hours at 60x: 8 min
    .venv/bin/python bench/kiosk_soak.py --hours 8 --speed 60 --devices 10 --cycle 3

Starts `telemetry dev` (mosquitto, influxd, ingest, API, simulators with a day of backfill) on
free ports in a temporary folder, opens the kiosk URL it prints in Debian's Chromium, and every
`--sample` seconds forces a garbage collection and reads the page's JS heap, DOM nodes and event
listeners (Chrome DevTools Protocol `Performance.getMetrics`). The simulators run `--speed`
times faster, so the page sees the uplinks of `--hours` hours in `--hours / --speed` of wall
time; the kiosk's own clocks (type cycle, snapshot refresh) are not sped up, so `--cycle` is
short. Every `--break-every` seconds the browser is taken off the network for `--break-for`
seconds, as a stand's Wi-Fi does, and must recover by itself (counted). Flat memory: the heap's
median in the last quarter of the run against the first quarter, and the slope over the run.
"""

from __future__ import annotations

import argparse
import queue
import re
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import IO

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from playwright.sync_api import sync_playwright  # noqa: E402  # after the path set-up

from telemetry.dev.stack import telemetry_argv  # noqa: E402
from telemetry.servers import free_port  # noqa: E402
from tests.support.chromium import launch_chromium  # noqa: E402

MB = 1024 * 1024


def start_dev(data_dir: Path, devices: int, speed: float) -> tuple[subprocess.Popen[str], str]:
    argv = [
        *telemetry_argv("dev"),
        *("--data-dir", str(data_dir)),
        *("--mqtt-port", str(free_port()), "--influx-port", str(free_port())),
        *("--api-port", str(free_port()), "--metrics-port", str(free_port())),
        *("--devices", str(devices), "--speed", f"{speed:g}", "--backfill", "1d"),
    ]
    proc = subprocess.Popen(  # our own argv, no shell
        argv, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, start_new_session=True
    )
    lines: queue.Queue[str] = queue.Queue()

    def read(stream: IO[str]) -> None:
        for line in stream:
            lines.put(line)

    assert proc.stdout is not None
    threading.Thread(target=read, args=(proc.stdout,), daemon=True).start()
    deadline = time.monotonic() + 180
    while time.monotonic() < deadline:
        try:
            line = lines.get(timeout=1)
        except queue.Empty:
            if proc.poll() is not None:
                raise SystemExit("telemetry dev exited before it was ready") from None
            continue
        m = re.search(r"open (http://\S+)/#key=(\S+)", line)
        if m:
            return proc, f"{m.group(1)}/?kiosk=1&cycle={{cycle}}#key={m.group(2)}"
    proc.kill()
    raise SystemExit("telemetry dev did not print its page URL within 180 s")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--hours", type=float, default=8.0, help="simulated hours")
    parser.add_argument("--speed", type=float, default=60.0, help="simulator speed-up")
    parser.add_argument("--devices", type=int, default=10, help="devices per type")
    parser.add_argument("--cycle", type=int, default=3, help="kiosk seconds per screen")
    parser.add_argument("--sample", type=float, default=20.0, help="seconds between samples")
    parser.add_argument("--break-every", type=float, default=120.0, help="seconds; 0: never")
    parser.add_argument("--break-for", type=float, default=20.0, help="seconds off the network")
    args = parser.parse_args()
    wall = args.hours * 3600 / args.speed
    with tempfile.TemporaryDirectory(prefix="kiosk-soak-") as tmp:
        dev, url = start_dev(Path(tmp) / "dev", args.devices, args.speed)
        try:
            samples, breaks, recovered, errors = soak(args, url.format(cycle=args.cycle), wall)
        finally:
            dev.terminate()
            dev.wait(120)
    report(args, wall, samples, breaks=breaks, recovered=recovered, errors=errors)


Sample = tuple[float, float, float, float]  # seconds, JS heap MB, DOM nodes, listeners


def soak(
    args: argparse.Namespace, url: str, wall: float
) -> tuple[list[Sample], int, int, list[str]]:
    samples: list[Sample] = []
    breaks = recovered = 0
    errors: list[str] = []
    with sync_playwright() as p:
        browser = launch_chromium(p)
        context = browser.new_context(viewport={"width": 1920, "height": 1080})
        page = context.new_page()
        page.on("pageerror", lambda e: errors.append(str(e)))
        cdp = context.new_cdp_session(page)
        cdp.send("Performance.enable")
        page.goto(url)
        page.wait_for_selector("body[data-ready='1']", state="attached", timeout=60_000)
        t0 = time.monotonic()
        next_break = t0 + args.break_every if args.break_every else float("inf")
        while (now := time.monotonic()) - t0 < wall:
            if now >= next_break:
                breaks += 1
                context.set_offline(True)
                page.wait_for_selector("#banner", state="visible", timeout=120_000)
                time.sleep(args.break_for)
                context.set_offline(False)
                page.wait_for_selector("#banner", state="hidden", timeout=120_000)
                recovered += 1
                next_break = time.monotonic() + args.break_every
            cdp.send("HeapProfiler.collectGarbage")
            metrics = {m["name"]: m["value"] for m in cdp.send("Performance.getMetrics")["metrics"]}
            sample = (
                time.monotonic() - t0,
                metrics["JSHeapUsedSize"] / MB,
                metrics["Nodes"],
                metrics["JSEventListeners"],
            )
            samples.append(sample)
            print(
                f"{sample[0]:7.0f} s  heap {sample[1]:6.2f} MB  nodes {sample[2]:6.0f}  "
                f"listeners {sample[3]:5.0f}",
                flush=True,
            )
            time.sleep(args.sample)
        browser.close()
    return samples, breaks, recovered, errors


def report(
    args: argparse.Namespace,
    wall: float,
    samples: list[Sample],
    *,
    breaks: int,
    recovered: int,
    errors: list[str],
) -> None:
    if len(samples) < 4:
        raise SystemExit("too few samples for a figure: run longer")
    quarter = max(1, len(samples) // 4)
    first = statistics.median(s[1] for s in samples[:quarter])
    last = statistics.median(s[1] for s in samples[-quarter:])
    span_h = (samples[-1][0] - samples[0][0]) / 3600
    slope = statistics.linear_regression([s[0] for s in samples], [s[1] for s in samples]).slope
    print(
        f"kiosk soak: {args.hours:g} simulated h at {args.speed:g}x ({wall / 60:.1f} min wall), "
        f"{4 * args.devices} devices, {len(samples)} samples; "
        f"JS heap median first quarter {first:.2f} MB, last quarter {last:.2f} MB "
        f"({last - first:+.2f} MB), slope {slope * 3600:+.2f} MB per wall hour over "
        f"{span_h:.2f} h; DOM nodes {samples[0][2]:.0f} -> {samples[-1][2]:.0f}; "
        f"network breaks {breaks}, recovered {recovered}; page errors {len(errors)}"
    )


if __name__ == "__main__":
    main()
