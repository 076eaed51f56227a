"""The live page's load time in real Chromium with 1,000 devices and a day of history each.

    .venv/bin/python bench/page_bench.py              # 1,000 devices, 5 loads
    .venv/bin/python bench/page_bench.py --devices 200 --loads 3

Starts its own influxd and `telemetry api` on free loopback ports, writes `--devices` devices
(split over the four built-in types) with 24 h of uplinks at 144 a day (one per 10 min), then
opens `/` in Debian's Chromium (headless, as the browser tests run it) `--loads` times, each in
a fresh browser context (an empty cache: the first visit of a screen). "Complete" is the moment
the fleet is drawn and every sparkline in the first screen is on its canvas, measured from the
navigation's start by the page's own clock. The snapshot's own time and size come from the
browser's resource timing. Goal (DESIGN 12): complete in under 2 s.
"""

from __future__ import annotations

import argparse
import random
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

from api_bench import API_KEY, DATABASE, start_api, write  # noqa: E402  # its InfluxDB and API
from playwright.sync_api import sync_playwright  # noqa: E402  # after the path set-up

from catalogue import DeviceType, load_catalogue  # noqa: E402
from telemetry.servers import Influxd, free_port  # noqa: E402
from tests.support.chromium import launch_chromium  # noqa: E402

PER_DAY = 144  # one uplink every 10 minutes: the catalogue's default status interval
# True once the fleet is drawn and each sparkline container in view has its canvas.
COMPLETE = """() => {
  if (document.body.dataset.ready !== '1') return false;
  const h = window.innerHeight;
  // Cards in document order, the first screen only: measuring a card far off screen would
  // force the layout that `content-visibility: auto` spares the page.
  for (const c of document.querySelectorAll('.card')) {
    const r = c.getBoundingClientRect();
    if (r.top >= h) break;
    if (r.bottom <= 0) continue;
    const s = c.querySelector('.spark').getBoundingClientRect();
    if (s.top < h && s.bottom > 0 && !c.querySelector('.spark canvas')) return false;
  }
  window.__complete = performance.now();
  return true;
}"""


def fleet_lines(catalogue: list[DeviceType], devices: int, now: int) -> list[str]:
    rng = random.Random(12)
    lines = []
    step = 86_400 // PER_DAY
    for n in range(devices):
        dtype = catalogue[n % len(catalogue)]
        device = f"{0x100000 + n:X}"
        seq = rng.randrange(4096)
        for i in range(PER_DAY):
            t = now - (PER_DAY - i) * step + rng.randrange(-30, 30)
            seq = (seq + (2 if rng.random() < 0.02 else 1)) % 4096
            stations = 1 + rng.randrange(3)
            link = f"seq={seq}i,rssi={-90 - rng.random() * 40:.1f},snr=8.5,stations={stations}i"
            values = []
            for name, spec in dtype.fields.items():
                lo = spec.minimum if spec.minimum is not None else 0
                hi = spec.maximum if spec.maximum is not None else lo + 100
                v = lo + (hi - lo) * (0.3 + 0.4 * rng.random())
                values.append(
                    f"{name}={round(v)}i" if spec.storage == "integer" else f"{name}={v:.2f}"
                )
            lines.append(f"{dtype.name},device={device} {','.join(values)},{link} {t}")
            lines.append(
                f'uplink,device={device},type={dtype.name} data="00",{link},'
                f'station="0A1B",station_ids="0A1B",out_of_range=0i {t}'
            )
    return lines


def load_once(browser: Any, url: str) -> dict[str, float]:
    context = browser.new_context(viewport={"width": 1920, "height": 1080})
    page = context.new_page()
    errors: list[str] = []
    page.on("pageerror", lambda e: errors.append(str(e)))
    page.goto(f"{url}/#key={API_KEY}")
    page.wait_for_function(COMPLETE, timeout=60_000, polling="raf")
    got: dict[str, float] = page.evaluate(
        """() => {
          const all = performance.getEntriesByType('resource');
          const s = all.find(e => e.name.includes('/v1/snapshot'));
          const m = performance.getEntriesByName('telemetry:rendered')[0];
          return {complete: window.__complete, cards: document.querySelectorAll('.card').length,
                  charts: document.querySelectorAll('.spark canvas').length,
                  snapshot_start: s ? s.startTime : -1, snapshot_end: s ? s.responseEnd : -1,
                  rendered: m ? m.startTime : -1,
                  snapshot_kb: s ? s.decodedBodySize / 1024 : -1, requests: all.length + 1};
        }"""
    )
    context.close()
    if errors:
        raise SystemExit(f"the page failed: {errors}")
    return got


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--devices", type=int, default=1000)
    parser.add_argument("--loads", type=int, default=5)
    args = parser.parse_args()
    catalogue = list(load_catalogue())
    now = int(time.time())
    with tempfile.TemporaryDirectory(prefix="page-bench-") as tmp:
        influx = Influxd(Path(tmp) / "influxd")
        influx.start()
        api_proc = None
        try:
            influx.create_database(DATABASE)
            t0 = time.perf_counter()
            lines = fleet_lines(catalogue, args.devices, now)
            write(influx, lines)
            print(
                f"wrote {len(lines)} points for {args.devices} devices in "
                f"{time.perf_counter() - t0:.1f} s"
            )
            port = free_port()
            api_proc = start_api(influx.url, port, Path(tmp) / "api.log")
            url = f"http://127.0.0.1:{port}"
            with sync_playwright() as p:
                browser = launch_chromium(p)
                results = [load_once(browser, url) for _ in range(args.loads)]
                browser.close()
        finally:
            if api_proc is not None:
                api_proc.terminate()
                api_proc.wait(15)
            influx.stop()
    for i, r in enumerate(results):
        print(
            f"load {i + 1}: complete {r['complete']:.0f} ms, snapshot from "
            f"{r['snapshot_start']:.0f} to {r['snapshot_end']:.0f} ms, "
            f"drawn {r['rendered']:.0f} ms "
            f"({r['snapshot_kb']:.0f} KiB), {r['cards']} cards, {r['charts']} charts drawn, "
            f"{r['requests']} requests"
        )
    complete = [r["complete"] for r in results]
    print(
        f"{args.devices} devices: page complete median {statistics.median(complete):.0f} ms, "
        f"max {max(complete):.0f} ms over {len(results)} cold loads (goal < 2000 ms)"
    )


if __name__ == "__main__":
    main()
