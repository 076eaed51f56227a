"""An event from the broker read (DESIGN section 9): its kind, type and device, its body.

What api/hub.py logs for the stream, and what it hands the status cache (api/statuscache.py)
from an `up` event: each message is parsed once.
"""

from __future__ import annotations

import json
from typing import Any

KINDS = ("up", "status", "rejected", "downlink")


def parse_event(
    prefix: str, topic: str, payload: bytes, uplink_prefix: str = "uplink"
) -> tuple[str, str | None, str | None, str, dict[str, Any]] | None:
    """(kind, type, device, one-line JSON, parsed body) of an events topic and body; None if it
    is not one.

    `<prefix>/<type>/<device>/<kind>` (up, status, downlink) or `<prefix>/rejected/<reason>`,
    whose device is the body's `device` when it names one and whose type is the one its
    uplink's topic names (the body's `topic`, `<uplink_prefix>/<type>/<device>`), if any.
    """
    head = prefix + "/"
    if not topic.startswith(head):
        return None
    parts = topic[len(head) :].split("/")
    try:
        doc = json.loads(payload)
    except (ValueError, RecursionError):
        return None
    if not isinstance(doc, dict):
        return None
    text = payload.decode()
    if "\n" in text or "\r" in text:  # one `data:` line, always
        text = json.dumps(doc, separators=(",", ":"), ensure_ascii=False)
    if len(parts) == 2 and parts[0] == "rejected":
        device = doc.get("device")
        device = device.upper() if isinstance(device, str) else None
        return "rejected", _uplink_type(doc.get("topic"), uplink_prefix), device, text, doc
    if len(parts) == 3 and parts[2] in KINDS and parts[2] != "rejected":
        return parts[2], parts[0], parts[1].upper(), text, doc
    return None


def _uplink_type(topic: object, uplink_prefix: str) -> str | None:
    """The `<type>` of `<uplink_prefix>/<type>/<device>`; None for any other topic.

    Not checked against the catalogue: the stream's `type=` accepts known types only, so an
    unknown one here matches no filter.
    """
    if not isinstance(topic, str) or not topic.startswith(uplink_prefix + "/"):
        return None
    parts = topic[len(uplink_prefix) + 1 :].split("/")
    return parts[0] if len(parts) == 2 and parts[0] and parts[1] else None
