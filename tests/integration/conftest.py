"""Integration fixtures beyond the root ones: the pipeline on an InfluxDB of its own."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace

import pytest

from telemetry.servers import Influxd
from tests.support.pipeline import Pipeline


@pytest.fixture
def own_influx(pipeline: Pipeline, make_influxd: Callable[..., Influxd]) -> Pipeline:
    """The pipeline on an InfluxDB of the test's own, for tests that stop, pause or restart it;
    its database `telemetry` is left for the ingester to create."""
    return replace(pipeline, influxd=make_influxd(), database="telemetry")
