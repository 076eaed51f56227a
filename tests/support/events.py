"""Helpers for event tests: a plain paho subscriber to the events topics, and its messages."""

from __future__ import annotations

import json
import queue
import time
import uuid
from dataclasses import dataclass
from typing import Any

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion


@dataclass(frozen=True)
class Received:
    topic: str
    body: dict[str, Any]
    qos: int
    retain: bool


class EventSubscriber:
    """Subscribes to `<prefix>/#` at QoS 1 (subscribed on return) and keeps what arrives; a
    whole topic as `prefix` gives that topic alone (`a/b/#` matches `a/b`)."""

    def __init__(self, host: str, port: int, prefix: str) -> None:
        self.messages: queue.Queue[Received] = queue.Queue()
        self._subscribed: queue.Queue[bool] = queue.Queue()
        self.client = mqtt.Client(
            CallbackAPIVersion.VERSION2, client_id=f"events-{uuid.uuid4().hex[:8]}"
        )
        self.client.on_message = self._on_message
        self.client.on_subscribe = lambda *a: self._subscribed.put(True)
        self.client.connect(host, port)
        self.client.loop_start()
        self.client.subscribe(f"{prefix}/#", qos=1)
        self._subscribed.get(timeout=30)

    def _on_message(self, c: mqtt.Client, u: object, m: mqtt.MQTTMessage) -> None:
        self.messages.put(Received(m.topic, json.loads(m.payload), m.qos, bool(m.retain)))

    def next(self, timeout: float = 30.0) -> Received:
        return self.messages.get(timeout=timeout)

    def until(self, count: int, timeout: float = 30.0) -> list[Received]:
        """The next `count` messages; fails if they do not all come within `timeout`."""
        deadline = time.monotonic() + timeout
        return [
            self.messages.get(timeout=max(0.01, deadline - time.monotonic())) for _ in range(count)
        ]

    def close(self) -> None:
        self.client.loop_stop()
        self.client.disconnect()

    def __enter__(self) -> EventSubscriber:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
