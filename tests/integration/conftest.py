"""Fixtures for integration tests that run `telemetry ingest` as a real subprocess."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support.ingest import Ingester, StartIngester


@pytest.fixture
def start_ingester(tmp_path: Path) -> Iterator[StartIngester]:
    """Start ingesters in folders of the test's own (`ing`, `ing1`, ...), subscribed on return.

    Every one still running at the end is killed, whatever happened, so a failing test never
    leaves a process holding the broker session or the port.
    """
    started: list[Ingester] = []

    def start(
        *, mqtt_url: str, influx_url: str, database: str, prefix: str, **settings: object
    ) -> Ingester:
        ing = Ingester(
            tmp_path / (f"ing{len(started)}" if started else "ing"),
            mqtt_url=mqtt_url,
            influx_url=influx_url,
            database=database,
            prefix=prefix,
            **settings,  # type: ignore[arg-type]
        )
        started.append(ing)
        ing.start()
        return ing

    yield start
    for ing in started:
        if ing.proc is not None and ing.proc.poll() is None:
            ing.kill()
