"""The API's door to the MQTT broker (the one API module that imports aiomqtt): a `Link`.

A `Link` is one connection kept open: a client built from settings, reconnected forever with
telemetry/backoff.py's delay, one log line for the first failure and for each loss. The API
holds two, each with its own job:

    api/eventbus.py  ── Link("stream").keep_subscribed(`<events_prefix>/#`) ─► Hub
    api/publisher.py ── Link("publisher").keep_publishing() ◄─ callbacks, downlink events

Two connections, not one, because their traffic must not share one socket: the subscription
carries every event of the fleet (thousands a second under load, up to INCOMING_MAX queued),
and a callback's PUBACK would wait behind them on the same socket and the same paho network
loop while Sigfox's answer budget runs (api/routes/sigfox.py). They also want other client
settings: a deep incoming queue for the one, a wide in-flight window and a short CONNACK
timeout for the other.

Both are MQTT v3.1.1 with a clean session: the publisher keeps nothing, and events are now or
never, so there is no session to keep while away. Each client id ends with a random suffix:
two API processes with one fixed id would take the broker's session from each other in turn
(MQTT 3.1.4-2: the broker disconnects the older one).
"""

from __future__ import annotations

import asyncio
import logging
import math
import secrets
from collections.abc import Awaitable, Callable
from typing import Any

import aiomqtt

from telemetry.backoff import backoff
from telemetry.mqttclient import mqtt_client
from telemetry.settings import Settings

log = logging.getLogger(__name__)

CLIENT_ID_PREFIX = "telemetry-api"


class BrokerUnavailable(Exception):
    """The broker did not accept a publish (not connected, dropped, or no PUBACK in time)."""


class Link:
    """One reconnecting connection; `connected` is set while it is up.

    `lost` is resolved when the current connection is lost: it wakes whoever waits on it.
    `subscription` numbers the subscriptions `keep_subscribed` made, 0 while there is none: a
    new number means that messages published in between were missed.
    """

    def __init__(self, settings: Settings, name: str, *, cap: float, **options: Any) -> None:
        self.settings = settings
        self.name = name  # the log lines' first word
        self.cap = cap  # s, the longest pause between two connection attempts
        self.options = options  # aiomqtt.Client's tuning for this link's job
        self.client_id = f"{CLIENT_ID_PREFIX}-{secrets.token_hex(5)}"
        self.where = f"{settings.mqtt.host}:{settings.mqtt.port}"
        self.connected = asyncio.Event()
        self.lost: asyncio.Future[None] | None = None
        self.subscription = 0
        self._subscriptions = 0
        self._client: aiomqtt.Client | None = None

    def _make_client(self) -> aiomqtt.Client:
        return mqtt_client(self.settings, self.client_id, clean_session=True, **self.options)

    async def _run(self, session: Callable[[aiomqtt.Client], Awaitable[None]]) -> None:
        """Run `session` on a connection, connecting again whenever it ends; until cancelled."""
        attempt = 0
        while True:
            try:
                async with self._make_client() as client:
                    attempt = 0
                    self._client = client
                    self.lost = asyncio.get_running_loop().create_future()
                    self.connected.set()
                    await session(client)
            except aiomqtt.MqttError as exc:
                if self.connected.is_set():
                    log.warning("%s: lost the MQTT broker at %s: %s", self.name, self.where, exc)
                elif attempt == 0:
                    log.warning(
                        "%s: cannot reach the MQTT broker at %s: %s", self.name, self.where, exc
                    )
            except Exception:  # a dead link would end the stream or make every callback a 503
                log.exception("%s: the MQTT connection failed; reconnecting", self.name)
            finally:
                self._disconnected()
            await asyncio.sleep(backoff(attempt, cap=self.cap))
            attempt += 1

    def _disconnected(self) -> None:
        self.connected.clear()
        self.subscription = 0
        self._client = None
        if self.lost is not None and not self.lost.done():
            self.lost.set_result(None)

    async def keep_subscribed(self, topic: str, handle: Callable[[str, bytes], object]) -> None:
        """Subscribe to `topic` at QoS 1 on every connection; `handle(topic, body)` each message."""

        async def session(client: aiomqtt.Client) -> None:
            await client.subscribe(topic, qos=1)
            # after the SUBACK: every message published from now on reaches `handle`
            self._subscriptions += 1
            self.subscription = self._subscriptions
            log.info("%s: subscribed to %r as %r", self.name, topic, self.client_id)
            async for message in client.messages:
                body = message.payload
                if isinstance(body, bytes | bytearray):
                    handle(message.topic.value, bytes(body))

        await self._run(session)

    async def keep_publishing(self) -> None:
        """Stay connected for `publish`; nothing is subscribed."""

        async def session(client: aiomqtt.Client) -> None:
            log.info("publishing to the MQTT broker at %s as %r", self.where, self.client_id)
            # The iterator only ends, with MqttError, when the connection is lost (aiomqtt's
            # public way to notice that).
            async for _ in client.messages:
                pass

        await self._run(session)

    async def publish(self, topic: str, payload: bytes) -> None:
        """Publish at QoS 1 on the current connection; return once the broker sent PUBACK.

        No deadline here (the caller sets one): paho keeps the message until it is acked.
        """
        client = self._client
        if client is None:
            raise BrokerUnavailable("not connected to the MQTT broker")
        try:
            await client.publish(topic, payload, qos=1, timeout=math.inf)
        except aiomqtt.MqttError as exc:
            raise BrokerUnavailable(str(exc)) from exc
