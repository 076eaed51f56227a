"""api/hub.py and api/eventparse.py: events parsed from their topic and body, matched, logged and
taken at a cursor."""

from __future__ import annotations

import asyncio
import json

from prometheus_client import CollectorRegistry

from api.eventparse import parse_event
from api.hub import Filter, Hub, StreamEvent

UP = b'{"device":"1A2B3C","type":"wristband","seq":%d}'


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


def _up(hub: Hub, seq: int, device: str = "1A2B3C") -> None:
    body = UP.replace(b"1A2B3C", device.encode()) % seq
    assert hub.publish("ev", f"ev/wristband/{device}/up", body) is not None


def _seqs(frames: list[bytes]) -> list[int]:
    return [json.loads(f.split(b"data: ")[1])["seq"] for f in frames]


def test_each_client_takes_what_came_after_its_cursor_once() -> None:
    async def scenario() -> None:
        hub = Hub(CollectorRegistry())
        _up(hub, 0)
        early, _ = hub.subscribe(Filter(), 100)
        _up(hub, 1)
        _up(hub, 2)
        late, tail = hub.subscribe(Filter(), 100, tail=2)
        assert _seqs(tail) == [1, 2]
        _up(hub, 3)
        assert _seqs(hub.take(early)[0]) == [1, 2, 3]
        assert hub.take(early) == ([], 0.0)
        assert _seqs(hub.take(late)[0]) == [3]
        first = hub.log[1].id
        resumed, after = hub.subscribe(Filter(), 100, after=first)
        assert _seqs(after) == [2, 3]
        assert hub.take(resumed) == ([], 0.0)

    asyncio.run(scenario())


def test_a_sleeping_client_wakes_only_for_an_event_it_wants() -> None:
    async def scenario() -> None:
        hub = Hub(CollectorRegistry())
        one, _ = hub.subscribe(Filter(devices=frozenset({"0B0B"})), 100)
        hub.sleep(one)
        for seq in range(5):
            _up(hub, seq)
        assert not one.ready.is_set()
        _up(hub, 9, device="0B0B")
        assert one.ready.is_set()
        assert _seqs(hub.take(one)[0]) == [9]

    asyncio.run(scenario())


def test_a_client_that_takes_nothing_overflows_and_the_others_do_not() -> None:
    async def scenario() -> None:
        hub = Hub(CollectorRegistry())
        stuck, _ = hub.subscribe(Filter(), 40)
        fast, _ = hub.subscribe(Filter(), 40)
        narrow, _ = hub.subscribe(Filter(devices=frozenset({"0B0B"})), 40)
        taken: list[int] = []
        for seq in range(200):
            _up(hub, seq)
            if seq == 30:  # half the backlog pending (counted every quarter): do not wait
                assert stuck.urgent.is_set()
            if seq == 50:  # past the backlog by at most a quarter of it
                assert stuck.overflowed
            if seq % 15 == 14:
                taken += _seqs(hub.take(fast)[0])
        taken += _seqs(hub.take(fast)[0])
        assert taken == list(range(200))
        assert stuck.overflowed
        assert stuck.ready.is_set()
        assert hub.take(stuck) == ([], 0.0)
        assert not fast.overflowed
        assert not narrow.overflowed  # far behind in the log, but nothing it wants is pending
        assert hub.overflows._value.get() == 1  # the counter's own value

    asyncio.run(scenario())


def test_the_log_is_trimmed_and_a_client_behind_its_start_overflows() -> None:
    async def scenario() -> None:
        hub = Hub(CollectorRegistry(), ring_size=10)
        narrow, _ = hub.subscribe(Filter(devices=frozenset({"0B0B"})), 4)
        _up(hub, 0, device="0B0B")
        for seq in range(1, 3000):
            _up(hub, seq)
        assert len(hub.log) < 1100  # ring_size plus the trim's slack
        assert hub.log[0].id == hub.first_id
        assert hub.log[-1].id == hub.next_id - 1
        assert hub.take(narrow) == ([], 0.0)  # its event was dropped before it took it
        assert narrow.overflowed

    asyncio.run(scenario())


def test_a_status_event_twice_in_the_log_is_kept_once() -> None:
    async def scenario() -> None:
        hub = Hub(CollectorRegistry(), ring_size=10)
        body = b'{"device":"1A2B3C","state":"late"}'
        assert hub.publish("ev", "ev/wristband/1A2B3C/status", body) is not None
        assert hub.publish("ev", "ev/wristband/1A2B3C/status", body) is None
        for seq in range(1100):  # the first is trimmed: the same change may be told again
            _up(hub, seq)
        assert hub.publish("ev", "ev/wristband/1A2B3C/status", body) is not None

    asyncio.run(scenario())
