"""Uplink topics: `<prefix>/<device_type>/<device>`."""

from __future__ import annotations

import functools

from sigfox.limits import DEVICE_ID_RE


def uplink_topic(prefix: str, device_type: str, device: str) -> str:
    return f"{prefix}/{device_type}/{device.upper()}"


def subscription(prefix: str, share_group: str | None = None) -> str:
    """The filter ingest subscribes to; with a group, an MQTT shared subscription.

    `<type>/<device>` levels only, not `#`: with the deployed ACL (`topic deny uplink/+/ingest`,
    which keeps the ingester's account from publishing), Mosquitto 2.0.11 delivered nothing to
    an ingester subscribed to `uplink/#` (tests/reliability/test_mqtt_security.py). A message
    on a deeper topic is therefore never seen by ingest; topics with a malformed device id are
    still kept as rejected with reason `topic`.
    """
    topic = f"{prefix}/+/+"
    return f"$share/{share_group}/{topic}" if share_group else topic


def parse_uplink_topic(prefix: str, topic: str) -> tuple[str, str] | None:
    """`(device_type, DEVICE)` for a well-formed uplink topic, else None."""
    # A device's topic repeats with each of its uplinks: cached. Only short ones, so that the
    # cache stays small in bytes too (a topic may be 64 KiB long).
    if len(topic) <= _CACHED_TOPIC_CHARS:
        return _parse_cached(prefix, topic)
    return _parse(prefix, topic)


_CACHED_TOPIC_CHARS = 128


def _parse(prefix: str, topic: str) -> tuple[str, str] | None:
    head = prefix + "/"
    if not topic.startswith(head):
        return None
    rest = topic[len(head) :].split("/")
    if len(rest) != 2 or not rest[0] or not DEVICE_ID_RE.match(rest[1]):
        return None
    return rest[0], rest[1].upper()


_parse_cached = functools.lru_cache(maxsize=65_536)(_parse)
