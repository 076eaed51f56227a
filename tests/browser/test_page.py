"""The live page in a real browser against a real stack: fleet, key, kiosk, recovery, offline docs.

What needs the event stream (DESIGN 9) or device status (DESIGN 10) is in test_page_live.py.
Until this API serves `/v1/stream`, the page polls the snapshot and its one 404 for the stream
is the only console error allowed here (never once the stream is there).
"""

from __future__ import annotations

import re
import time

import pytest
from playwright.sync_api import expect

from tests.browser.conftest import SCREENSHOTS, Guarded, Stack, stream_served
from tests.support.apiclient import API_KEY

pytestmark = [pytest.mark.integration, pytest.mark.browser]

NET_DOWN = "net::ERR_"  # what Chromium logs for a request to an API that is not listening


def allowed_errors(stack: Stack) -> tuple[str, ...]:
    return () if stream_served(stack.api) else ("/v1/stream",)


def open_page(g: Guarded, stack: Stack, query: str = "") -> None:
    g.page.goto(stack.page_url(query=query))
    expect(g.page.locator("body[data-ready='1']")).to_be_attached(timeout=30_000)


def test_page_shows_every_type_and_its_devices_with_nothing_from_outside(
    guarded: Guarded, stack: Stack
) -> None:
    page = guarded.page
    open_page(guarded, stack)
    # The key left the address bar for the tab's session storage.
    assert "key=" not in page.url
    assert page.evaluate("sessionStorage.getItem('telemetry.key')") == API_KEY
    for type_name, ids in stack.fleet.items():
        section = page.locator(f"section.type[data-type='{type_name}']")
        expect(section).to_be_visible()
        expect(section.locator(".badge")).to_have_text(f"{len(ids)} devices")
        for device in ids:
            card = section.locator(f".card[data-device='{device}']")
            expect(card).to_be_visible()
            # latest values with their units, link health, a drawn sparkline
            unit = next(iter(stack.catalogue[type_name].fields.values())).unit
            if unit:
                expect(card.locator(".values .unit").first).to_have_text(unit)
            expect(card.locator(".values .num").first).not_to_have_text("–")
            expect(card.locator(".linkline")).to_contain_text("stations 1")
            card.scroll_into_view_if_needed()  # sparklines are drawn when first in view
            expect(card.locator(".spark canvas")).to_be_attached()
    # Requests stay few: the page's own files and one snapshot, whatever the fleet's size.
    api_calls = [r["url"] for r in guarded.requests if "/v1/" in r["url"]]
    assert sum("/v1/snapshot" in u for u in api_calls) == 1, api_calls
    for r in guarded.requests:  # the key travels as a header only, never in a URL
        assert API_KEY not in r["url"], r["url"]
        if "/v1/" in r["url"]:
            assert r["headers"].get("authorization") == f"Bearer {API_KEY}"
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(SCREENSHOTS / "page.png"))
    assert guarded.errors(allowed_errors(stack)) == []


def test_page_is_usable_on_a_phone(guarded: Guarded, stack: Stack) -> None:
    page = guarded.page
    page.set_viewport_size({"width": 390, "height": 844})
    open_page(guarded, stack)
    expect(page.locator(".card").first).to_be_visible()
    # one column, nothing wider than the screen
    assert page.evaluate("document.documentElement.scrollWidth <= window.innerWidth")
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(SCREENSHOTS / "phone.png"))
    assert guarded.errors(allowed_errors(stack)) == []


def test_a_wrong_key_shows_its_message_then_the_right_one_shows_the_fleet(
    guarded: Guarded, stack: Stack
) -> None:
    page = guarded.page
    page.goto(stack.page_url(key="not-the-key"))
    expect(page.locator("#keyform")).to_be_visible()
    expect(page.locator("#keymsg")).to_contain_text("Wrong key")
    expect(page.locator("#layout")).to_be_hidden()
    assert "not-the-key" not in page.url
    page.fill("#key", API_KEY)
    page.click("#keyform button[type=submit]")
    expect(page.locator(".card").first).to_be_visible()
    expect(page.locator("#keyform")).to_be_hidden()
    # Only the refusal of the wrong key is an error here.
    assert guarded.errors((*allowed_errors(stack), "401")) == []


def test_no_key_asks_for_one(guarded: Guarded, stack: Stack) -> None:
    page = guarded.page
    page.goto(f"{stack.api.url}/")
    expect(page.locator("#keymsg")).to_contain_text("needs a key")
    assert guarded.errors((*allowed_errors(stack), "401")) == []


def test_page_recovers_when_the_api_comes_back(guarded: Guarded, stack: Stack) -> None:
    page = guarded.page
    open_page(guarded, stack)
    expect(page.locator("#banner")).to_be_hidden()
    before = len(guarded.console_errors)
    stack.api.stop()
    banner = page.locator("#banner")
    expect(banner).to_be_visible(timeout=90_000)
    expect(banner).to_contain_text("Disconnected")
    expect(page.locator("#conn")).to_have_text("disconnected")
    # A device that appears while the API is down shows once it is back, without a reload.
    newcomer = "B0FF1"
    stack.fleet["wristband"].append(newcomer)
    stack.publish("wristband", newcomer, when=int(time.time()))
    stack.api.start(stream=True)
    expect(banner).to_be_hidden(timeout=90_000)
    expect(page.locator(f".card[data-device='{newcomer}']")).to_be_visible(timeout=90_000)
    # while it was down: refused connections only (and the stream's 404 on an API without one)
    during = [f"{m.text} {m.location.get('url', '')}" for m in guarded.console_errors[before:]]
    allowed = (NET_DOWN, *allowed_errors(stack))
    assert all(any(a in text for a in allowed) for text in during), during
    assert [e for e in guarded.errors(allowed_errors(stack)) if NET_DOWN not in e] == []


def test_kiosk_cycles_through_the_types_by_itself(guarded: Guarded, stack: Stack) -> None:
    page = guarded.page
    open_page(guarded, stack, query="?kiosk=1&cycle=3")
    expect(page.locator("body.kiosk")).to_be_attached()
    current = page.locator("section.type.current")
    expect(current).to_have_count(1)
    seen = {current.get_attribute("data-type")}
    deadline = time.monotonic() + 60
    while len(seen) < len(stack.fleet) and time.monotonic() < deadline:
        page.wait_for_function(
            "t => document.querySelector('section.type.current')?.dataset.type !== t",
            arg=current.get_attribute("data-type"),
            timeout=30_000,
        )
        seen.add(current.get_attribute("data-type"))
    assert seen == set(stack.fleet)
    expect(page.locator(".links")).to_be_hidden()  # nothing to click on a stand
    assert guarded.errors(allowed_errors(stack)) == []


@pytest.mark.parametrize(("path", "ready"), [("/docs", ".swagger-ui .info"), ("/redoc", "h1")])
def test_docs_work_without_the_internet(
    guarded: Guarded, stack: Stack, path: str, ready: str
) -> None:
    page = guarded.page
    page.goto(f"{stack.api.url}{path}")
    expect(page.locator(ready).first).to_contain_text(re.compile("Sigfox telemetry API"))
    assert guarded.errors() == []
