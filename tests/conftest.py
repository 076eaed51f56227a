"""Session fixtures: real `mosquitto` and `influxd` processes on free loopback ports."""

from __future__ import annotations

import asyncio
import os
import uuid
from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path
from typing import TypeVar

import pytest
import pytest_asyncio

from telemetry.errors import ServerError
from telemetry.servers import Influxd, Mosquitto, find_binary
from tests.support.ingest import Ingester, Publisher, StartIngester
from tests.support.pipeline import Pipeline

S = TypeVar("S", Mosquitto, Influxd)  # the servers a test may start of its own


def _require(binary: str) -> None:
    try:
        find_binary(binary)
    except ServerError as exc:
        if os.environ.get("CI"):
            pytest.fail(str(exc), pytrace=False)
        pytest.skip(str(exc))


def _session_server(cls: type[S], tmp_path_factory: pytest.TempPathFactory) -> Iterator[S]:
    _require(cls.name)
    server = cls(tmp_path_factory.mktemp(cls.name))
    server.start()
    yield server
    server.stop()


@pytest.fixture(scope="session")
def mosquitto(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Mosquitto]:
    """One broker for the session; tests isolate themselves with a unique topic prefix."""
    yield from _session_server(Mosquitto, tmp_path_factory)


@pytest.fixture(scope="session")
def influxd(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Influxd]:
    """One InfluxDB for the session; tests isolate themselves with a database of their own."""
    yield from _session_server(Influxd, tmp_path_factory)


def _own_servers(cls: type[S], tmp_path: Path) -> Iterator[Callable[..., S]]:
    """A factory of servers of the test's own; every one it started is stopped at the end."""
    _require(cls.name)
    started: list[S] = []

    def make(**kwargs: object) -> S:
        server = cls(tmp_path / f"{cls.name}{len(started)}", **kwargs)  # type: ignore[arg-type]
        server.start()
        started.append(server)
        return server

    yield make
    for server in started:
        server.stop()


@pytest.fixture
def make_mosquitto(tmp_path: Path) -> Iterator[Callable[..., Mosquitto]]:
    """A broker of the test's own, for tests that stop, kill or reconfigure it."""
    yield from _own_servers(Mosquitto, tmp_path)


@pytest.fixture
def make_influxd(tmp_path: Path) -> Iterator[Callable[..., Influxd]]:
    """An InfluxDB of the test's own, for tests that stop, pause or reconfigure it."""
    yield from _own_servers(Influxd, tmp_path)


@pytest.fixture
def database(influxd: Influxd) -> Iterator[str]:
    """A fresh database on the session InfluxDB, dropped after the test."""
    name = f"t_{uuid.uuid4().hex[:12]}"
    influxd.create_database(name)
    yield name
    influxd.query(f'DROP DATABASE "{name}"')


@pytest.fixture
def topic_prefix() -> str:
    """A unique uplink prefix, so tests sharing the broker never see each other's messages."""
    return f"uplink-{uuid.uuid4().hex[:10]}"


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
        ing.kill()  # those still running


@pytest.fixture
def pipeline(  # noqa: PLR0917  # fixtures
    start_ingester: StartIngester,
    mosquitto: Mosquitto,
    influxd: Influxd,
    database: str,
    topic_prefix: str,
    tmp_path: Path,
) -> Iterator[Pipeline]:
    """The test's path through the session servers (tests/support/pipeline.py); its API
    processes are killed at the end, then its ingesters (`start_ingester`)."""
    with Publisher(mosquitto.host, mosquitto.port) as publisher:
        p = Pipeline(
            start_ingester, publisher, mosquitto, influxd, database, topic_prefix, tmp_path
        )
        try:
            yield p
        finally:
            p.close()


@pytest_asyncio.fixture
async def _no_leftover_tasks() -> AsyncIterator[None]:
    """Fail the test if asyncio tasks it started are still pending once it and its fixtures end.

    Home Assistant's `verify_cleanup`: a task left running hides a missing `await`, a stage that
    never stopped, or a shutdown that only works because the loop is closed under it. The loop
    is the test's own (`asyncio_default_fixture_loop_scope = "function"`), so anything pending
    at the end was started by the test or its fixtures; this fixture is set up first (through the
    autouse one below) and so torn down last, after the others have cleaned up.
    """
    before = asyncio.all_tasks()
    yield
    current = asyncio.current_task()
    left = {t for t in asyncio.all_tasks() - before if t is not current}
    if not left:
        return
    for task in left:
        task.cancel()
    await asyncio.wait(left)  # cancelled here, so the loop closes with nothing pending
    names = ", ".join(sorted(getattr(t.get_coro(), "__qualname__", repr(t)) for t in left))
    pytest.fail(f"{len(left)} asyncio task(s) left running after the test: {names}", pytrace=False)


@pytest.fixture(autouse=True)
def verify_cleanup(request: pytest.FixtureRequest) -> None:
    """For every `asyncio` test, check that it leaves no task behind (`_no_leftover_tasks`)."""
    if request.node.get_closest_marker("asyncio") is not None:
        request.getfixturevalue("_no_leftover_tasks")


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]) -> object:
    """On failure, attach the tail of every server log the test touched."""
    report = yield
    if getattr(report, "failed", False):
        for value in getattr(item, "funcargs", {}).values():
            if isinstance(value, Mosquitto | Influxd):
                report.sections.append((f"{value.name} log", value.log_tail()))  # type: ignore[attr-defined]
    return report
