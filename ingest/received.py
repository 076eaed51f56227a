"""What the receive stage hands on: one `Incoming` per message, and the `AckToken` that acks it.

Plain values, with no MQTT library behind them, so that the stages after `ingest.mqtt` (and
their tests) use them without importing the MQTT boundary.
"""

from __future__ import annotations

from typing import NamedTuple


class Incoming(NamedTuple):
    """One received message, with what is needed to ack it on the same connection.

    A named tuple: one is made per message, and it is the cheapest record to make.
    """

    topic: str
    body: bytes
    mid: int
    qos: int
    generation: int
    received_ns: int


AckToken = tuple[int, int, int]  # mid, qos, generation
