"""The MQTT boundary of the simulators: paho-mqtt publishing at QoS 1, PUBACKs counted.

The simulators' one module that imports paho (ingest's own MQTT boundary is `ingest/mqtt.py`).
In-flight publishes are bounded, so a backfill goes as fast as the broker acknowledges and never
piles up in memory or overruns it; paho resends unacknowledged messages after a reconnect.
"""

from __future__ import annotations

import logging
import os
import ssl
import threading
import time
from typing import Any

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion

from telemetry.settings import MqttEndpoint

log = logging.getLogger(__name__)

MAX_IN_FLIGHT = 500  # unacknowledged publishes at most: enough to fill a loopback pipe
CONNECT_TIMEOUT = 10.0  # seconds to wait for the broker's CONNACK at start
KEEPALIVE = 30


class PublisherError(Exception):
    """The broker cannot be reached or refused us; the message is one line for the user."""


class Publisher:
    """A connected QoS 1 publisher; `published` and `acked` count messages (station copies)."""

    def __init__(self, endpoint: MqttEndpoint, client_id: str | None = None) -> None:
        self.endpoint = endpoint
        self.published = 0
        self.acked = 0
        self._lock = threading.Lock()
        self._slots = threading.Semaphore(MAX_IN_FLIGHT)
        self._connected = threading.Event()
        self._refused: str | None = None
        self._client = mqtt.Client(
            CallbackAPIVersion.VERSION2,
            client_id=client_id or f"telemetry-simulate-{os.getpid()}",
            clean_session=True,
        )
        self._client.max_inflight_messages_set(MAX_IN_FLIGHT)
        self._client.max_queued_messages_set(0)  # unbounded in paho; our semaphore bounds it
        if endpoint.username is not None:
            self._client.username_pw_set(endpoint.username, endpoint.password)
        if endpoint.tls:
            self._client.tls_set(cert_reqs=ssl.CERT_REQUIRED)
        self._client.on_connect = self._on_connect
        self._client.on_disconnect = self._on_disconnect
        self._client.on_publish = self._on_publish

    def connect(self, wait: float = 0.0) -> None:
        """Connect, retrying a refused or failed connection for up to `wait` seconds (a broker
        started at the same time as us may not listen yet)."""
        where = f"{self.endpoint.host}:{self.endpoint.port}"
        give_up = time.monotonic() + wait
        while True:
            try:
                self._client.connect(self.endpoint.host, self.endpoint.port, KEEPALIVE)
                break
            except (OSError, ValueError) as exc:
                if time.monotonic() >= give_up:
                    raise PublisherError(
                        f"cannot reach the MQTT broker at {where}: {exc}"
                    ) from None
                time.sleep(0.25)
        self._client.loop_start()
        deadline = time.monotonic() + CONNECT_TIMEOUT
        while not self._connected.wait(0.05):
            if self._refused is not None or time.monotonic() > deadline:
                self.close()
                reason = self._refused or f"no answer within {CONNECT_TIMEOUT:.0f}s"
                raise PublisherError(f"the MQTT broker at {where} refused us: {reason}")

    def publish(self, topic: str, payload: bytes, stop: threading.Event) -> bool:
        """Queue one QoS 1 message, waiting while too many are unacknowledged; False on stop."""
        while not self._slots.acquire(timeout=0.2):
            if stop.is_set():
                return False
        info = self._client.publish(topic, payload, qos=1)
        if info.rc not in (mqtt.MQTT_ERR_SUCCESS, mqtt.MQTT_ERR_NO_CONN):
            # NO_CONN: paho keeps the message and sends it after reconnecting; anything else
            # means it was not taken.
            self._slots.release()
            raise PublisherError(f"paho refused a publish: {mqtt.error_string(info.rc)}")
        with self._lock:
            self.published += 1
        return True

    def drain(self, timeout: float) -> bool:
        """Wait until every published message is acknowledged; False if time ran out."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            with self._lock:
                if self.acked >= self.published:
                    return True
            time.sleep(0.02)
        return False

    def close(self) -> None:
        self._client.disconnect()
        self._client.loop_stop()

    # paho callbacks, on its network thread
    def _on_connect(self, client: Any, userdata: Any, flags: Any, reason: Any, props: Any) -> None:
        if reason.is_failure:
            self._refused = str(reason)
            self._client.disconnect()
            return
        if self._refused is None and self.published:
            log.info("reconnected to the MQTT broker")
        self._connected.set()

    def _on_disconnect(
        self, client: Any, userdata: Any, flags: Any, reason: Any, props: Any
    ) -> None:
        if self._connected.is_set() and reason.is_failure:
            log.warning("lost the MQTT broker (%s); paho reconnects and resends", reason)

    def _on_publish(self, client: Any, userdata: Any, mid: int, reason: Any, props: Any) -> None:
        with self._lock:
            self.acked += 1
        self._slots.release()
