"""Browser tests: the live page in Debian's Chromium, driven by Playwright, against a real stack."""
