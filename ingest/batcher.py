"""The batching stage: `Processed` lists in, `Batch`es out, by size or by age.

A batch keys points by identity, so a later line for one point (a newer merge of a
transmission) replaces the earlier one and InfluxDB gets the newest state once.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field

from ingest.merge import Key
from ingest.points import PointKey
from ingest.processor import EventKey, Processed
from ingest.received import AckToken


@dataclass(slots=True)
class Batch:
    """Points keyed by identity (a later line for one point replaces the earlier one)."""

    points: dict[PointKey, str] = field(default_factory=dict)
    acks: list[AckToken] = field(default_factory=list)
    started: float = 0.0
    accepted: int = 0
    events: list[bytes] = field(default_factory=list)  # as `Processed.events`
    event_keys: list[EventKey] = field(default_factory=list)  # as `Processed.event_keys`
    newest: int = -1  # as `Processed.newest`
    verify: list[Key] = field(default_factory=list)  # as `Processed.verify`

    def add(self, processed: Processed) -> None:
        for key, line in processed.lines:
            self.points.pop(key, None)  # keep write order = arrival order of the newest state
            self.points[key] = line
        self.acks.extend(processed.acks)
        self.accepted += processed.accepted
        self.events += processed.events
        self.event_keys += processed.event_keys
        self.newest = max(self.newest, processed.newest)
        self.verify += processed.verify

    def __bool__(self) -> bool:
        return bool(self.points or self.acks)


class Batcher:
    """Processed lists into batches, flushed at `size` points or after `interval` seconds."""

    def __init__(self, size: int, interval: float) -> None:
        self.size = size
        self.interval = interval

    async def run(
        self, inbox: asyncio.Queue[Processed | None], outbox: asyncio.Queue[Batch | None]
    ) -> None:
        batch = Batch()
        loop = asyncio.get_running_loop()
        while True:
            if batch:
                remaining = batch.started + self.interval - loop.time()
                try:
                    processed = await asyncio.wait_for(inbox.get(), max(0.0, remaining))
                except TimeoutError:
                    await outbox.put(batch)
                    batch = Batch()
                    continue
            else:
                processed = await inbox.get()
            if processed is None:
                if batch:
                    await outbox.put(batch)
                await outbox.put(None)
                return
            if not batch:
                batch.started = loop.time()
            batch.add(processed)
            if len(batch.points) >= self.size:
                await outbox.put(batch)
                batch = Batch()
