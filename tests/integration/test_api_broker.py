"""api/broker.py against a real broker: a `Link` publishes with PUBACK, subscribes, and comes
back by itself (subscribed again) after the broker restarts."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Callable, Coroutine
from typing import Any

import pytest

from api.broker import BrokerUnavailable, Link
from telemetry.servers import Mosquitto
from telemetry.settings import Settings

pytestmark = pytest.mark.integration

WAIT = 30.0  # s: generous deadlines on a shared machine; the test polls, never sleeps


@contextlib.asynccontextmanager
async def running(run: Callable[[], Coroutine[Any, Any, None]]) -> AsyncIterator[None]:
    task = asyncio.create_task(run())
    try:
        yield
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task


async def _until_received(
    publisher: Link, topic: str, got: asyncio.Queue[tuple[str, bytes]], body: bytes
) -> None:
    """Publish `body` until the subscriber has it: a resubscription may lag the reconnect."""
    async with asyncio.timeout(WAIT):
        while True:
            await publisher.connected.wait()
            with contextlib.suppress(BrokerUnavailable):
                await publisher.publish(topic, body)
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(1.0):
                    while (await got.get()) != (topic, body):
                        pass
                    return


@pytest.mark.asyncio
async def test_links_publish_subscribe_and_come_back_after_a_broker_restart(
    make_mosquitto: Callable[..., Mosquitto], topic_prefix: str
) -> None:
    broker = make_mosquitto()
    settings = Settings(mqtt_url=broker.url)
    sub = Link(settings, "test-sub", cap=1.0)
    pub = Link(settings, "test-pub", cap=1.0)
    assert sub.client_id != pub.client_id  # two processes never take each other's session
    got: asyncio.Queue[tuple[str, bytes]] = asyncio.Queue()
    topic = f"{topic_prefix}/wristband/1A2B3C/up"

    def handle(t: str, b: bytes) -> None:
        got.put_nowait((t, b))

    async with (
        running(lambda: sub.keep_subscribed(f"{topic_prefix}/#", handle)),
        running(pub.keep_publishing),
    ):
        await _until_received(pub, topic, got, b'{"n":1}')
        first_lost = pub.lost
        broker.restart()
        assert first_lost is not None
        async with asyncio.timeout(WAIT):
            await first_lost  # the loss is noticed, and wakes whoever waits on it
        await _until_received(pub, topic, got, b'{"n":2}')
        assert pub.lost is not first_lost  # a new connection, with a loss of its own


@pytest.mark.asyncio
async def test_a_publish_without_a_connection_fails_at_once(topic_prefix: str) -> None:
    link = Link(Settings(mqtt_url="mqtt://127.0.0.1:1"), "test", cap=1.0)
    with pytest.raises(BrokerUnavailable, match="not connected"):
        await link.publish(f"{topic_prefix}/x", b"{}")
