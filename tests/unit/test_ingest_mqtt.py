"""Canary for the private aiomqtt API that manual acks rely on (empicano/aiomqtt#345).

If an aiomqtt upgrade renames `Client._client` (the paho client) or `Client._queue`, these fail
before any message could be acked too early. `tests/integration/test_ingest_mqtt.py` checks
the behaviour against a real broker.
"""

from __future__ import annotations

import asyncio
import inspect
import time

import aiomqtt
import paho.mqtt.client as paho
import pytest
from paho.mqtt.enums import CallbackAPIVersion

from ingest.mqtt import MqttSource
from telemetry.settings import Settings


@pytest.mark.asyncio
async def test_manual_ack_reaches_paho_before_connecting() -> None:
    source = MqttSource(Settings(mqtt_url="mqtt://127.0.0.1:1"), asyncio.Queue(1))
    client = source._make_client()
    inner = client._client
    assert isinstance(inner, paho.Client)
    assert inner._manual_ack is True  # set before connect: session messages are not auto-acked
    assert "mid" in inspect.signature(inner.ack).parameters
    assert inner._protocol == paho.MQTTv311
    assert inner._clean_session is False
    assert isinstance(client._queue, asyncio.Queue)
    assert isinstance(client._disconnected, asyncio.Future)  # read by the link watchdog
    assert client._queue.maxsize == 0  # unlimited: a bounded one discards without acking


def test_aiomqtt_version_is_the_one_checked() -> None:
    # The pin in pyproject.toml (<2.6) and this canary go together; re-check on upgrade.
    major, minor, *_ = (int(p) for p in aiomqtt.__version__.split(".")[:2])
    assert (major, minor) == (2, 5)


def test_paho_keepalive_state_read_by_the_link_watchdog() -> None:
    # ingest/mqtt.py's `_watch_link` reads these and calls `_send_pingreq`; paho's own check
    # must still close a link whose ping goes unanswered (see `Client._check_keepalive`).
    inner = paho.Client(CallbackAPIVersion.VERSION2)
    assert isinstance(inner._last_bytes_received, float)
    assert inner._ping_t == 0
    assert callable(inner._send_pingreq)
    assert callable(inner._sock_close)
    assert paho.time_func is time.monotonic
    source = inspect.getsource(paho.Client._check_keepalive)
    assert "_ping_t" in source
    assert "_last_bytes_received" in source


@pytest.mark.asyncio
async def test_batched_reading_replaces_aiomqtt_per_message_path() -> None:
    # ingest/mqtt.py installs its own paho on_message (append to a list) and, when the socket
    # opens, its own reader callback that calls paho's `_packet_read` until EAGAIN.
    source = MqttSource(Settings(mqtt_url="mqtt://127.0.0.1:1"), asyncio.Queue(1))
    client = source._make_client()
    inner = client._client
    assert inner.on_message is not client._on_message
    assert inner.on_socket_open is not client._on_socket_open
    # what the replacements rely on
    assert callable(inner._packet_read)
    assert callable(inner._loop_rc_handle)
    assert paho.MQTT_ERR_AGAIN < 0  # not an error code: loop_read stops there too
    assert "_sock" in inspect.getsource(paho.Client.loop_read)
    # aiomqtt registers its reader with call_soon_threadsafe(add_reader): ours, scheduled
    # after it on the same fd, replaces it
    opened = inspect.getsource(aiomqtt.Client._on_socket_open)
    assert "call_soon_threadsafe(self._loop.add_reader" in opened
    assert "_disconnected.set_exception" in opened
    # the received message reaches our list unchanged
    message = paho.MQTTMessage(mid=7, topic=b"uplink/wristband/1A2B")
    message.payload = b"{}"
    message.qos = 1
    inner.on_message(inner, None, message)  # type: ignore[misc]
    inner._handle_on_message(message)  # what paho's _handle_publish calls, shadowed
    assert source._received == [message, message]
    # paho hands every received QoS 0/1 PUBLISH to `_handle_on_message` (QoS 2 after PUBREL)
    handled = inspect.getsource(paho.Client._handle_publish)
    assert handled.count("self._handle_on_message(message)") == 2
    assert "if self._manual_ack:" in handled  # and sends no PUBACK itself in manual-ack mode
    assert (message.topic, message.payload, message.mid, message.qos) == (
        "uplink/wristband/1A2B",
        b"{}",
        7,
        1,
    )
