"""Stand-ins for the ingester's receiving end, to run `ingest.service.run` in-process.

Only the source is faked: InfluxDB stays the real `influxd` of the session fixtures.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable

from ingest.mqtt import AckToken, Incoming
from telemetry.settings import Settings


class FakeSource:
    """Hands `messages` downstream in one list, then records the acks the stages send back.

    Implements `ingest.service.Source`; `make` is the factory `service.run` takes.
    """

    def __init__(self, messages: list[tuple[str, bytes]]) -> None:
        self.messages = messages
        self.acked: list[int] = []  # mids, in ack order
        self.barrier_timeout = 1.0
        self.out: asyncio.Queue[list[Incoming] | None] | None = None
        self.all_acked = asyncio.Event()  # set once every message was acked
        self._closed = asyncio.Event()
        self.intake_stopped = False

    def make(
        self,
        _settings: Settings,
        out: asyncio.Queue[list[Incoming] | None],
        on_received: Callable[[int], None],
    ) -> FakeSource:
        self.out = out
        self._on_received = on_received
        return self

    async def run(self) -> None:
        assert self.out is not None, "made by service.run first"
        now = time.time_ns()
        incoming = [
            Incoming(topic, body, mid, 1, 1, now)
            for mid, (topic, body) in enumerate(self.messages, 1)
        ]
        self._on_received(len(incoming))
        await self.out.put(incoming)
        await self._closed.wait()

    def stop_intake(self) -> None:
        self.intake_stopped = True

    def close(self) -> None:
        self._closed.set()

    def ack(self, tokens: list[AckToken]) -> int:
        self.acked += [mid for mid, _qos, _generation in tokens]
        if len(self.acked) >= len(self.messages):
            self.all_acked.set()
        return len(tokens)

    def oldest_unacked(self) -> float:
        return 0.0

    def connected_for(self) -> float:
        return 0.0  # never "caught up": its run records no status change
