"""The API's publishes: QoS 1, returning only once the broker sent PUBACK, within a deadline.

Owned by the app's lifespan (`publishing`), on its own api/broker.py `Link`. `publish()` raises
`BrokerUnavailable` when the broker does not take the message, and never hangs:
- not connected: at once (the caller answers 503 and Sigfox retries later);
- the connection drops while we wait: at once, not at the deadline;
- no PUBACK by the deadline: then. A publish given up on may still reach the broker (paho
  sent it); the caller's retry is then a second copy of the same uplink, which ingest stores
  once (idempotent writes, DESIGN section 3).
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator

from api.broker import BrokerUnavailable, Link
from api.tasks import stop_task
from telemetry.settings import Settings

# Unacknowledged QoS 1 publishes paho keeps on the wire at once. uvicorn's limit_concurrency
# (100, api/command.py) bounds the requests in flight per process; the bench's 32 clients
# and any burst below that fit, so a callback never waits for a window slot behind others.
IN_FLIGHT = 1000
RECONNECT_CAP = 5.0  # s: the broker back is noticed within seconds, Sigfox retries after 60
CONNECT_TIMEOUT = 5.0  # s for the CONNACK; aiomqtt's connect runs in a thread meanwhile


class Publisher:
    """A reconnecting QoS 1 publisher; `connected` is set while a connection is up."""

    def __init__(self, settings: Settings) -> None:
        self.link = Link(
            settings,
            "publisher",
            cap=RECONNECT_CAP,
            max_inflight_messages=IN_FLIGHT,
            timeout=CONNECT_TIMEOUT,
        )
        self.connected = self.link.connected

    async def run(self) -> None:
        """Connect and stay connected until cancelled."""
        await self.link.keep_publishing()

    async def publish(self, topic: str, payload: bytes, timeout: float) -> None:  # noqa: ASYNC109  # the caller's remaining budget, also passed on as a number
        """Publish at QoS 1 and return once the broker acknowledged it, within `timeout` s."""
        lost = self.link.lost
        if not self.connected.is_set() or lost is None or lost.done():
            raise BrokerUnavailable("not connected to the MQTT broker")
        sent = asyncio.ensure_future(self.link.publish(topic, payload))
        try:
            done, _ = await asyncio.wait(
                (sent, lost), timeout=max(0.0, timeout), return_when=asyncio.FIRST_COMPLETED
            )
        finally:
            if not sent.done():
                sent.cancel()
        if sent not in done:
            with contextlib.suppress(asyncio.CancelledError, BrokerUnavailable):
                await sent
            reason = (
                "the connection was lost" if lost.done() else f"no PUBACK within {timeout:.1f} s"
            )
            raise BrokerUnavailable(reason)
        sent.result()  # BrokerUnavailable when aiomqtt failed it


@contextlib.asynccontextmanager
async def publishing(publisher: Publisher) -> AsyncIterator[Publisher]:
    """Run `publisher` for the duration of the block (the app's lifespan), then disconnect.

    Does not wait for the first connection: the API serves reads with the broker away, and
    callbacks meanwhile get 503.
    """
    task = asyncio.create_task(publisher.run(), name="mqtt-publisher")
    try:
        yield publisher
    finally:
        await stop_task(task)
