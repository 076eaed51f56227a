"""Uplink topics: `<prefix>/<device_type>/<device>`."""

from __future__ import annotations

import re

_DEVICE = re.compile(r"^[0-9A-Fa-f]{1,8}$")


def uplink_topic(prefix: str, device_type: str, device: str) -> str:
    return f"{prefix}/{device_type}/{device.upper()}"


def subscription(prefix: str, share_group: str | None = None) -> str:
    """The filter ingest subscribes to; with a group, an MQTT shared subscription.

    The whole prefix (`#`), not only `<type>/<device>`: a message on a malformed topic must
    reach ingest to be kept as rejected (reason `topic`), not be dropped unseen by the broker.
    """
    topic = f"{prefix}/#"
    return f"$share/{share_group}/{topic}" if share_group else topic


def parse_uplink_topic(prefix: str, topic: str) -> tuple[str, str] | None:
    """`(device_type, DEVICE)` for a well-formed uplink topic, else None."""
    head = prefix + "/"
    if not topic.startswith(head):
        return None
    rest = topic[len(head) :].split("/")
    if len(rest) != 2 or not rest[0] or not _DEVICE.match(rest[1]):
        return None
    return rest[0], rest[1].upper()
