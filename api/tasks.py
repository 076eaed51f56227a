"""How the app ends a background task of its lifespan (status poll, publisher, event bus)."""

from __future__ import annotations

import asyncio
import contextlib


async def stop_task(task: asyncio.Task[None]) -> None:
    """Cancel `task` and wait until it has finished; its cancellation is not an error."""
    task.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await task
