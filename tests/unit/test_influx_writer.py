"""influx/writer.py: write outcomes, Retry-After, halving on 413 (no server)."""

from __future__ import annotations

import email.utils

import httpx
import pytest

from influx.errors import WriteError
from influx.writer import InfluxWriter, Outcome, classify, retry_after


@pytest.mark.parametrize(
    ("status", "outcome"),
    [
        (204, Outcome.STORED),
        (200, Outcome.STORED),
        (400, Outcome.REFUSED),
        (422, Outcome.REFUSED),
        (413, Outcome.TOO_LARGE),
        (429, Outcome.RETRY),
        (408, Outcome.RETRY),
        (500, Outcome.RETRY),
        (503, Outcome.RETRY),
        (401, Outcome.RETRY),  # configuration: keep (spool) until fixed, never drop
        (403, Outcome.RETRY),
        (404, Outcome.RETRY),  # database not found
    ],
)
def test_classify(status: int, outcome: Outcome) -> None:
    assert classify(status) is outcome


def test_retry_after_seconds_and_date() -> None:
    assert retry_after("7") == 7.0
    assert retry_after(None) is None
    assert retry_after("soon") is None
    date = email.utils.formatdate(1_000_030, usegmt=True)
    assert retry_after(date, now=1_000_000) == pytest.approx(30.0)
    assert retry_after(email.utils.formatdate(1, usegmt=True), now=1_000) == 0.0


@pytest.mark.asyncio
async def test_writer_halves_on_413_and_refuses_only_an_oversized_single_line() -> None:
    # InfluxDB 1.6.7 answers 413 only past 25 MB; a transport stub gives the status codes so
    # that the halving itself is checked here (the real server is used in the integration tests).
    bodies: list[list[str]] = []

    def answer(request: httpx.Request) -> httpx.Response:
        lines = request.content.decode().split("\n")
        bodies.append(lines)
        if len(request.content) > 20:
            return httpx.Response(413, json={"error": "Request Entity Too Large"})
        return httpx.Response(204)

    lines = ["m f=1i 1", "m f=2i 2", "m f=3i 3", "m big=" + "9" * 30 + "i 4"]
    async with httpx.AsyncClient(transport=httpx.MockTransport(answer), base_url="http://x") as c:
        refused = await InfluxWriter(c, "db").write(lines)
    assert [r.line for r in refused] == [lines[3]]
    stored = [b for b in bodies if len("\n".join(b)) <= 20]
    assert sorted(line for b in stored for line in b) == sorted(lines[:3])


@pytest.mark.asyncio
async def test_writer_reports_retry_after() -> None:
    def answer(request: httpx.Request) -> httpx.Response:
        return httpx.Response(429, headers={"Retry-After": "3"}, text="slow down")

    async with httpx.AsyncClient(transport=httpx.MockTransport(answer), base_url="http://x") as c:
        with pytest.raises(WriteError) as info:
            await InfluxWriter(c, "db").write(["m f=1i 1"])
    assert (info.value.status, info.value.wait) == (429, 3.0)
