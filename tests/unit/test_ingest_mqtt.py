"""Canary for the private aiomqtt API that manual acks rely on (empicano/aiomqtt#345).

If an aiomqtt upgrade renames `Client._client` (the paho client) or `Client._queue`, these fail
before any message could be acked too early; and only `ingest/mqttshim.py` may reach them.
`tests/integration/test_ingest_mqtt.py` checks the behaviour against a real broker.
"""

from __future__ import annotations

import ast
import asyncio
import inspect
import time
from pathlib import Path

import aiomqtt
import paho.mqtt.client as paho
import pytest
from paho.mqtt.enums import CallbackAPIVersion
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.reasoncodes import ReasonCode

from ingest import mqttshim
from ingest.mqtt import MqttSource, _refused
from telemetry.errors import StartupError
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
    # Never fed (_BlockReader takes every PUBLISH first), and unlimited so that, were it fed, it
    # could not discard a message that then holds an in-flight slot (RELIABILITY.md, fact 1).
    assert client._queue.maxsize == 0


def test_aiomqtt_version_is_the_one_checked() -> None:
    # The pin in pyproject.toml (<2.6) and this canary go together; re-check on upgrade.
    major, minor, *_ = (int(p) for p in aiomqtt.__version__.split(".")[:2])
    assert (major, minor) == (2, 5)


def test_paho_keepalive_state_read_by_the_link_watchdog() -> None:
    # ingest/mqttshim.py's `watch_link` reads these and calls `_send_pingreq`; paho's own check
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
async def test_block_reading_relies_on_these_paho_internals() -> None:
    # ingest/mqttshim.py, when the socket opens, replaces aiomqtt's reader callback with its own
    # `_BlockReader`: it reads through paho's `_sock_recv`, hands non-PUBLISH packets to
    # `_packet_handle` with `_in_packet` set up as `_packet_read` does, and acks through
    # `_packet_queue`.
    source = MqttSource(Settings(mqtt_url="mqtt://127.0.0.1:1"), asyncio.Queue(1))
    client = source._make_client()
    inner = client._client
    assert inner.on_socket_open is not client._on_socket_open
    assert callable(inner._sock_recv)
    assert callable(inner._loop_rc_handle)
    assert paho.MQTT_ERR_AGAIN < 0  # not an error code: loop_read stops there too
    assert set(inner._in_packet) == {
        "command",
        "have_remaining",
        "remaining_count",
        "remaining_mult",
        "remaining_length",
        "packet",
        "to_process",
        "pos",
    }
    read = inspect.getsource(paho.Client._packet_read)
    assert "self._packet_handle()" in read
    assert "self._in_packet['command'] == 0" in read  # 0: between packets
    handle = inspect.getsource(paho.Client._packet_handle)
    assert "self._in_packet['command'] & 0xF0" in handle
    for name in ("_handle_suback", "_handle_connack", "_handle_pingresp"):
        assert f"self.{name}()" in handle
    assert "self._sock.recv(bufsize)" in inspect.getsource(paho.Client._sock_recv)
    queue = inspect.signature(inner._packet_queue).parameters
    assert list(queue)[:4] == ["command", "packet", "mid", "qos"]
    # paho's manual ack at QoS 1 is exactly one PUBACK, as `MqttSource.ack` sends them
    assert "self._send_puback(mid)" in inspect.getsource(paho.Client.ack)
    assert "self._packet_queue(command, packet, mid, 1)" in inspect.getsource(
        paho.Client._send_command_with_mid
    )
    # aiomqtt registers its reader with call_soon_threadsafe(add_reader): ours, scheduled
    # after it on the same fd, replaces it
    opened = inspect.getsource(aiomqtt.Client._on_socket_open)
    assert "call_soon_threadsafe(self._loop.add_reader" in opened
    assert "_disconnected.set_exception" in opened


def test_a_refused_subscription_stops_at_start_and_is_retried_later() -> None:
    # MQTT 3.1.1 SUBACK: 0, 1, 2 = the QoS granted; 0x80 = failure (MQTT 5: any code >= 0x80).
    # At start a refusal is a setting to fix (one clear line, exit 2); after a first success it
    # is retried with the reconnect backoff. Mosquitto 2.0.11 grants even a subscription its
    # ACL gives no read access to, so no test here can get a real broker to refuse one.
    granted = [ReasonCode(PacketTypes.SUBACK, identifier=q) for q in (0, 1, 2)]
    refused = [ReasonCode(PacketTypes.SUBACK, identifier=c) for c in (0x80, 0x87, 0x8F)]
    assert not any(_refused(code) for code in granted)
    assert all(_refused(code) for code in refused)
    source = MqttSource(Settings(mqtt_url="mqtt://reader@127.0.0.1:1"), asyncio.Queue(1))
    with pytest.raises(
        StartupError, match="refused the subscription to 'uplink/\\+/\\+' for 'reader'"
    ):
        source._check_granted([refused[0]])
    source._check_granted([granted[1]])
    with pytest.raises(aiomqtt.MqttError, match="refused the subscription"):
        source._check_granted([refused[0]])


# The 14 private aiomqtt/paho names of ingest/mqttshim.py's docstring.
PRIVATE_NAMES = {
    "_client",
    "_disconnected",
    "_in_packet",
    "_sock",
    "_sock_recv",
    "_sock_close",
    "_packet_read",
    "_packet_handle",
    "_packet_queue",
    "_loop_rc_handle",
    "_last_bytes_received",
    "_ping_t",
    "_send_pingreq",
    "_InPacket",
}
ROOT = Path(__file__).resolve().parents[2]


def _private_uses(path: Path) -> set[str]:
    """The private names read on another object than `self` (a class's own `_client` is not
    aiomqtt's)."""
    return {
        node.attr
        for node in ast.walk(ast.parse(path.read_text()))
        if isinstance(node, ast.Attribute)
        and node.attr in PRIVATE_NAMES
        and not (isinstance(node.value, ast.Name) and node.value.id == "self")
    }


def test_the_private_names_are_reached_only_from_the_shim() -> None:
    shim = Path(mqttshim.__file__)
    assert _private_uses(shim) == PRIVATE_NAMES  # each one named is used, and no other
    assert all(f"{name}`" in (mqttshim.__doc__ or "") for name in PRIVATE_NAMES)  # listed there
    elsewhere = sorted(
        f"{path.relative_to(ROOT)}: {sorted(names)}"
        for package in ("ingest", "api", "influx", "catalogue", "sigfox", "status", "telemetry")
        for path in (ROOT / package).rglob("*.py")
        if path != shim and (names := _private_uses(path))
    )
    assert elsewhere == []
