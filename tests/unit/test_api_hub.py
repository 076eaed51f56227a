"""api/hub.py: events parsed from their topic and body, and matched by a filter."""

from __future__ import annotations

import json

from api.hub import Filter, StreamEvent, parse_event


def _rejected(topic: str, device: str | None = None) -> bytes:
    doc = {"reason": "envelope", "topic": topic, "time": "2026-01-01T00:00:00Z", "detail": "x"}
    return json.dumps(doc | ({"device": device} if device else {})).encode()


def test_a_reject_has_the_type_of_its_uplink_topic_and_the_device_of_its_body() -> None:
    parsed = parse_event(
        "ev", "ev/rejected/envelope", _rejected("up/link/scale/5ca1e", "5ca1e"), "up/link"
    )
    assert parsed is not None
    assert parsed[:3] == ("rejected", "scale", "5CA1E")


def test_a_reject_of_another_topic_has_no_type() -> None:
    for topic in ("", "uplink", "uplink/scale", "uplink/scale/1/2", "other/scale/1", "uplink//1"):
        parsed = parse_event("ev", "ev/rejected/envelope", _rejected(topic), "uplink")
        assert parsed is not None
        assert parsed[:3] == ("rejected", None, None), topic
    no_topic = parse_event("ev", "ev/rejected/x", b'{"reason":"x","topic":7}', "uplink")
    assert no_topic is not None
    assert no_topic[1] is None


def test_type_and_device_filters_keep_a_reject_that_names_them() -> None:
    def event(type_name: str | None, device: str | None) -> StreamEvent:
        return StreamEvent(1, "rejected", type_name, device, b"")

    bands = Filter(types=frozenset({"wristband"}))
    assert bands.matches(event("wristband", None))
    assert not bands.matches(event(None, "1A2B3C"))
    assert not bands.matches(event("scale", "1A2B3C"))
    one = Filter(devices=frozenset({"1A2B3C"}))
    assert one.matches(event(None, "1A2B3C"))
    assert not one.matches(event("wristband", None))
    assert not Filter(kinds=frozenset({"up"})).matches(event("wristband", "1A2B3C"))
