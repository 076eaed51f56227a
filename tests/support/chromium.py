"""Debian's Chromium under Playwright, launched one way for the browser tests and the page benches.

Debian's `/usr/bin/chromium` (scripts/setup installs it), never Playwright's own download
(`playwright install` needs the internet, which CI and a demo stand may not have); headless, and
quiet on the network by itself.
"""

from __future__ import annotations

from pathlib import Path

from playwright.sync_api import Browser, Playwright

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--no-sandbox",  # tests run as root in CI; the sandbox refuses root
    "--disable-gpu",
    "--disable-background-networking",  # no update checks, no safe-browsing lists
    "--disable-component-update",
]


def launch_chromium(playwright: Playwright) -> Browser:
    return playwright.chromium.launch(
        executable_path=str(CHROMIUM), headless=True, args=CHROMIUM_ARGS
    )
