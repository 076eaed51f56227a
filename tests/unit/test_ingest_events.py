"""Event bodies and the event connection's packets, against plain encodings of the same data."""

from __future__ import annotations

import asyncio
import json
import struct
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from catalogue import DeviceType, load_catalogue
from catalogue.codec import Value
from catalogue.loader import load_type_file
from ingest.eventbodies import rejected_event, rfc3339_ns, up_document, up_parts
from ingest.eventlink import EventLink
from ingest.eventpackets import (
    MIDS,
    connect_packet,
    parse_connack,
    publish_packet,
    publish_parts,
    read_varint,
)
from ingest.events import EventPublisher
from ingest.merge import Copy
from ingest.metrics import Metrics
from ingest.points import values_fields
from telemetry.settings import Settings

CATALOGUE = load_catalogue(None)
# Built-in types, and a type with bools (`door`) and one with text (`beacon`, encoded apart).
CASES = Path(__file__).parents[1] / "cases"
EVENT_TYPES = [
    *(CATALOGUE[name] for name in sorted(CATALOGUE.names())),
    load_type_file(CASES / "events" / "types" / "door.toml"),
    load_type_file(CASES / "uplinks" / "types" / "beacon.toml"),
]


def _split(packet: bytes) -> tuple[bytes, bytes]:
    """(topic, payload) of a PUBLISH with a two-byte remaining length, read plainly."""
    assert packet[0] == 0x32
    length = (packet[1] & 0x7F) | packet[2] << 7
    assert len(packet) == 3 + length
    n = struct.unpack_from("!H", packet, 3)[0]
    assert packet[5 + n + 2] == 0  # no properties
    return packet[5 : 5 + n], packet[5 + n + 3 :]


def up_event(*args: Any) -> tuple[str, bytes]:
    """Topic and body of what `up_parts(*args, <values' fields>)` publishes, read back from its
    packet; the values' fields made as the processor makes them for the stored point."""
    values = args[-1]
    head, tail = up_parts(*(*args, values_fields(values)))
    topic, body = _split(head + b"\x00\x01" + tail)
    return topic.decode(), body


def _varint(n: int) -> bytes:
    out = bytearray()
    while True:
        out.append((n & 0x7F) | (0x80 if n > 0x7F else 0))
        n >>= 7
        if not n:
            return bytes(out)


@given(
    topic=st.text(alphabet="abc/XYZ09", min_size=1, max_size=300).map(str.encode),
    payload=st.binary(max_size=20_000),
    mid=st.integers(1, 65_535),
)
def test_publish_packet_is_mqtt5_qos1(topic: bytes, payload: bytes, mid: int) -> None:
    variable = struct.pack("!H", len(topic)) + topic + struct.pack("!H", mid) + b"\x00"
    assert publish_packet(topic, payload, mid) == (
        b"\x32" + _varint(len(variable) + len(payload)) + variable + payload
    )


def test_connect_packet() -> None:
    packet = connect_packet("ing-events-1", 20, "ingest", "pw")
    body = (
        b"\x00\x04MQTT\x05\xc2\x00\x14\x00"
        + b"\x00\x0cing-events-1"
        + b"\x00\x06ingest"
        + b"\x00\x02pw"
    )
    assert packet == b"\x10" + bytes([len(body)]) + body


def test_connack_receive_maximum() -> None:
    # session present 0, success, properties: topic alias max 10, receive maximum 1000
    props = b"\x22\x00\x0a\x21\x03\xe8"
    assert parse_connack(b"\x00\x00" + bytes([len(props)]) + props) == (0, 1000)
    assert parse_connack(b"\x00\x87\x00") == (0x87, 65_535)


@pytest.mark.parametrize(
    ("name", "payload"),
    [
        ("wristband", "48000004b0012c0064"),
        ("weather_station", "0866019a0320279c50"),
        ("scale", "1b580120011a50"),
        ("plant_sensor", "2a0064086611"),
    ],
)
@pytest.mark.parametrize(
    "best", [Copy("0A1B", -110.5, 8.0), Copy("-", None, None), Copy("0C", -99.0, None)]
)
def test_up_event_is_the_stored_message(name: str, payload: str, best: Copy) -> None:
    dtype = CATALOGUE[name]
    values = dtype.decode(bytes.fromhex(payload)).values
    topic, body = up_event("ev", dtype, "1A2B3C", 1_716_000_000, 12, 3, best, values)
    assert topic == f"ev/{name}/1A2B3C/up"
    assert json.loads(body) == {
        "device": "1A2B3C",
        "type": name,
        "time": "2024-05-18T02:40:00Z",
        "seq": 12,
        "stations": 3,
        "station": None if best.station == "-" else best.station,
        "rssi": best.rssi,
        "snr": best.snr,
        "values": values,
    }


def test_up_event_with_a_value_left_out() -> None:
    dtype = CATALOGUE["wristband"]
    values: dict[str, Value] = {"heart_rate": 72, "battery": 80}  # others out of range
    _, body = up_event("ev", dtype, "1", 1_716_000_000, 1, 1, Copy("0A", -100.0, 1.5), values)
    assert json.loads(body)["values"] == values


def test_rejected_event() -> None:
    topic, body = rejected_event(
        "ev", "json", "uplink/wristband/1A2B3C", "1A2B3C", 1_716_000_000_123_456_789, 'bad "x"'
    )
    assert topic == "ev/rejected/json"
    assert json.loads(body) == {
        "reason": "json",
        "topic": "uplink/wristband/1A2B3C",
        "device": "1A2B3C",
        "time": "2024-05-18T02:40:00.123Z",
        "detail": 'bad "x"',
    }
    _, body = rejected_event("ev", "topic", "x" * 5000, None, 0, "d" * 5000)
    doc = json.loads(body)
    assert "device" not in doc
    assert (len(doc["topic"]), len(doc["detail"])) == (1024, 512)
    assert rfc3339_ns(0) == "1970-01-01T00:00:00.000Z"


def test_pubacks_counted_and_window_freed() -> None:
    acks: list[tuple[int, int, int]] = []
    link = EventLink(Settings(), lambda *a: acks.append(a))
    link.inflight = {1, 2, 3, 4}
    # v5 success without a reason byte, success 0x10 (no subscribers), refused 0x87; split
    # across reads, and one PUBACK for an id not in flight (ignored).
    stream = b"\x40\x02\x00\x01" + b"\x40\x03\x00\x02\x10" + b"\x40\x03\x00\x03\x87"
    stream += b"\x40\x02\x00\x09" + b"\xd0\x00" + b"\x40\x02\x00\x04"
    link._feed(stream[:5])
    link._feed(stream[5:11])
    link._feed(stream[11:])
    assert sum(a[0] for a in acks) == 3
    assert sum(a[1] for a in acks) == 1
    assert any(a[1] == 1 and a[2] == 0x87 for a in acks)
    assert link.inflight == set()


def test_a_block_of_plain_pubacks() -> None:
    acks: list[tuple[int, int, int]] = []
    link = EventLink(Settings(), lambda *a: acks.append(a))
    link.inflight = set(range(1, 70_000 % 65_536))
    link._feed(b"".join(b"\x40\x02" + struct.pack("!H", mid) for mid in range(1, 3000)))
    assert acks == [(2999, 0, 0)]
    assert min(link.inflight) == 3000


def test_write_refused_is_an_event() -> None:
    async def main() -> None:
        pub = EventPublisher(Settings(mqtt_events_prefix="ev"), Metrics())
        pub.on_write_refused("field type conflict", 1_716_000_000_000_000_000)
        head, tail = pub._queue
        topic, body = _split(head + b"\x00\x01" + tail)
        assert topic == b"ev/rejected/write_refused"
        assert json.loads(body) == {
            "reason": "write_refused",
            "topic": "",
            "time": "2024-05-18T02:40:00.000Z",
            "detail": "field type conflict",
        }

    asyncio.run(main())


def test_emit_never_blocks_and_counts_what_it_drops() -> None:
    async def main() -> None:
        metrics = Metrics()
        pub = EventPublisher(Settings(), metrics, capacity=3)
        pub.emit("a", b"1")
        pub.emit_many([*publish_parts(b"b", b"2"), *publish_parts(b"c", b"3"), b"d", b"4"])
        pub.emit("e", b"5")
        assert metrics.events_dropped._value.get() == 2
        await pub.close(0)  # never connected: what is queued is dropped too
        assert metrics.events_dropped._value.get() == 5

    asyncio.run(main())


_NUMBER = st.one_of(st.integers(-(2**53), 2**53), st.floats(allow_nan=False, allow_infinity=False))
_TEXT = st.text(st.characters(codec="utf-8", exclude_categories=("Cc", "Cs")), max_size=4)
_KIND_VALUES: dict[str, st.SearchStrategy[Value]] = {"bool": st.booleans(), "char": _TEXT}
_HEX = st.text(alphabet="0123456789ABCDEF", min_size=1, max_size=8)


@given(
    dtype=st.sampled_from(EVENT_TYPES),
    data=st.data(),
    device=_HEX,
    time_s=st.integers(0, 4_102_444_800),
    seq=st.integers(0, 4095),
    stations=st.integers(1, 10),
    best=st.builds(
        Copy,
        st.one_of(st.just("-"), _HEX),
        st.one_of(st.none(), st.floats(-200, 0)),
        st.one_of(st.none(), st.floats(-50, 50)),
    ),
)
def test_fast_up_event_is_json_dumps_of_up_document(  # noqa: PLR0917  # hypothesis's draws
    dtype: DeviceType,
    data: st.DataObject,
    device: str,
    time_s: int,
    seq: int,
    stations: int,
    best: Copy,
) -> None:
    """The pair: `up_parts` (rewritten line protocol, what is published) and `up_document`
    (spelled out)."""
    name = dtype.name
    # Every field, one, or none (the others out of range), numbers of either kind for numbers.
    fields = list(dtype.fields)
    names = data.draw(st.sampled_from([fields, [], *([f] for f in fields)]))
    values: dict[str, Value] = {
        f: data.draw(_KIND_VALUES.get(dtype.fields[f].slot.kind, _NUMBER)) for f in names
    }
    topic, body = up_event("ev", dtype, device, time_s, seq, stations, best, values)
    slow = up_document(dtype, device, time_s, seq, stations, best, values)
    # Text as UTF-8, not \u escapes: both are JSON, and the product writes the shorter.
    assert body == json.dumps(slow, separators=(",", ":"), ensure_ascii=False).encode()
    assert topic == f"ev/{name}/{device}/up"
    text = values_fields(values)
    head, tail = up_parts("ev", dtype, device, time_s, seq, stations, best, values, text)
    assert head + MIDS[7] + tail == publish_packet(topic.encode(), body, 7)


class _Writer:
    """What `EventLink.send` writes to, kept (the wire itself is tested against Mosquitto)."""

    def __init__(self) -> None:
        self.data = b""

    def write(self, data: bytes) -> None:
        self.data += data


def test_send_puts_ids_in_order_between_the_halves_and_skips_ids_in_flight() -> None:
    link = EventLink(Settings(), lambda *a: None)
    writer = _Writer()
    link._writer = writer  # type: ignore[assignment]
    events = [(f"ev/t/{i}/up".encode(), b'{"i":%d}' % i) for i in range(6)]
    parts = [p for t, b in events for p in publish_parts(t, b)]
    link._next_mid = 65_534  # wraps around after 65,535; 2 is still in flight
    link.inflight = {2}
    link.send(parts)
    ids = [65_534, 65_535, 1, 3, 4, 5]
    assert writer.data == b"".join(
        publish_packet(t, b, mid) for (t, b), mid in zip(events, ids, strict=True)
    )
    assert link.inflight == {2, *ids}
    assert link._next_mid == 6


def test_pubacks_without_subscribers_read_in_bulk_across_reads() -> None:
    # Mosquitto's answer when no one subscribes: 40 03 <id> 10 ("no matching subscribers").
    acks: list[tuple[int, int, int]] = []
    link = EventLink(Settings(), lambda *a: acks.append(a))
    link.inflight = set(range(1, 5001))
    stream = b"".join(b"\x40\x03" + struct.pack("!H", mid) + b"\x10" for mid in range(1, 5001))
    for start in range(0, len(stream), 4099):  # reads that cut packets anywhere
        link._feed(stream[start : start + 4099])
    assert sum(a[0] for a in acks) == 5000
    assert not any(a[1] for a in acks)
    assert link.inflight == set()
    assert link._pending == b""


def test_a_refusal_among_bulk_pubacks_is_counted() -> None:
    acks: list[tuple[int, int, int]] = []
    link = EventLink(Settings(), lambda *a: acks.append(a))
    link.inflight = {1, 2, 3}
    link._feed(b"\x40\x03\x00\x01\x10" + b"\x40\x03\x00\x02\x87" + b"\x40\x03\x00\x03\x00")
    assert (sum(a[0] for a in acks), sum(a[1] for a in acks)) == (2, 1)
    assert link.inflight == set()


def test_floats_remembered_are_not_confused_with_equal_numbers() -> None:
    # 0.0 == -0.0 and 8 == 8.0, but JSON writes each its own way.
    dtype = CATALOGUE["scale"]
    values = dtype.decode(bytes.fromhex("1b580120011a50")).values
    for rssi, snr in [(0.0, 8.0), (-0.0, 8), (-110.5, 8.0), (-110.5, 8), (-0.0, 0.0)]:
        best = Copy("0A", rssi, snr)
        _, body = up_event("ev", dtype, "1", 1_716_000_000, 1, 1, best, values)
        slow = up_document(dtype, "1", 1_716_000_000, 1, 1, best, values)
        assert body == json.dumps(slow, separators=(",", ":")).encode()


@given(n=st.integers(0, 2**28 - 1), pos=st.integers(0, 3))
def test_read_varint(n: int, pos: int) -> None:
    data = b"x" * pos + _varint(n)
    assert read_varint(data + b"rest", pos) == (n, len(data))
    assert read_varint(data[:-1], pos) == (0, -1)  # cut short
