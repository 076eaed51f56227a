"""ingest/batcher.py: processed lists become batches, flushed by size, then by age."""

from __future__ import annotations

import asyncio

import pytest

from ingest.batcher import Batch, Batcher
from ingest.processor import Processed


@pytest.mark.asyncio
async def test_batcher_flushes_on_size_then_on_age() -> None:
    inbox: asyncio.Queue[Processed | None] = asyncio.Queue()
    outbox: asyncio.Queue[Batch | None] = asyncio.Queue()
    task = asyncio.create_task(Batcher(size=2, interval=0.05).run(inbox, outbox))
    for i in range(3):
        await inbox.put(Processed([(("m", "d", i), f"m f=1i {i}")], [(i, 1, 1)]))
    first = await asyncio.wait_for(outbox.get(), 10)
    assert first is not None
    assert len(first.points) == 2
    second = await asyncio.wait_for(outbox.get(), 10)  # the age flush
    assert second is not None
    assert [a[0] for a in second.acks] == [2]
    await inbox.put(None)
    assert await asyncio.wait_for(outbox.get(), 10) is None
    await task
