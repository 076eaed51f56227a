"""The API's one MQTT subscription to the events (DESIGN section 9), feeding the hub.

    broker ─`<prefix>/#`─► EventBus (aiomqtt, reconnecting) ─► Hub.publish (api/hub.py)

The log of events, the clients' cursors, filters and overflow are in api/hub.py.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
import uuid
from collections.abc import Callable

import aiomqtt

from api.hub import Hub
from telemetry.settings import Settings

# Jitter from a generator of its own: background retries never touch the global `random`
# state that simulators and tests seed (Hypothesis flags strategies whose draws it changes).
_JITTER = random.Random()  # noqa: S311  # jitter, not crypto

log = logging.getLogger(__name__)

RECONNECT_BASE = 0.5  # s, first retry after a lost connection (full jitter)
RECONNECT_CAP = 30.0  # s
# Received but not yet fanned out, at most (aiomqtt drops past it): a minute at 1,000/s.
INCOMING_MAX = 60_000


class EventBus:
    """The process's one subscription to `<prefix>/#`, feeding the hub, reconnecting forever."""

    def __init__(self, settings: Settings, hub: Hub) -> None:
        self.settings = settings
        self.hub = hub
        self.prefix = settings.mqtt_events_prefix
        # Random: every API process has its own subscription, and none takes another's.
        self.client_id = f"telemetry-api-{uuid.uuid4().hex[:10]}"
        self.connected = asyncio.Event()

    async def run(self) -> None:
        ep = self.settings.mqtt
        attempt = 0
        while True:
            client = aiomqtt.Client(
                ep.host,
                ep.port,
                username=ep.username,
                password=ep.password,
                identifier=self.client_id,
                protocol=aiomqtt.ProtocolVersion.V311,
                clean_session=True,  # events are now or never: nothing to keep while away
                keepalive=self.settings.mqtt_keepalive,
                tls_params=aiomqtt.TLSParameters() if ep.tls else None,
                max_queued_incoming_messages=INCOMING_MAX,
            )
            try:
                async with client:
                    await client.subscribe(f"{self.prefix}/#", qos=1)
                    attempt = 0
                    self.connected.set()
                    log.info("stream: subscribed to %r as %r", f"{self.prefix}/#", self.client_id)
                    publish, prefix = self.hub.publish, self.prefix
                    async for message in client.messages:
                        body = message.payload
                        if isinstance(body, bytes | bytearray):
                            publish(prefix, message.topic.value, bytes(body))
            except aiomqtt.MqttError as exc:
                log.warning("stream: MQTT connection lost or refused: %s", exc)
            finally:
                self.connected.clear()
            delay = _JITTER.uniform(0, min(RECONNECT_CAP, RECONNECT_BASE * 2**attempt))
            attempt += 1
            await asyncio.sleep(delay)


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


async def stop_task(task: asyncio.Task[None]) -> None:
    task.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await task
