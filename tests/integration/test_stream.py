"""`GET /v1/stream` against real servers: `telemetry ingest` and `telemetry api` processes."""

from __future__ import annotations

import queue
import signal
import socket
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

import httpx
import pytest

from tests.support.apiprocess import AUTH, READ_KEY, ApiProcess, Sse, StreamReader
from tests.support.ingest import decode_wristband, wristband_payload
from tests.support.pipeline import Pipeline
from tests.support.poll import wait_for

pytestmark = pytest.mark.integration


@dataclass
class Stack(Pipeline):
    """The pipeline with an ingester and an API process serving the stream, and its readers."""

    readers: list[StreamReader] = field(default_factory=list)

    @property
    def api(self) -> ApiProcess:
        return self.apis[0]

    def reader(self, **params: str) -> StreamReader:
        headers = (
            {"Last-Event-ID": params.pop("last_event_id")} if "last_event_id" in params else {}
        )
        r = StreamReader(self.api.url, params, headers)
        self.readers.append(r)
        assert r.status == 200 or r.opened.is_set(), r.error
        return r

    def publish(self, messages: list[tuple[str, dict[str, Any]]]) -> None:
        self.publisher.many(messages)


MakeStack = Callable[..., Stack]


@pytest.fixture
def make_stack(pipeline: Pipeline) -> Iterator[MakeStack]:
    """`make_stack(**api_settings)`, once a test: the pipeline with an ingester and an API
    process sharing its events prefix; the readers are closed at the end, then the processes."""
    stacks: list[Stack] = []

    def make(**api_env: object) -> Stack:
        assert not stacks, "one stack a test"
        stack = Stack.like(pipeline)
        stack.start()
        stack.make_api(**api_env).start(stream=True)
        stacks.append(stack)
        return stack

    yield make
    for stack in stacks:
        for r in stack.readers:
            r.close()


def _uplink(
    prefix: str, device: str, t: int, seq: int, **radio: object
) -> tuple[str, dict[str, Any]]:
    data = wristband_payload(60 + seq % 40, 100 * seq, seq, seq % 4, 80)
    body = {"device": device, "time": t, "seqNumber": seq, "data": data} | radio
    return f"{prefix}/wristband/{device}", body


def _next_of(reader: StreamReader, kind: str = "up") -> Sse:
    while True:
        event = reader.next()
        if event.event == kind:
            return event


def test_an_uplink_shows_up_with_its_values_and_stations(make_stack: MakeStack) -> None:
    stack = make_stack()
    everything = stack.reader()
    ups = stack.reader(events="up", type="wristband", device="1a2b3c")
    scales = stack.reader(type="scale")
    assert stack.api.metric("telemetry_api_stream_clients") == 3
    t = int(time.time()) - 10
    topic, body = _uplink(
        stack.prefix,
        "1A2B3C",
        t,
        5,
        station="0A1B",
        rssi=-120.0,
        snr=5.0,
        duplicates=[{"bsId": "0C2D", "rssi": -99.5, "snr": 11.0, "nbRep": 1}],
    )
    stack.publish([(topic, body), _uplink(stack.prefix, "00FF", t, 1)])
    got = ups.next()
    assert got.event == "up"
    assert got.id is not None
    assert got.data == {
        "device": "1A2B3C",
        "type": "wristband",
        "time": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(t)),
        "seq": 5,
        "stations": 2,
        "station": "0C2D",
        "rssi": -99.5,
        "snr": 11.0,
        "values": decode_wristband(body["data"]),
    }
    first, second = everything.next(), everything.next()
    assert first == got
    assert second.data["device"] == "00FF"
    assert second.id is not None
    assert second.id > got.id
    # A reject reaches the unfiltered client; the `up`-only and scale clients see neither.
    stack.publish([(f"{stack.prefix}/wristband/1A2B3C", {"device": "1A2B3C"})])
    rejected = everything.next()
    assert rejected.event == "rejected"
    assert rejected.data["reason"] == "envelope"
    assert rejected.data["device"] == "1A2B3C"
    scale_t = t + 1
    stack.publish(
        [
            (
                f"{stack.prefix}/scale/5CA1E",
                {"device": "5CA1E", "time": scale_t, "seqNumber": 1, "data": "1b580120011a50"},
            )
        ]
    )
    assert scales.next().data["device"] == "5CA1E"  # the first it gets: the filters held
    assert _next_of(everything).data["device"] == "5CA1E"
    with pytest.raises(queue.Empty):
        ups.events.get_nowait()


def test_rejects_match_the_type_and_device_filters(make_stack: MakeStack) -> None:
    """A reject has the type its uplink topic names and the device its body names."""
    stack = make_stack()
    bands = stack.reader(type="wristband")
    band_rejects = stack.reader(type="wristband", events="rejected")
    scales = stack.reader(type="scale", events="rejected,up")
    one = stack.reader(device="1A2B3C")
    # Missing fields: rejected for the envelope, with the device known from the body.
    stack.publish(
        [
            (f"{stack.prefix}/toaster/1A2B3C", {"device": "1A2B3C"}),  # not a known type
            (f"{stack.prefix}/scale/5CA1E", {"device": "5CA1E"}),
            (f"{stack.prefix}/wristband/1A2B3C", {"device": "1A2B3C"}),
        ]
    )
    for reader in (bands, band_rejects):
        got = reader.next()
        assert got.event == "rejected"
        assert got.data["topic"] == f"{stack.prefix}/wristband/1A2B3C"
        assert got.data["device"] == "1A2B3C"
    got = scales.next()
    assert got.event == "rejected"
    assert got.data["topic"] == f"{stack.prefix}/scale/5CA1E"
    # The device filter keeps both rejects of 1A2B3C, whatever their topic's type.
    assert [one.next().data["topic"] for _ in range(2)] == [
        f"{stack.prefix}/toaster/1A2B3C",
        f"{stack.prefix}/wristband/1A2B3C",
    ]
    # Then an uplink of each type: each reader's next event is its own, nothing in between.
    t = int(time.time()) - 5
    stack.publish(
        [
            _uplink(stack.prefix, "1A2B3C", t, 1),
            (
                f"{stack.prefix}/scale/5CA1E",
                {"device": "5CA1E", "time": t, "seqNumber": 1, "data": "1b580120011a50"},
            ),
        ]
    )
    assert bands.next().event == "up"
    assert scales.next().event == "up"
    assert one.next().event == "up"
    stack.publish([(f"{stack.prefix}/wristband/1A2B3C", {"device": "1A2B3C"})])
    assert band_rejects.next().data["topic"] == f"{stack.prefix}/wristband/1A2B3C"
    assert bands.next().event == "rejected"
    assert one.next().event == "rejected"
    for reader in (bands, band_rejects, scales, one):
        with pytest.raises(queue.Empty):
            reader.events.get_nowait()


def test_tail_and_resume_with_last_event_id(make_stack: MakeStack) -> None:
    stack = make_stack()
    live = stack.reader(events="up")
    t = int(time.time()) - 30
    stack.publish([_uplink(stack.prefix, "1A2B3C", t + i, i) for i in range(6)])
    seen = [live.next() for _ in range(6)]
    assert [e.data["seq"] for e in seen] == list(range(6))
    ids = [e.id or 0 for e in seen]
    assert ids == sorted(ids)
    assert len(set(ids)) == 6
    tail = stack.reader(tail="3", events="up")
    assert [tail.next() for _ in range(3)] == seen[3:]
    resumed = stack.reader(last_event_id=str(ids[1]))
    assert [resumed.next() for _ in range(4)] == seen[2:]
    # ... then it goes on live, with nothing sent twice.
    stack.publish([_uplink(stack.prefix, "1A2B3C", t + 6, 6)])
    assert resumed.next().data["seq"] == 6
    assert tail.next().data["seq"] == 6
    with pytest.raises(queue.Empty):
        resumed.events.get_nowait()


def test_bad_parameters_are_problems(make_stack: MakeStack) -> None:
    stack = make_stack()
    base = stack.api.url
    cases = [
        ({"tail": "1001"}, {}, 422, None),
        ({"tail": "x"}, {}, 422, None),
        ({"events": "up,bogus"}, {}, 400, "events"),
        ({"type": "toaster"}, {}, 400, "type"),
        ({"device": "1A2B3C,XYZ"}, {}, 400, "device"),
        ({}, {"Last-Event-ID": "abc"}, 400, "Last-Event-ID"),
    ]
    for params, headers, status, parameter in cases:
        r = httpx.get(f"{base}/v1/stream", params=params, headers=AUTH | headers, timeout=10)
        assert r.status_code == status, (params, r.text)
        assert r.headers["content-type"] == "application/problem+json"
        if parameter:
            assert r.json()["parameter"] == parameter
    r = httpx.get(f"{base}/v1/stream", timeout=10)
    assert r.status_code == 401
    assert r.headers["content-type"] == "application/problem+json"


def test_heartbeat_and_duplicate_status_events(make_stack: MakeStack) -> None:
    stack = make_stack(api_stream_heartbeat="0.2")
    r = stack.reader(events="status,up")
    wait_for(lambda: len(r.comments) >= 3, what="comment lines on a quiet stream")
    status = f"{stack.events_prefix}/wristband/1A2B3C/status"
    body = (
        b'{"device":"1A2B3C","type":"wristband","time":"2026-01-01T00:00:00Z",'
        b'"state":"late","previous":"online","alarms":[]}'
    )
    # Two ingesters noticing one change publish the same event: it is shown once.
    stack.publisher.many([(status, body), (status, body)])
    stack.publish([_uplink(stack.prefix, "1A2B3C", int(time.time()) - 2, 1)])
    first = r.next()
    assert first.event == "status"
    assert first.data["state"] == "late"
    assert r.next().event == "up"  # not the status again
    assert stack.api.metric("telemetry_api_stream_duplicates_total") == 1


def test_two_api_processes_each_serve_every_event(make_stack: MakeStack) -> None:
    """Each API process has its own subscription (random client id): neither takes the other's."""
    stack = make_stack()
    other = stack.make_api().start(stream=True)
    try:
        here = stack.reader(events="up")
        there = StreamReader(other.url, {"events": "up"})
        stack.readers.append(there)
        t = int(time.time()) - 5
        stack.publish([_uplink(stack.prefix, "1A2B3C", t + i, i) for i in range(3)])
        for reader in (here, there):
            assert [reader.next().data["seq"] for _ in range(3)] == [0, 1, 2]
        stack.publish([_uplink(stack.prefix, "1A2B3C", t + 3, 3)])
        for reader in (here, there):
            assert reader.next().data["seq"] == 3  # nothing twice in between
    finally:
        other.stop()


def _stuck_client(base_port: int) -> socket.socket:
    """A stream client that reads nothing, with a receive buffer as small as allowed."""
    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    s.connect(("127.0.0.1", base_port))
    s.sendall(
        f"GET /v1/stream HTTP/1.1\r\nHost: api\r\nAuthorization: Bearer {READ_KEY}\r\n\r\n".encode()
    )
    return s


def test_a_slow_client_overflows_while_a_fast_one_keeps_up(make_stack: MakeStack) -> None:
    stack = make_stack(api_stream_backlog="50")
    fast = stack.reader()
    slow = _stuck_client(stack.api.port)
    try:
        wait_for(lambda: stack.api.metric("telemetry_api_stream_clients") == 2, what="2 clients")
        # Events of about 1.1 KB (rejects keep 1 KiB of their topic): more than the kernel's
        # socket buffers (up to 4 MB here) and uvicorn's hold for a client that reads nothing.
        n = 6000
        junk: list[tuple[str, dict[str, Any]]] = [
            (f"{stack.prefix}/wristband/{i:08d}{'F' * 1000}", {}) for i in range(n)
        ]
        stack.publish(junk)
        wait_for(
            lambda: stack.api.metric("telemetry_api_stream_overflows_total") >= 1,
            what="an overflow",
        )
        # The slow client now reads (within the API's 10 s of grace): what was in flight,
        # then `event: overflow`, then the end of the response.
        slow.settimeout(30)
        data = b""
        while not data.endswith(b"0\r\n\r\n"):
            chunk = slow.recv(1 << 20)
            if not chunk:
                break
            data += chunk
    finally:
        slow.close()
    assert b"event: overflow" in data
    assert data.count(b"event: rejected") < n
    got = [fast.next() for _ in range(n)]
    assert [e.event for e in got] == ["rejected"] * n
    assert len({e.data["topic"][:40] for e in got}) == n
    assert stack.api.metric("telemetry_api_stream_clients") == 1
    assert not fast.ended.is_set()
    # The fast client is still served.
    stack.publish([_uplink(stack.prefix, "A000", int(time.time()) - 2, 1)])
    assert _next_of(fast).data["device"] == "A000"


def test_sigterm_ends_open_streams(make_stack: MakeStack) -> None:
    stack = make_stack()
    readers = [stack.reader() for _ in range(3)]
    stuck = _stuck_client(stack.api.port)
    try:
        wait_for(lambda: stack.api.metric("telemetry_api_stream_clients") == 4, what="4 clients")
        assert stack.api.proc is not None
        stack.api.proc.send_signal(signal.SIGTERM)
        # uvicorn alone would wait for these connections forever; the deadline is 5 s.
        code = stack.api.proc.wait(30)
    finally:
        stuck.close()
    assert code in (0, -signal.SIGTERM), stack.api.log()
    for r in readers:
        wait_for(r.ended.is_set, what="stream ended")
    log = stack.api.log()
    assert "Application shutdown complete" in log
    assert "Traceback" not in log
    assert "timeout graceful shutdown exceeded" not in log
