"""The storing stage: `Storer` takes batches in order, `Sink` puts each in InfluxDB or the spool.

Where a batch goes: straight to InfluxDB, or to the disk spool while InfluxDB is unreachable.

- Spool empty: one direct write. Lines refused for their content go to `rejected`; a failure
  worth retrying sends the batch to the spool instead (the replayer does the retrying).
- Spool not empty: the batch is appended behind the others, so that points reach InfluxDB in
  arrival order (a newer merge of a transmission must not be overwritten by an older one).
- Spool full: wait for room; meanwhile nothing is acked and intake stops (back-pressure).
- The replayer writes the oldest spooled batch until InfluxDB takes it, then deletes it.
  Between attempts it waits a capped exponential backoff with full jitter (Retry-After
  honoured): that bounds the rate of failing writes. When the failure was that nothing
  answered (network, timeout, a proxy's 502/504) it also probes `/ping` every `PROBE_PERIOD`
  and retries as soon as InfluxDB answers, so that storing resumes within about a second of
  InfluxDB coming back, not at the end of a backoff of up to 30 s. An InfluxDB that answers
  with an error (503 throttled, 401) gets the backoff alone: probing it would say nothing new.
  One that answers /ping but lets writes time out is written about once per write timeout,
  one write at a time.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Awaitable, Callable

from influx.errors import WriteError
from influx.lineprotocol import LineProtocolError
from influx.schema import REJECTED
from influx.writer import BACKOFF_CAP, InfluxWriter, Refused
from ingest.batcher import Batch
from ingest.merge import Key
from ingest.metrics import Metrics
from ingest.points import RejectStamper
from ingest.received import AckToken
from ingest.spool import Spool
from telemetry.backoff import backoff

log = logging.getLogger(__name__)

# While InfluxDB does not answer, the replayer asks it this often whether it is back: storing
# resumes at most this long (plus one probe) after it answers again. A probe is a tiny GET, so
# two a second cost nothing even during a long outage.
PROBE_PERIOD = 0.5  # s
# A live InfluxDB answers /ping in milliseconds even under load; a hung one never does.
PROBE_TIMEOUT = 1.0  # s
# Write failures that mean nobody answered: network errors and timeouts (no status), or a
# proxy in front of InfluxDB saying it cannot reach it.
UNANSWERED = frozenset({None, 502, 504})


class NotStored(Exception):
    """The shutdown deadline passed before a batch could be stored or spooled."""


class Sink:
    def __init__(
        self,
        writer: InfluxWriter,
        spool: Spool,
        metrics: Metrics,
        create_database: Callable[[], Awaitable[bool]] | None = None,
        stamper: RejectStamper | None = None,
    ) -> None:
        self.writer = writer
        self.stamper = stamper or RejectStamper()  # shared with the processor by the service
        # Called when a write says the database does not exist (InfluxDB was unreachable at
        # our start, or was replaced by an empty one): create it, then retry.
        self.create_database = create_database
        self.spool = spool
        self.metrics = metrics
        self.deadline: float | None = None  # loop time; set at shutdown
        self._changed = asyncio.Event()  # the spool grew or shrank
        # Told of each line kept as `write_refused` (detail, time in ns): its event.
        self.on_refused: Callable[[str, int], None] | None = None
        self._failing = False
        self._update_gauges()

    def _update_gauges(self) -> None:
        self.metrics.spool_batches.set(len(self.spool))
        self.metrics.spool_bytes.set(self.spool.bytes)

    def _remaining(self) -> float | None:
        if self.deadline is None:
            return None
        return max(0.0, self.deadline - asyncio.get_running_loop().time())

    async def _write(self, lines: list[str]) -> list[Refused]:
        """One attempt; refused lines are kept as rejects (in the same call) and returned."""
        started = time.perf_counter()
        try:
            refused = await self.writer.write(lines)
        finally:
            self.metrics.write_latency.observe(time.perf_counter() - started)
        self.metrics.points.inc(len(lines) - len(refused))
        if refused:
            await self._keep_refused(refused)
        if self._failing:
            log.info("InfluxDB takes writes again")
            self._failing = False
        return refused

    async def _keep_refused(self, refused: list[Refused]) -> None:
        keep, kept = [], []
        for item in refused:
            self.metrics.rejected.labels("write_refused").inc()
            log.warning("InfluxDB refused a line: %s: %r", item.message, item.line[:200])
            try:
                now, (_, line) = self.stamper.record(
                    "write_refused", None, "", item.line.encode(), item.message, time.time_ns()
                )
            except LineProtocolError:  # cannot happen for our own text, but never loop
                continue
            keep.append(line)
            kept.append((item.message, now))
        again = await self.writer.write(keep)
        if self.on_refused is not None:
            for detail, now in kept:
                self.on_refused(detail, now)
        for item in again:  # the reject record itself refused: nothing more we can do
            log.error("InfluxDB refused a rejected-message record: %s", item.message)

    async def store(self, lines: list[str]) -> set[str]:
        """Return once `lines` are in InfluxDB or fsynced in the spool: the lines InfluxDB
        refused, when it was written to at once (a spooled batch's are known only later)."""
        if not lines:
            return set()
        if self.spool.empty:
            try:
                async with asyncio.timeout(self._remaining()):
                    refused = await self._write(lines)
            except (WriteError, TimeoutError) as exc:
                self._note_failure(exc)
            else:
                return {item.line for item in refused}
        await self._append(lines)
        return set()

    async def _append(self, lines: list[str]) -> None:
        while self.spool.full:
            self._changed.clear()
            try:
                async with asyncio.timeout(self._remaining()):
                    await self._changed.wait()
            except TimeoutError:
                raise NotStored("spool full") from None
        attempt = 0
        while True:
            try:
                await asyncio.to_thread(self.spool.append, lines)
                break
            except OSError as exc:  # disk full or gone: hold the batch, never drop it
                log.error("cannot write to the spool (%s); holding the batch", exc)  # noqa: TRY400
                delay = backoff(attempt, cap=10.0)
                remaining = self._remaining()
                if remaining is not None and remaining <= delay:
                    raise NotStored(f"spool write failed: {exc}") from None
                await asyncio.sleep(delay)
                attempt += 1
        self._update_gauges()
        self._changed.set()

    def _note_failure(self, exc: Exception) -> None:
        self.metrics.retries.inc()
        if not self._failing:
            log.warning("InfluxDB write failed (%s); spooling to disk until it recovers", exc)
            self._failing = True

    async def replay(self) -> None:
        """Forever: write the oldest spooled batch, delete it once stored."""
        attempt = 0
        created = False  # the last failure was a missing database that we then created
        while True:
            if self.spool.empty:  # checked with no await before the wait: no lost wake-up
                self._changed.clear()
                await self._changed.wait()
                continue
            oldest = await asyncio.to_thread(self.spool.oldest)
            if oldest is None:
                continue
            path, lines = oldest
            try:
                await self._write(lines)
            except WriteError as exc:
                self._note_failure(exc)
                delay = backoff(attempt, cap=BACKOFF_CAP, hint=exc.wait)
                attempt += 1
                if exc.status == 404 and self.create_database is not None and not created:
                    # Created (InfluxDB was empty or unreachable at start): write again now.
                    # Once only: a 404 right after a creation means something else is wrong.
                    created = await self.create_database()
                    if created:
                        continue
                created = False
                if exc.status in UNANSWERED:
                    await self._until_answering(delay)
                else:
                    await asyncio.sleep(delay)
                continue
            attempt = 0
            created = False
            self.spool.remove(path)
            self._update_gauges()
            self._changed.set()
            if self.spool.empty:
                log.info("spool replayed")

    async def _until_answering(self, longest: float) -> None:
        """Wait `longest` seconds, or less: until InfluxDB answers a probe."""
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(longest):
                while True:
                    await asyncio.sleep(PROBE_PERIOD)
                    if await self.writer.answers(PROBE_TIMEOUT):
                        log.info("InfluxDB answers again; replaying the spool")
                        return


class Storer:
    """Stores batches in order and acks each batch's messages once it is stored or spooled."""

    def __init__(
        self,
        sink: Sink,
        ack: Callable[[list[AckToken]], int],
        metrics: Metrics,
        publish: Callable[[list[bytes]], None] | None = None,
    ):
        self.sink = sink
        self.ack = ack
        self.metrics = metrics
        self.publish = publish  # the batch's events, once it is stored and acked; never blocks
        # Share groups: the transmissions a stored batch wrote, to check (`Processor.stored`).
        self.on_stored: Callable[[list[Key]], None] | None = None

    async def run(self, inbox: asyncio.Queue[Batch | None]) -> None:
        while (batch := await inbox.get()) is not None:
            if not await self.store(batch):
                return

    async def store(self, batch: Batch) -> bool:
        """Store `batch`, then ack its messages and publish its events; False when the
        shutdown deadline came first (with a full spool: the broker keeps them)."""
        try:
            refused = await self.sink.store(list(batch.points.values()))
        except NotStored as exc:
            log.error(  # noqa: TRY400  # an expected condition, no traceback
                "%d messages (%d points) not stored before the deadline (%s); not acked",
                len(batch.acks),
                len(batch.points),
                exc,
            )
            return False
        if batch.newest >= 0:  # kept before the acks: the next run's hold horizon
            await self._note_acked(batch.newest)
        self.metrics.stored.inc(batch.accepted)
        self.metrics.acks.inc(self.ack(batch.acks))
        if self.on_stored is not None and batch.verify:
            self.on_stored(batch.verify)
        if self.publish is not None and batch.events:
            self.publish(stored_events(batch, refused) if refused else batch.events)
        return True

    async def _note_acked(self, newest: int) -> None:
        spool = self.sink.spool
        try:
            if spool.empty:  # written to InfluxDB, which has it durably
                spool.note_acked(newest, durable=False)
            else:  # spooled: as durable as the spool
                await asyncio.to_thread(spool.note_acked, newest, durable=True)
        except OSError as exc:  # the next run then holds less: say so, never stop storing
            log.error("cannot keep the newest acked uplink time (%s)", exc)  # noqa: TRY400


def stored_events(batch: Batch, refused: set[str]) -> list[bytes]:
    """The batch's events but the `up` events of transmissions InfluxDB refused a line of (a
    field type conflict, say): DESIGN section 9 publishes an uplink once it is stored."""
    gone = {
        (k[1], k[2]) for k, line in batch.points.items() if line in refused and k[0] != REJECTED
    }
    events = batch.events
    return [
        part
        for i, key in enumerate(batch.event_keys)
        if key is None or key not in gone
        for part in events[2 * i : 2 * i + 2]
    ]
