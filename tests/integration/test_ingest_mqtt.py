"""The MQTT boundary against a real broker: nothing is acked until we say so, and an unacked
message comes back on the next connection (the manual-ack canary for empicano/aiomqtt#345)."""

from __future__ import annotations

import asyncio
import contextlib
import uuid

import pytest

from ingest.mqtt import Incoming, MqttSource
from telemetry.servers import Mosquitto
from telemetry.settings import Settings
from tests.support.ingest import Publisher

pytestmark = pytest.mark.integration


async def _receive(
    source: MqttSource, q: asyncio.Queue[list[Incoming] | None], until: bytes
) -> list[Incoming]:
    got: list[Incoming] = []
    async with asyncio.timeout(30):
        while not any(m.body == until for m in got):
            chunk = await q.get()
            assert chunk is not None
            got.extend(chunk)
    return got


@pytest.mark.asyncio
async def test_unacked_messages_come_back_and_acked_ones_do_not(
    mosquitto: Mosquitto, topic_prefix: str
) -> None:
    settings = Settings(
        mqtt_url=mosquitto.url,
        mqtt_topic_prefix=topic_prefix,
        mqtt_client_id=f"canary-{uuid.uuid4().hex[:8]}",
    )
    pub = Publisher(mosquitto.host, mosquitto.port)

    async def session(marker: bytes, ack_bodies: set[bytes]) -> list[bytes]:
        q: asyncio.Queue[list[Incoming] | None] = asyncio.Queue(100)
        source = MqttSource(settings, q)
        task = asyncio.create_task(source.run())
        try:
            await asyncio.wait_for(source.connected.wait(), 30)
            await asyncio.to_thread(pub.publish, f"{topic_prefix}/wristband/1", marker)
            got = await _receive(source, q, marker)
            sent = source.ack([(m.mid, m.qos, m.generation) for m in got if m.body in ack_bodies])
            assert sent == len([m for m in got if m.body in ack_bodies])
            return [m.body for m in got]
        finally:
            source.close()
            with contextlib.suppress(asyncio.CancelledError):
                await task

    try:
        first = await session(b"m1", ack_bodies={b"m1"})  # subscribes (persistent session)
        assert first == [b"m1"]
        for body in (b"a", b"b", b"c"):
            await asyncio.to_thread(pub.publish, f"{topic_prefix}/wristband/1", body)
        second = await session(b"m2", ack_bodies={b"a", b"m2"})
        assert second[:3] == [b"a", b"b", b"c"]
        third = await session(b"m3", ack_bodies={b"b", b"c", b"m3"})
        assert third == [b"b", b"c", b"m3"]  # redelivered: never acked
        fourth = await session(b"m4", ack_bodies={b"m4"})
        assert fourth == [b"m4"]  # everything before was acked
    finally:
        pub.close()


@pytest.mark.asyncio
async def test_an_ack_from_an_earlier_connection_is_dropped(mosquitto: Mosquitto) -> None:
    source = MqttSource(Settings(mqtt_url=mosquitto.url), asyncio.Queue(1))
    assert source.ack([(1, 1, 0)]) == 0  # not connected / generation 0
    assert source.acks_dropped == 1
