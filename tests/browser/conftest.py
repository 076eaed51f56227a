"""Fixtures for browser tests: Debian's Chromium under Playwright, guarded so that any request
leaving the loopback is blocked and reported, and a real stack (mosquitto, influxd, `telemetry
ingest` and `telemetry api` processes) with a small fleet of every built-in type.

Chromium is Debian's, launched by tests/support/chromium.py (as the page benches launch it).
"""

from __future__ import annotations

import os
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import httpx
import pytest
from playwright.sync_api import Browser, ConsoleMessage, Page, Playwright, Route, sync_playwright

from catalogue import Catalogue, DeviceType, load_catalogue
from tests.support.apiclient import API_KEY, AUTH
from tests.support.apiprocess import ApiProcess
from tests.support.chromium import CHROMIUM, launch_chromium
from tests.support.ingest import Ingester
from tests.support.pipeline import Pipeline
from tests.support.poll import wait_for

LOOPBACK = {"127.0.0.1", "localhost", "::1", "[::1]"}
# Screenshots of every run land here (var/ is gitignored); docs/page.png is committed apart.
SCREENSHOTS = Path(__file__).resolve().parents[2] / "var" / "browser"
DEVICES_PER_TYPE = 2
HISTORY = 12  # uplinks per device, an hour apart, so that every sparkline has a line


# Module scope, not session: Playwright's sync API runs an asyncio loop of its own while it is
# started, and pytest-asyncio's tests after it could not run theirs ("Cannot run the event loop
# while another loop is running"). Each browser test module starts one Chromium.
@pytest.fixture(scope="module")
def playwright() -> Iterator[Playwright]:
    if not CHROMIUM.exists():
        message = f"{CHROMIUM} is missing: scripts/setup installs Debian's chromium package"
        if os.environ.get("CI"):
            pytest.fail(message, pytrace=False)
        pytest.skip(message)
    with sync_playwright() as p:
        yield p


@pytest.fixture(scope="module")
def browser(playwright: Playwright) -> Iterator[Browser]:
    b = launch_chromium(playwright)
    yield b
    b.close()


@dataclass
class Guarded:
    """A page whose requests beyond the loopback are refused, with what it logged."""

    page: Page
    blocked: list[str] = field(default_factory=list)
    console_errors: list[ConsoleMessage] = field(default_factory=list)
    page_errors: list[str] = field(default_factory=list)
    requests: list[dict[str, Any]] = field(default_factory=list)

    def errors(self, allowed: tuple[str, ...] = ()) -> list[str]:
        """Console errors and uncaught exceptions, less those whose text or URL has `allowed`."""
        out = [
            f"{m.text} ({m.location.get('url', '')})"
            for m in self.console_errors
            if not any(a in m.text or a in m.location.get("url", "") for a in allowed)
        ]
        return out + self.page_errors


@pytest.fixture
def guarded(browser: Browser) -> Iterator[Guarded]:
    context = browser.new_context(viewport={"width": 1920, "height": 1080})
    page = context.new_page()
    g = Guarded(page)

    def route(r: Route) -> None:
        host = urlsplit(r.request.url).hostname or ""
        if r.request.url.startswith(("data:", "blob:")) or host in LOOPBACK:
            r.continue_()
        else:
            g.blocked.append(r.request.url)
            r.abort("blockedbyclient")

    context.route("**/*", route)
    page.on("console", lambda m: g.console_errors.append(m) if m.type == "error" else None)
    page.on("pageerror", lambda e: g.page_errors.append(f"uncaught: {e}"))
    page.on(
        "request",
        lambda r: g.requests.append({"url": r.url, "headers": r.headers}),
    )
    yield g
    context.close()
    assert g.blocked == [], f"the page tried to reach beyond the loopback: {g.blocked}"


@dataclass
class Stack(Pipeline):
    """The pipeline with an ingester, an API process and a fleet of every built-in type."""

    catalogue: Catalogue = field(default_factory=load_catalogue)
    fleet: dict[str, list[str]] = field(default_factory=dict)  # type -> device ids
    seqs: dict[str, int] = field(default_factory=dict)  # device -> next seq

    @property
    def api(self) -> ApiProcess:
        return self.apis[0]

    @property
    def ingester(self) -> Ingester:
        return self.ingesters[0]

    def page_url(self, key: str = API_KEY, query: str = "") -> str:
        return f"{self.api.url}/{query}#key={key}"

    def publish(
        self, type_name: str, device: str, *, when: int | None = None, stations: int = 1
    ) -> int:
        """One transmission heard by `stations` stations (one copy each); returns its seq."""
        seq = self.seqs.get(device, 0)
        self.seqs[device] = seq + 1
        copies = uplink_copies(
            self.catalogue[type_name], device, seq, when or int(time.time()), stations
        )
        self.publisher.many([(f"{self.prefix}/{type_name}/{device}", body) for body in copies])
        return seq

    def snapshot(self) -> dict[str, Any]:
        r = httpx.get(f"{self.api.url}/v1/snapshot", headers=AUTH, timeout=30)
        r.raise_for_status()
        body: dict[str, Any] = r.json()
        return body


def middle_values(dtype: DeviceType, step: int = 0) -> dict[str, Any]:
    """A valid value for every field: the middle of its range, moved a little per `step`."""
    out: dict[str, Any] = {}
    for name, spec in dtype.fields.items():
        lo = spec.minimum if spec.minimum is not None else 0
        hi = spec.maximum if spec.maximum is not None else lo + 100
        value = lo + (hi - lo) * (0.4 + 0.02 * (step % 10))
        out[name] = round(value) if spec.storage == "integer" else round(value, 1)
    return out


def uplink_copies(
    dtype: DeviceType, device: str, seq: int, when: int, stations: int
) -> list[dict[str, Any]]:
    data = dtype.encode(middle_values(dtype, seq)).hex()
    return [
        {
            "device": device,
            "time": when,
            "seqNumber": seq,
            "data": data,
            "station": f"{0xA000 + i:04X}",
            "rssi": -100.0 - 5 * i,
            "snr": 10.0,
        }
        for i in range(stations)
    ]


@pytest.fixture
def stack(pipeline: Pipeline) -> Iterator[Stack]:
    """ingest and api as processes, and DEVICES_PER_TYPE devices of each type with history."""
    s = Stack.like(pipeline)
    s.start()
    api = s.make_api(api_keys=API_KEY)
    s.fleet = {
        t.name: [f"{0xB0000 + 16 * n + i:X}" for i in range(DEVICES_PER_TYPE)]
        for n, t in enumerate(s.catalogue)
    }
    now = int(time.time())
    for type_name, ids in s.fleet.items():
        for device in ids:
            for h in range(HISTORY, 0, -1):
                s.publish(type_name, device, when=now - h * 3600)
    api.start(stream=True)
    wanted = sum(len(ids) for ids in s.fleet.values())
    wait_for(lambda: len(s.snapshot()["devices"]) == wanted, 60, "the fleet in the snapshot")
    try:
        yield s
    finally:
        if api.proc is not None and not api.exited():
            api.stop()


def serves(api: ApiProcess, path: str) -> bool:
    """True when this API's OpenAPI has `path`."""
    spec = httpx.get(f"{api.url}/openapi.json", timeout=10).json()
    return path in spec.get("paths", {})


def stream_served(api: ApiProcess) -> bool:
    """True when this API has GET /v1/stream (DESIGN 9), which another branch brings."""
    return serves(api, "/v1/stream")
