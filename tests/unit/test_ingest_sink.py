"""The sink's decisions: write directly, spool, replay in order, and when to try InfluxDB again.

InfluxDB is an `httpx.MockTransport` here, so that each answer (down, 503, 404, 429, refused)
can be given on cue; the same paths against a real `influxd` are in
tests/integration/test_ingest_faults.py and tests/reliability/test_influx_faults.py.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from pathlib import Path

import httpx
import pytest

import ingest.sink
from influx.writer import InfluxWriter
from ingest.batcher import Batch
from ingest.metrics import Metrics
from ingest.sink import NotStored, Sink, stored_events
from ingest.spool import Spool

DOWN = 0  # `FakeInflux.status` meaning: the connection is refused


class FakeInflux:
    """Answers `/write` with `status` (or refuses the connection), `/ping` likewise."""

    def __init__(self) -> None:
        self.status = 204
        self.ping_status = 204
        self.stored: list[list[str]] = []  # bodies taken, in order
        self.writes = 0
        self.pings = 0
        self.retry_after: str | None = None
        self.then: list[int] = []  # statuses for the next writes, before `status` again

    def __call__(self, request: httpx.Request) -> httpx.Response:
        if request.url.path == "/ping":
            self.pings += 1
            if self.status == DOWN:
                raise httpx.ConnectError("connection refused", request=request)
            return httpx.Response(self.ping_status)
        self.writes += 1
        if self.then:
            self.status = self.then.pop(0)
        if self.status == DOWN:
            raise httpx.ConnectError("connection refused", request=request)
        lines = request.content.decode().split("\n")
        if self.status == 400:
            return httpx.Response(400, json={"error": "field type conflict"})
        if self.status != 204:
            headers = {"Retry-After": self.retry_after} if self.retry_after else {}
            return httpx.Response(self.status, headers=headers, text="no")
        self.stored.append(lines)
        return httpx.Response(204)

    def lines(self) -> list[str]:
        return [line for body in self.stored for line in body]


@asynccontextmanager
async def sink_on(
    tmp_path: Path,
    influx: FakeInflux,
    max_bytes: int = 1 << 20,
    create_database: Callable[[], bool] | None = None,
) -> AsyncIterator[Sink]:
    async def create() -> bool:
        assert create_database is not None
        return create_database()

    spool = Spool(tmp_path / "spool", max_bytes)
    transport = httpx.MockTransport(influx)
    try:
        async with httpx.AsyncClient(transport=transport, base_url="http://influx") as client:
            yield Sink(
                InfluxWriter(client, "db"),
                spool,
                Metrics(),
                create_database=create if create_database else None,
            )
    finally:
        spool.close()


@asynccontextmanager
async def replaying(sink: Sink) -> AsyncIterator[None]:
    task = asyncio.create_task(sink.replay())
    try:
        yield
    finally:
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task


async def until(condition: Callable[[], bool], what: str, within: float = 10.0) -> None:
    """Poll `condition` with a deadline (a failure names `what`)."""
    try:
        async with asyncio.timeout(within):
            while not condition():  # noqa: ASYNC110  # state of the sink's tasks, no event to wait on
                await asyncio.sleep(0.01)
    except TimeoutError:
        raise AssertionError(f"timed out waiting for {what}") from None


def sample(sink: Sink, name: str, **labels: str) -> float | None:
    return sink.metrics.registry.get_sample_value(f"telemetry_ingest_{name}", labels)


@pytest.fixture
def endless_backoff(monkeypatch: pytest.MonkeyPatch) -> list[float | None]:
    """Every backoff lasts an hour: a test that finishes did not wait for one. Records hints."""
    hints: list[float | None] = []

    def backoff(attempt: int, hint: float | None = None, **_: float) -> float:
        hints.append(hint)
        return 3600.0

    monkeypatch.setattr(ingest.sink, "backoff", backoff)
    return hints


@pytest.mark.asyncio
async def test_empty_spool_writes_directly(tmp_path: Path) -> None:
    influx = FakeInflux()
    async with sink_on(tmp_path, influx) as sink:
        await sink.store(["m f=1i 1", "m f=2i 2"])
        assert influx.stored == [["m f=1i 1", "m f=2i 2"]]
        assert sink.spool.empty
        assert sample(sink, "points_written_total") == 2


@pytest.mark.asyncio
@pytest.mark.parametrize("status", [DOWN, 503, 500, 429, 401, 404])
async def test_a_failed_direct_write_goes_to_the_spool(tmp_path: Path, status: int) -> None:
    influx = FakeInflux()
    influx.status = status
    async with sink_on(tmp_path, influx) as sink:
        await sink.store(["m f=1i 1"])
        assert influx.stored == []
        assert len(sink.spool) == 1
        assert sink.spool.oldest() is not None
        assert sample(sink, "write_retries_total") == 1
        assert sample(sink, "spool_batches") == 1


@pytest.mark.asyncio
async def test_refused_lines_become_rejects_and_are_not_spooled(tmp_path: Path) -> None:
    influx = FakeInflux()
    influx.then = [400, 204]  # the line refused, then its reject record taken
    async with sink_on(tmp_path, influx) as sink:
        await sink.store(["wristband,device=AA heart_rate=1.5 1"])
        assert sink.spool.empty
        [[reject]] = influx.stored
        assert reject.startswith("rejected,reason=write_refused")
        assert sample(sink, "rejected_total", reason="write_refused") == 1


@pytest.mark.asyncio
async def test_while_the_spool_has_batches_new_ones_queue_behind_them(tmp_path: Path) -> None:
    # Order matters: a newer merge of a transmission must not be overwritten by an older one.
    influx = FakeInflux()
    influx.status = DOWN
    async with sink_on(tmp_path, influx) as sink:
        await sink.store(["m f=1i 1"])
        influx.status = 204  # InfluxDB is back, but the spool is not empty yet
        await sink.store(["m f=2i 2"])
        await sink.store(["m f=3i 3"])
        assert influx.stored == []
        assert len(sink.spool) == 3
        async with replaying(sink):
            await until(lambda: sink.spool.empty, "the spool replayed")
        assert influx.lines() == ["m f=1i 1", "m f=2i 2", "m f=3i 3"]
        await sink.store(["m f=4i 4"])  # empty again: direct
        assert influx.lines()[-1] == "m f=4i 4"
        assert sink.spool.empty


@pytest.mark.asyncio
async def test_replay_resumes_when_influx_answers_not_when_the_backoff_ends(
    tmp_path: Path, endless_backoff: list[float | None]
) -> None:
    influx = FakeInflux()
    influx.status = DOWN
    async with sink_on(tmp_path, influx) as sink:
        await sink.store(["m f=1i 1"])
        await sink.store(["m f=2i 2"])
        async with replaying(sink):
            # The replay write fails and an hour-long backoff starts; probes go on meanwhile.
            await until(lambda: influx.pings >= 2, "probes while InfluxDB is down")
            assert influx.writes == 2  # the direct write, one replay attempt: no hammering
            influx.status = 204
            await until(lambda: sink.spool.empty, "the spool replayed once InfluxDB answers")
        assert influx.lines() == ["m f=1i 1", "m f=2i 2"]
        assert len(endless_backoff) == 1


@pytest.mark.asyncio
async def test_an_answering_influx_that_fails_gets_the_backoff_not_the_probe(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # A throttled (503) InfluxDB answers /ping at once; probing it would retry the write at
    # once too, and the backoff would no longer bound the rate of failing writes.
    hints: list[float | None] = []
    attempts = asyncio.Event()

    def backoff(attempt: int, hint: float | None = None, **_: float) -> float:
        hints.append(hint)
        if len(hints) == 3:
            attempts.set()
        return 0.01

    monkeypatch.setattr(ingest.sink, "backoff", backoff)
    influx = FakeInflux()
    influx.status = 503
    influx.retry_after = "7"
    async with sink_on(tmp_path, influx) as sink:
        await sink.store(["m f=1i 1"])
        async with replaying(sink):
            async with asyncio.timeout(10):
                await attempts.wait()
            influx.status = 204
            await until(lambda: sink.spool.empty, "the spool replayed")
        assert influx.pings == 0
        assert hints[:3] == [7.0, 7.0, 7.0]  # Retry-After reaches the backoff
        assert influx.lines() == ["m f=1i 1"]


@pytest.mark.asyncio
async def test_a_missing_database_is_created_and_written_at_once(
    tmp_path: Path, endless_backoff: list[float | None]
) -> None:
    influx = FakeInflux()
    influx.status = 404
    created: list[bool] = []

    def create() -> bool:
        created.append(True)
        influx.status = 204
        return True

    async with sink_on(tmp_path, influx, create_database=create) as sink:
        await sink.store(["m f=1i 1"])
        async with replaying(sink):
            await until(lambda: sink.spool.empty, "the spool replayed into the new database")
        assert created == [True]
        assert influx.lines() == ["m f=1i 1"]


@pytest.mark.asyncio
async def test_a_database_that_stays_missing_after_creation_waits_for_the_backoff(
    tmp_path: Path, endless_backoff: list[float | None]
) -> None:
    # e.g. created on another server behind a balancer: no loop of create-and-write.
    influx = FakeInflux()
    influx.status = 404
    created: list[bool] = []

    def create() -> bool:
        created.append(True)
        return True

    async with sink_on(tmp_path, influx, create_database=create) as sink:
        await sink.store(["m f=1i 1"])
        async with replaying(sink):
            await until(lambda: len(endless_backoff) == 2, "the second failure's backoff")
            assert created == [True]
            assert influx.writes == 3  # direct, replay, replay after creating: then it waits
        assert len(sink.spool) == 1


@pytest.mark.asyncio
async def test_a_full_spool_holds_the_caller_until_the_replay_makes_room(tmp_path: Path) -> None:
    influx = FakeInflux()
    influx.status = DOWN
    async with sink_on(tmp_path, influx, max_bytes=1024) as sink:
        await sink.store(["m big=" + "9" * 1100 + "i 1"])
        assert sink.spool.full
        blocked = asyncio.create_task(sink.store(["m f=2i 2"]))
        await asyncio.sleep(0)
        assert not blocked.done()  # back-pressure: not stored, not acked
        influx.status = 204
        async with replaying(sink):
            async with asyncio.timeout(10):
                await blocked
            await until(lambda: sink.spool.empty, "the spool replayed")
        assert [line[:6] for line in influx.lines()] == ["m big=", "m f=2i"]


@pytest.mark.asyncio
async def test_a_full_spool_at_the_shutdown_deadline_is_not_stored(tmp_path: Path) -> None:
    influx = FakeInflux()
    influx.status = DOWN
    async with sink_on(tmp_path, influx, max_bytes=1024) as sink:
        await sink.store(["m big=" + "9" * 1100 + "i 1"])
        sink.deadline = asyncio.get_running_loop().time()  # already passed
        with pytest.raises(NotStored):
            await sink.store(["m f=2i 2"])
        assert len(sink.spool) == 1


def test_stored_events_leave_out_the_up_events_of_refused_points() -> None:
    batch = Batch(
        points={
            ("wristband", "CC", 5): "wristband,device=CC heart_rate=1i 5",
            ("uplink", "CC", 5): "uplink,device=CC,type=wristband seq=1i 5",
            ("wristband", "DD", 5): "wristband,device=DD heart_rate=2i 5",
            ("rejected", "DD", 7): 'rejected,device=DD,reason=json detail="x" 7',
        },
        events=[b"up-cc", b"1", b"up-cc-again", b"2", b"reject", b"3", b"up-dd", b"4"],
        event_keys=[("CC", 5), ("CC", 5), None, ("DD", 5)],
    )
    refused = {"wristband,device=CC heart_rate=1i 5", 'rejected,device=DD,reason=json detail="x" 7'}
    # Both events of CC go (either of its lines would); a refused reject record drops no `up`.
    assert stored_events(batch, refused) == [b"reject", b"3", b"up-dd", b"4"]
