"""The API's one MQTT subscription to the events (DESIGN section 9), feeding the hub.

    broker ─`<prefix>/#`─► EventBus (api/broker.py Link) ─► Hub.publish (api/hub.py)

The log of events, the clients' cursors, filters and overflow are in api/hub.py.
"""

from __future__ import annotations

import asyncio
import functools
import logging
from collections.abc import Callable

from api.broker import Link
from api.hub import Hub
from telemetry.settings import Settings

log = logging.getLogger(__name__)

RECONNECT_CAP = 30.0  # s between reconnection attempts at most (telemetry/backoff.py)
# Received but not yet fanned out, at most (aiomqtt drops past it): a minute at 1,000/s.
INCOMING_MAX = 60_000


class EventBus:
    """The process's one subscription to `<prefix>/#`, feeding the hub, reconnecting forever."""

    def __init__(self, settings: Settings, hub: Hub) -> None:
        self.hub = hub
        self.prefix = settings.mqtt_events_prefix
        # Its own connection, not the publisher's: api/broker.py says why.
        self.link = Link(
            settings, "stream", cap=RECONNECT_CAP, max_queued_incoming_messages=INCOMING_MAX
        )

    async def run(self) -> None:
        await self.link.keep_subscribed(
            f"{self.prefix}/#", functools.partial(self.hub.publish, self.prefix)
        )


async def watch_exit(should_exit: Callable[[], bool], hub: Hub, period: float = 0.1) -> None:
    """End every stream once the server is asked to stop.

    uvicorn waits for open connections to finish before it runs the lifespan's shutdown, so
    streams must end on its `should_exit` flag, polled here, or a SIGTERM would wait forever.
    """
    while not should_exit():  # noqa: ASYNC110  # uvicorn's flag is a plain bool, no Event
        await asyncio.sleep(period)
    hub.close_all()


LAG_PERIOD = 0.05  # s: often enough to see a stall of a tenth of a second, for ~nothing


async def watch_loop(hub: Hub) -> None:
    """Sample the event loop's lag into `hub.loop_lag`, for as long as the app runs."""
    loop = asyncio.get_running_loop()
    while True:
        due = loop.time() + LAG_PERIOD
        await asyncio.sleep(LAG_PERIOD)
        hub.loop_lag.observe(max(0.0, loop.time() - due))
