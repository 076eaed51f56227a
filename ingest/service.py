"""The ingester's lifecycle: open clients, run the stages in one TaskGroup, shut down in order.

Shutdown (first SIGTERM/SIGINT): stop reading from the broker, let the stages drain, store or
spool what was read under `ingest_shutdown_timeout`, ack it, disconnect. A second signal exits
at once (the broker redelivers whatever was not acked).

`run` reads top to bottom as the lifecycle: `_wire` builds the stages and the queues between
them, `_start_flow` starts process, batch and store, `_drain` is the ordered shutdown.
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import logging
from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol

from catalogue import Catalogue
from influx.client import InfluxClient
from influx.connection import async_client
from ingest.batcher import Batch, Batcher
from ingest.events import EventPublisher
from ingest.lookup import StoredLookup, newest_stored_time
from ingest.metrics import Metrics
from ingest.mqtt import MqttSource
from ingest.points import RejectStamper
from ingest.processor import Processed, Processor
from ingest.received import AckToken, Incoming
from ingest.sink import Sink, Storer
from ingest.spool import Spool, SpoolBusy
from ingest.watcher import Emit, StatusWatcher, log_emit
from telemetry.errors import StartupError
from telemetry.settings import Settings

log = logging.getLogger(__name__)

# Queue bounds, in chunks/batches: enough to keep every stage busy while the next one works.
# Memory is bounded by them and by the broker's in-flight window (see ingest/mqtt.py).
INBOX_CHUNKS = 4
BATCHES_AHEAD = 2


class Source(Protocol):
    """What the stages need of the receiving end: `MqttSource`, or a test's fake."""

    barrier_timeout: float

    async def run(self) -> None: ...
    def stop_intake(self) -> None: ...
    def close(self) -> None: ...
    def ack(self, tokens: list[AckToken]) -> int: ...
    def oldest_unacked(self) -> float: ...
    def connected_for(self) -> float: ...


# Makes the source from the settings, the queue it fills and the received-messages counter.
MakeSource = Callable[
    [Settings, "asyncio.Queue[list[Incoming] | None]", Callable[[int], None]], Source
]


# Young-generation collections every 10,000 net allocations instead of 700: a message makes
# a dozen short-lived objects, and most die by reference counting before any collection.
GC_THRESHOLD0 = 10_000


def _tune_gc() -> None:
    """Make the cyclic garbage collector cheaper on the per-message path.

    Measured on the processing stage alone (60,000 uplinks): collections took about a fifth
    of its time, most of it full collections walking every object alive, including the
    hundreds of thousands made at start-up (modules, pydantic schemas, the catalogue) that
    never become garbage. `gc.freeze()` moves those out of the collector's sight; raising the
    first threshold makes young collections rarer. Cyclic garbage is still collected.
    """
    gc.collect()
    gc.freeze()
    _, gen1, gen2 = gc.get_threshold()
    gc.set_threshold(GC_THRESHOLD0, gen1, gen2)


def _open_spool(settings: Settings) -> Spool:
    """The spool, its folder locked for this process; a folder we cannot have stops the start."""
    try:
        return Spool(settings.ingest_spool_dir, settings.ingest_spool_max_bytes)
    except SpoolBusy as exc:
        raise StartupError(
            f"{exc} (another `telemetry ingest`?); give each ingester its own folder:"
            " set TELEMETRY_INGEST_SPOOL_DIR"
        ) from None
    except OSError as exc:
        raise StartupError(
            f"cannot use the spool folder {str(settings.ingest_spool_dir)!r}: {exc.strerror or exc}"
            " (set TELEMETRY_INGEST_SPOOL_DIR)"
        ) from None


def _status_watcher(  # noqa: PLR0917  # the parts it watches
    settings: Settings,
    catalogue: Catalogue,
    influx: InfluxClient,
    metrics: Metrics,
    emit: Emit,
    wired: _Wired,
) -> StatusWatcher:
    """The status watcher on the ingester's InfluxDB client (it reads and writes little).

    It judges silence only while InfluxDB holds every uplink received: subscribed for
    `TELEMETRY_STATUS_SETTLE_SECONDS` and the spool empty. Otherwise a device whose uplinks
    still wait in the broker (an ingester restart, a lost connection) or in the spool (an
    InfluxDB outage) would be recorded late or offline, and then back, though it never stopped
    talking. The broker delivers what it kept for the session first: at most
    `max_queued_messages` + `max_inflight_messages` of telemetry/servers.py's config (110,000),
    stored in about 8 s at ingest's 13,000 a second. The crossings are recorded at their own
    times once it judges again, so waiting loses none.
    """
    source, spool = wired.source, wired.sink.spool
    settle = settings.status_settle_seconds
    return StatusWatcher(
        catalogue,
        influx,
        emit,
        events_prefix=settings.mqtt_events_prefix,
        gauges=metrics.set_status,
        poll_seconds=settings.status_poll_seconds,
        caught_up=lambda: spool.empty and source.connected_for() >= settle,
    )


@dataclass(slots=True)
class _Wired:
    """The stages of one run, wired to each other, and the bounded queues between them."""

    source: Source
    sink: Sink
    processor: Processor
    storer: Storer
    events: EventPublisher | None
    inbox: asyncio.Queue[list[Incoming] | None]
    processed: asyncio.Queue[Processed | None]
    batches: asyncio.Queue[Batch | None]


async def _wire(
    settings: Settings,
    catalogue: Catalogue,
    influx: InfluxClient,
    *,
    spool: Spool,
    metrics: Metrics,
    make_source: MakeSource,
) -> _Wired:
    """Receive, process, batch and store, each handed what it shares with the others."""
    stamper = RejectStamper()  # one per ingester: no two of its rejects share a point
    sink = Sink(
        influx.writer,
        spool,
        metrics,
        create_database=influx.create_database,
        stamper=stamper,
    )
    inbox: asyncio.Queue[list[Incoming] | None] = asyncio.Queue(INBOX_CHUNKS)
    processed: asyncio.Queue[Processed | None] = asyncio.Queue(INBOX_CHUNKS)
    batches: asyncio.Queue[Batch | None] = asyncio.Queue(BATCHES_AHEAD)
    source = make_source(settings, inbox, metrics.received.inc)
    # What InfluxDB holds, and what earlier runs on this spool folder acked (stored, or still
    # spooled and so not in InfluxDB yet): transmissions up to either may have a point already.
    # While batches wait in the spool, InfluxDB lacks their points: lookups cannot say, so the
    # copies that must wait do (ingest/processor.py, `_look_up`).
    lookup = StoredLookup(influx, readable=lambda: spool.empty)
    processor = Processor(
        settings,
        catalogue,
        metrics,
        lookup,
        known_after=await newest_stored_time(influx),
        taken_before=spool.newest_acked,
        stamper=stamper,
        copies=lookup.copies,
    )
    # DESIGN section 9. Its `emit(topic, payload)` is what other event makers are handed.
    events = EventPublisher(settings, metrics) if settings.ingest_events else None
    storer = Storer(sink, source.ack, metrics, events.emit_many if events else None)
    storer.on_stored = processor.stored if settings.mqtt_share_group is not None else None
    if events is not None:
        sink.on_refused = events.on_write_refused
    return _Wired(source, sink, processor, storer, events, inbox, processed, batches)


def _start_flow(
    tg: asyncio.TaskGroup, settings: Settings, wired: _Wired
) -> list[asyncio.Task[None]]:
    """Process, batch and store as tasks of `tg`: what shutdown waits for, in flow order."""
    batcher = Batcher(settings.ingest_batch_size, settings.ingest_flush_interval)
    return [
        tg.create_task(wired.processor.run(wired.inbox, wired.processed)),
        tg.create_task(batcher.run(wired.processed, wired.batches)),
        tg.create_task(wired.storer.run(wired.batches)),
    ]


async def _drain(settings: Settings, wired: _Wired, stages: list[asyncio.Task[None]]) -> None:
    """Stop intake, let the stages store what was read, then disconnect, by the deadline."""
    log.info("stopping: no new messages, storing what was read")
    wired.source.stop_intake()
    loop = asyncio.get_running_loop()
    budget = settings.ingest_shutdown_timeout
    end = loop.time() + budget
    # The sink stops retrying InfluxDB at 70 % of the budget and the stages get until
    # 85 %; the rest is for the last acks and the disconnect, so that the process is
    # gone by the deadline (measured before: 6.1 s for a 5 s budget).
    wired.sink.deadline = end - 0.3 * budget
    try:
        async with asyncio.timeout(0.85 * budget):
            await wired.inbox.put(None)
            await asyncio.gather(*stages)
            await _last_check(wired)
    except TimeoutError:
        log.error(  # noqa: TRY400  # expected, no traceback
            "shutdown deadline passed; unacked messages stay with the broker"
        )
        for task in stages:
            task.cancel()
    if wired.events is not None:  # the last batches' events, from what is left
        await wired.events.close(max(0.0, min(1.0, end - loop.time() - 0.1 * budget)))
    wired.source.barrier_timeout = max(0.05, end - loop.time())
    wired.source.close()


async def _last_check(wired: _Wired) -> None:
    """A share group: check the last batches' transmissions once more (the other members'
    copies), or a point written last here might lack some of its stations."""
    last = await wired.processor.last_check()
    if last is not None:
        batch = Batch()
        batch.add(last)
        await wired.storer.store(batch)


async def run(
    settings: Settings,
    catalogue: Catalogue,
    stop: asyncio.Event,
    metrics: Metrics | None = None,
    *,
    tune_gc: bool = False,
    emit: Emit = log_emit,
    make_source: MakeSource = MqttSource,
) -> None:
    """Run until `stop` is set, then drain and return.

    `tune_gc` (the `telemetry ingest` process, not a library caller) makes garbage collection
    cheaper for the rest of the process, see `_tune_gc`. The status watcher's events go out
    through the event publisher; with `TELEMETRY_INGEST_EVENTS=false`, through `emit` (by
    default a DEBUG log line). `make_source` is the MQTT source unless a test injects its own.
    """
    metrics = metrics or Metrics()
    spool = _open_spool(settings)
    if not spool.empty:
        log.info("%d spooled batches from an earlier run will be replayed", len(spool))
    # The spool's folder lock is held until the ingester has stopped.
    async with contextlib.aclosing(spool), async_client(settings) as http:
        # one client for every read and write: the sink, the stored-copy lookup, the watcher
        influx = InfluxClient(
            http, settings.influx_database, bind_params=settings.influx_bind_params
        )
        await influx.create_database()
        wired = await _wire(
            settings, catalogue, influx, spool=spool, metrics=metrics, make_source=make_source
        )
        metrics.watch_oldest(wired.source.oldest_unacked)
        if tune_gc:
            _tune_gc()
        try:
            async with asyncio.TaskGroup() as tg:
                mqtt_task = tg.create_task(wired.source.run())
                replay_task = tg.create_task(wired.sink.replay())
                # Status events go out with the others; with events off, as DEBUG log lines.
                watch_emit = wired.events.emit if wired.events is not None else emit
                watch_task = tg.create_task(
                    _status_watcher(settings, catalogue, influx, metrics, watch_emit, wired).run(
                        stop
                    )
                )
                if wired.events is not None:
                    tg.create_task(wired.events.run())
                stages = _start_flow(tg, settings, wired)
                await stop.wait()
                await _drain(settings, wired, stages)
                replay_task.cancel()
                watch_task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await mqtt_task
        except* StartupError as group:  # e.g. the broker refused our subscription
            raise group.exceptions[0] from None
    log.info("stopped")
