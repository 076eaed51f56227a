"""The API's one MQTT connection: QoS 1 publishes that return only once the broker sent PUBACK.

The API's boundary to aiomqtt (as ingest/mqtt.py is ingest's). Owned by the app's lifespan:
`run()` keeps a connection, reconnecting with capped, jittered backoff; `publish()` waits for
the PUBACK within a deadline and raises `BrokerUnavailable` otherwise, never hangs:
- not connected: at once (the caller answers 503 and Sigfox retries later);
- the connection drops while we wait: at once, not at the deadline;
- no PUBACK by the deadline: then. A publish given up on may still reach the broker (paho
  sent it); the caller's retry is then a second copy of the same uplink, which ingest stores
  once (idempotent writes, DESIGN section 3).

MQTT v3.1.1 with a clean session: the API only publishes, so there is no session to keep. The
client id ends with a random suffix: two API processes with one fixed id would take the
broker's session from each other in turn (MQTT 3.1.4-2: the broker disconnects the older one).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
import random
import secrets
from collections.abc import AsyncIterator

import aiomqtt

from telemetry.settings import Settings

# Jitter from a generator of its own: background retries never touch the global `random`
# state that simulators and tests seed (Hypothesis flags strategies whose draws it changes).
_JITTER = random.Random()  # noqa: S311  # jitter, not crypto

log = logging.getLogger(__name__)

# Unacknowledged QoS 1 publishes paho keeps on the wire at once. uvicorn's limit_concurrency
# (100, api/command.py) bounds the requests in flight per process; the bench's 32 clients
# and any burst below that fit, so a callback never waits for a window slot behind others.
IN_FLIGHT = 1000
RECONNECT_BASE = 0.25  # s, first retry after a lost connection (full jitter)
RECONNECT_CAP = 5.0  # s: the broker back is noticed within seconds, Sigfox retries after 60
CONNECT_TIMEOUT = 5.0  # s for the CONNACK; aiomqtt's connect runs in a thread meanwhile
CLIENT_ID_PREFIX = "telemetry-api"


class BrokerUnavailable(Exception):
    """The broker did not accept a publish (not connected, dropped, or no PUBACK in time)."""


class Publisher:
    """A reconnecting QoS 1 publisher; `connected` is set while a connection is up."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.client_id = f"{CLIENT_ID_PREFIX}-{secrets.token_hex(4)}"
        self.connected = asyncio.Event()
        self._client: aiomqtt.Client | None = None
        # Resolved when the current connection is lost: wakes every publish waiting on it.
        self._lost: asyncio.Future[None] | None = None
        self._stopping = False

    def _make_client(self) -> aiomqtt.Client:
        ep = self.settings.mqtt
        return aiomqtt.Client(
            ep.host,
            ep.port,
            username=ep.username,
            password=ep.password,
            identifier=self.client_id,
            protocol=aiomqtt.ProtocolVersion.V311,
            clean_session=True,
            keepalive=self.settings.mqtt_keepalive,
            tls_params=aiomqtt.TLSParameters() if ep.tls else None,
            max_inflight_messages=IN_FLIGHT,
            timeout=CONNECT_TIMEOUT,
        )

    async def run(self) -> None:
        """Connect and stay connected until cancelled."""
        attempt = 0
        where = f"{self.settings.mqtt.host}:{self.settings.mqtt.port}"
        while True:
            client = self._make_client()
            try:
                async with client:
                    attempt = 0
                    self._client = client
                    self._lost = asyncio.get_running_loop().create_future()
                    self.connected.set()
                    log.info("publishing to the MQTT broker at %s as %r", where, self.client_id)
                    # Nothing is subscribed: the iterator only ends, with MqttError, when the
                    # connection is lost (aiomqtt's public way to notice that).
                    async for _ in client.messages:
                        pass
            except aiomqtt.MqttError as exc:
                if self.connected.is_set():
                    log.warning("lost the MQTT broker at %s: %s", where, exc)
                elif attempt == 0:
                    log.warning("cannot reach the MQTT broker at %s: %s", where, exc)
            except Exception:  # a dead publisher would make every callback a 503
                log.exception("the MQTT publisher failed; reconnecting")
            finally:
                self._disconnected()
            attempt += 1
            await asyncio.sleep(
                _JITTER.uniform(0, min(RECONNECT_CAP, RECONNECT_BASE * 2**attempt))
            )  # jitter

    def _disconnected(self) -> None:
        self.connected.clear()
        self._client = None
        if self._lost is not None and not self._lost.done():
            self._lost.set_result(None)

    async def publish(self, topic: str, payload: bytes, timeout: float) -> None:  # noqa: ASYNC109  # the caller's remaining budget, also passed on as a number
        """Publish at QoS 1 and return once the broker acknowledged it, within `timeout` s."""
        client, lost = self._client, self._lost
        if client is None or lost is None or lost.done():
            raise BrokerUnavailable("not connected to the MQTT broker")
        sent = asyncio.ensure_future(client.publish(topic, payload, qos=1, timeout=math.inf))
        try:
            done, _ = await asyncio.wait(
                (sent, lost), timeout=max(0.0, timeout), return_when=asyncio.FIRST_COMPLETED
            )
        finally:
            if not sent.done():
                sent.cancel()
        if sent not in done:
            with contextlib.suppress(asyncio.CancelledError):
                await sent
            reason = (
                "the connection was lost" if lost.done() else f"no PUBACK within {timeout:.1f} s"
            )
            raise BrokerUnavailable(reason)
        try:
            sent.result()
        except aiomqtt.MqttError as exc:
            raise BrokerUnavailable(str(exc)) from exc


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
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
