"""MQTT framing: packets split across any read boundaries come out whole and in order."""

from __future__ import annotations

import paho.mqtt.client as paho
import pytest
from hypothesis import given
from hypothesis import strategies as st
from paho.mqtt.enums import CallbackAPIVersion

from ingest.frames import FrameError, Framer, parse_publish


def remaining(n: int) -> bytes:
    """MQTT's variable-length encoding, written out independently of `ingest.frames`."""
    out = bytearray()
    while True:
        n, byte = divmod(n, 128)
        out.append(byte | (0x80 if n else 0))
        if not n:
            return bytes(out)


def packet(header: int, body: bytes) -> bytes:
    return bytes([header]) + remaining(len(body)) + body


def publish(topic: str, payload: bytes, mid: int, qos: int) -> bytes:
    t = topic.encode()
    head = len(t).to_bytes(2, "big") + t + (mid.to_bytes(2, "big") if qos else b"")
    return packet(0x30 | qos << 1, head + payload)


packets = st.lists(
    st.tuples(
        st.sampled_from([0x20, 0x30, 0x32, 0x90, 0xD0]),  # CONNACK, PUBLISH q0/q1, SUBACK, PINGRESP
        st.binary(max_size=300),
    ),
    max_size=20,
)


@given(packets, st.lists(st.integers(1, 50), min_size=1, max_size=10))
def test_packets_survive_any_read_boundaries(
    items: list[tuple[int, bytes]], cuts: list[int]
) -> None:
    stream = b"".join(packet(h, b) for h, b in items)
    framer = Framer()
    out: list[tuple[int, bytes]] = []
    pos, i = 0, 0
    while pos < len(stream):
        step = cuts[i % len(cuts)]
        out += framer.feed(stream[pos : pos + step])
        pos += step
        i += 1
    assert out == items
    assert len(framer) == 0


def test_lengths_of_every_size_class() -> None:
    # 1, 2 and 3 length bytes: 0, 127 | 128, 16,383 | 16,384
    items = [(0x30, bytes(n)) for n in (0, 127, 128, 16_383, 16_384)]
    framer = Framer()
    assert framer.feed(b"".join(packet(h, b) for h, b in items)) == items


def test_an_incomplete_packet_waits_for_its_bytes() -> None:
    framer = Framer()
    whole = packet(0x32, b"x" * 200)
    assert framer.feed(whole[:1]) == []
    assert framer.feed(whole[1:2]) == []  # one of two length bytes
    assert framer.feed(whole[2:150]) == []
    assert len(framer) == 150
    assert framer.feed(whole[150:]) == [(0x32, b"x" * 200)]


def test_a_fifth_length_byte_is_not_mqtt() -> None:
    with pytest.raises(FrameError, match="remaining length"):
        Framer().feed(b"\x30\xff\xff\xff\xff\x01")


@pytest.mark.parametrize("qos", [0, 1])
def test_publish_parses_as_paho_encodes_it(qos: int) -> None:
    # the bytes paho itself queues for the wire for this message
    client = paho.Client(CallbackAPIVersion.VERSION2)
    sent: list[bytes] = []
    client._sock = object()  # type: ignore[assignment]  # paho only checks it is set
    client._packet_queue = lambda command, data, *rest, **kw: sent.append(bytes(data))  # type: ignore[method-assign,assignment]
    client._send_publish(513, b"uplink/wristband/1A2B", b'{"a": 1}', qos)
    client._sock = None
    assert sent == [publish("uplink/wristband/1A2B", b'{"a": 1}', 513, qos)]
    [(header, body)] = Framer().feed(sent[0])
    expected = ("uplink/wristband/1A2B", b'{"a": 1}', 513 if qos else 0, qos)
    assert parse_publish(header, body) == expected


def test_truncated_publish_is_refused() -> None:
    with pytest.raises(FrameError):
        parse_publish(0x32, b"\x00")
    with pytest.raises(FrameError):
        parse_publish(0x32, b"\x00\x05abc")  # topic longer than the packet
    with pytest.raises(FrameError):
        parse_publish(0x32, b"\x00\x01a\x00")  # packet id cut


def test_a_topic_that_is_not_utf8_still_parses() -> None:
    topic, payload, mid, qos = parse_publish(0x32, b"\x00\x02\xff\xfe\x00\x07{}")
    assert (payload, mid, qos) == (b"{}", 7, 1)
    assert "\ufffd" in topic
