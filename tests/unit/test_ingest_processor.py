"""ingest/processor.py in-process, no servers (lookups are stubbed here)."""

from __future__ import annotations

import asyncio
import json
import struct

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from catalogue import load_catalogue
from ingest.batcher import Batch
from ingest.merge import Copy, Key, Merger
from ingest.metrics import Metrics
from ingest.points import RejectStamper
from ingest.processor import HELD, CopiesLookup, Processor
from ingest.received import Incoming
from ingest.validate import Rejection
from telemetry.settings import Settings

NOW = 1_716_000_000
DATA = struct.pack(">BIHBB", 70, 100, 10, 1, 80).hex()


def msg(mid: int, device: str = "AB", seq: int = 1, t: int = NOW - 5, **extra: object) -> Incoming:
    body = {"device": device, "time": t, "seqNumber": seq, "data": DATA} | extra
    return Incoming(f"uplink/wristband/{device}", json.dumps(body).encode(), mid, 1, 1, mid)


def processor(**settings: object) -> tuple[Processor, Metrics]:
    metrics = Metrics()
    proc = Processor(
        Settings(**settings),  # type: ignore[arg-type]
        load_catalogue(None),
        metrics,
        clock=lambda: float(NOW),
    )
    return proc, metrics


@pytest.mark.asyncio
async def test_copies_merge_and_every_message_is_acked() -> None:
    proc, metrics = processor()
    chunk = await proc.process(
        [
            msg(1, station="01", rssi=-120),
            msg(2, station="02", rssi=-100),
            msg(3, station="02", rssi=-100),  # redelivery
            Incoming("uplink/wristband/AB", b"\xff", 4, 1, 1, 4),
        ]
    )
    assert [a[0] for a in chunk.acks] == [1, 2, 3, 4]
    batch = Batch()
    batch.add(chunk)
    lines = list(batch.points.values())
    assert len(lines) == 3  # wristband, uplink (merged, newest wins), rejected
    uplink = next(line for line in lines if line.startswith("uplink,"))
    assert "stations=2i" in uplink
    assert 'station="02"' in uplink
    assert "rssi=-100.0" in uplink
    assert any(line.startswith("rejected,device=AB,reason=encoding ") for line in lines)
    assert metrics.merged._value.get() == 1
    assert chunk.accepted == 3
    assert batch.accepted == 3


@pytest.mark.asyncio
async def test_rate_limit_skips_copies() -> None:
    proc, metrics = processor(ingest_rate_burst=1, ingest_rate_per_hour=60)
    chunk = await proc.process(
        [msg(1, seq=1, station="01"), msg(2, seq=1, station="02"), msg(3, seq=2, t=NOW - 4)]
    )
    rejected = [line for _, line in chunk.lines if line.startswith("rejected")]
    assert len(rejected) == 1
    assert rejected[0].startswith("rejected,device=AB,reason=rate_limited")
    assert metrics.rejected.labels("rate_limited")._value.get() == 1


@pytest.mark.asyncio
async def test_reject_timestamps_never_collide() -> None:
    proc, _ = processor()
    chunk = await proc.process([Incoming("x", b"", i, 1, 1, 1000) for i in range(3)])
    assert len({key for key, _ in chunk.lines}) == 3


@given(
    st.lists(
        st.tuples(
            st.sampled_from(["uplink/wristband/AB", "uplink/scale/1", "uplink/x/y"])
            | st.text(max_size=30),
            st.binary(max_size=1100)
            | st.builds(
                lambda dev, seq, data: json.dumps(
                    {
                        "device": dev,
                        "time": NOW - 5,
                        "seqNumber": seq,
                        "data": data,
                        "station": "0A",
                    }
                ).encode(),
                st.sampled_from(["AB", "ab", "1"]) | st.text(max_size=9),
                st.integers(0, 4095),
                st.sampled_from([DATA, DATA[:-2], ""]) | st.text(max_size=26),
            ),
        ),
        min_size=1,
        max_size=8,
    )
)
@settings(max_examples=150, deadline=None)
def test_every_message_gets_exactly_one_ack_and_safe_lines(
    messages: list[tuple[str, bytes]],
) -> None:
    proc, _ = processor()
    incoming = [Incoming(t, b, i + 1, 1, 1, 10 + i) for i, (t, b) in enumerate(messages)]
    chunk = asyncio.run(proc.process(incoming))
    assert [a[0] for a in chunk.acks] == [m.mid for m in incoming]
    for _, line in chunk.lines:
        assert "\n" not in line
        assert "\r" not in line
        assert "\x00" not in line
        assert line.split(" ", 1)[0].split(",", 1)[0] in {
            "wristband",
            "scale",
            "uplink",
            "rejected",
        }


@pytest.mark.asyncio
async def test_rate_limit_runs_on_the_uplinks_clock() -> None:
    # A week of history at 140 a day, published in one go (a backfill), all passes...
    proc, metrics = processor()
    week = [msg(i + 1, seq=i % 4096, t=NOW - 7 * 86400 + i * 617) for i in range(980)]
    chunk = await proc.process(week)
    assert chunk.accepted == 980
    assert metrics.rejected.labels("rate_limited")._value.get() == 0
    # ...while 100 uplinks stamped within the same few seconds exceed a burst of 20.
    proc, metrics = processor(ingest_rate_burst=20, ingest_rate_per_hour=60)
    flood = [msg(i + 1, seq=i, t=NOW - 5 + i // 50) for i in range(100)]
    chunk = await proc.process(flood)
    assert chunk.accepted == 20  # the burst
    assert metrics.rejected.labels("rate_limited")._value.get() == 80
    assert metrics.lost._value.get() == 0  # rejected, not lost: the network heard them all


@pytest.mark.asyncio
async def test_unnamed_station_is_no_field_and_device_type_id_is_kept() -> None:
    proc, _ = processor()
    chunk = await proc.process([msg(1, deviceTypeId="5f1a0c")])
    (raw,) = [line for _, line in chunk.lines if line.startswith("uplink,")]
    assert "station=" not in raw.replace("station_ids=", "")
    assert 'device_type_id="5f1a0c"' in raw


@pytest.mark.asyncio
async def test_copies_of_possibly_stored_transmissions_wait_while_influx_is_unreadable() -> None:
    stored = {("AB", 1, NOW - 100): ("0A,0B", Copy("0B", -100.0, 5.0))}
    readable = False

    async def lookup(keys: object) -> dict[Key, tuple[str, Copy]] | None:
        return {k: v for k, v in stored.items() if k in keys} if readable else None  # type: ignore[operator]

    proc = Processor(
        Settings(),
        load_catalogue(None),
        Metrics(),
        lookup,
        clock=lambda: float(NOW),
        known_after=NOW - 50,  # measured at start: transmissions up to then may be stored
    )
    late_copy = msg(1, seq=1, t=NOW - 100, station="0C", rssi=-120)
    fresh = msg(2, seq=2, t=NOW - 10, station="0A", rssi=-110)
    chunk = await proc.process([late_copy, fresh])
    assert [a[0] for a in chunk.acks] == [2]  # the late copy is held, unacked; the fresh one goes
    readable = True
    chunk = await proc.process([])
    assert [a[0] for a in chunk.acks] == [1]
    (raw,) = [line for _, line in chunk.lines if line.startswith("uplink,")]
    assert "stations=3i" in raw  # 0A, 0B stored + 0C now: never lowered
    assert 'station="0B"' in raw  # the stored best (-100) beats the late copy (-120)


@pytest.mark.asyncio
async def test_an_internal_error_is_kept_with_its_own_reason(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    proc, metrics = processor()

    def broken(*_: object) -> list[tuple[object, str]]:
        raise RuntimeError("a bug")

    monkeypatch.setattr("ingest.processor.accepted_points", broken)
    out = await proc.process([msg(1), msg(2, device="CD")])
    assert [line.split(" ", 1)[0] for _, line in out.lines] == ["rejected,reason=internal"] * 2
    assert "internal error: RuntimeError('a bug')" in out.lines[0][1]
    assert out.accepted == 0
    assert len(out.acks) == 2  # kept aside and acked: the loop goes on
    assert metrics.rejected.labels("internal")._value.get() == 2


def test_a_held_copy_is_no_rejection() -> None:
    assert not isinstance(HELD, Rejection)


def test_one_stamper_keeps_every_reject_time_unique() -> None:
    stamper = RejectStamper()
    stamps = [stamper.stamp(ns) for ns in (100, 100, 99, 300, 300)]
    assert stamps == [100, 101, 102, 300, 301]
    ts, (key, line) = stamper.record("write_refused", None, "", b"x", "bad", 5)
    assert ts == 302
    assert key[2] == 302
    assert line.endswith(" 302")


def test_merger_says_when_to_look_up_and_what_to_hold() -> None:
    merger = Merger(known_after=NOW - 50, measured=True)
    assert merger.needs_lookup(("AB", 1, NOW - 60))  # may be stored before our start
    assert not merger.needs_lookup(("AB", 1, NOW - 10))  # after it: the cache knows
    assert merger.must_hold(("AB", 1, NOW - 60))
    assert not merger.must_hold(("AB", 1, NOW - 10))
    merger.merge(("AB", 1, NOW - 60), [])
    assert not merger.needs_lookup(("AB", 1, NOW - 60))  # in the cache now
    unmeasured = Merger(known_after=NOW - 50)
    assert unmeasured.hold_horizon is None
    assert not unmeasured.must_hold(("AB", 1, NOW - 60))
    # InfluxDB could not say, but an earlier run on the spool folder acked up to NOW - 55
    taken = Merger(known_after=NOW - 50, hold_horizon=NOW - 55)
    assert taken.must_hold(("AB", 1, NOW - 60))
    assert not taken.must_hold(("AB", 1, NOW - 54))


def share_member(copies: CopiesLookup) -> Processor:
    """A processor of a share group's member, reading every member's copies through `copies`."""
    settings = Settings(mqtt_share_group="g")
    return Processor(
        settings, load_catalogue(None), Metrics(), clock=lambda: float(NOW), copies=copies
    )


@pytest.mark.asyncio
async def test_a_share_group_member_rewrites_what_the_copies_of_all_members_change() -> None:
    """Copy 01 came here, copy 02 to another member: once our point is stored, the copies
    stored by all say 2 stations, so we write both points again (and the `up` event); a
    transmission whose stored copies are ours alone is not written again."""
    stored: dict[Key, list[Copy]] = {}

    async def copies(keys: object) -> dict[Key, list[Copy]]:
        return stored

    proc = share_member(copies)
    first = await proc.process([msg(1, station="01", rssi=-120), msg(2, seq=2, t=NOW - 4)])
    copy_lines = [line for _, line in first.lines if line.startswith("uplink_copy,")]
    assert copy_lines == [
        f"uplink_copy,device=AB,station=01 seq=1i,rssi=-120.0 {(NOW - 5) * 10**9}"
    ]
    assert first.verify == [("AB", 1, NOW - 5), ("AB", 2, NOW - 4)]
    stored[("AB", 1, NOW - 5)] = [Copy("01", -120.0, None), Copy("02", -100.0, 3.0)]
    proc.stored(first.verify)
    again = await proc.process([])
    uplink = [line for _, line in again.lines if line.startswith("uplink,")]
    assert len(uplink) == 1
    assert "stations=2i" in uplink[0]
    assert 'station="02"' in uplink[0]
    assert 'station_ids="01,02"' in uplink[0]
    assert any(line.startswith("wristband,") and "stations=2i" in line for _, line in again.lines)
    assert again.verify == [("AB", 1, NOW - 5)]  # the rewrite is checked in turn
    assert len(again.events) == 2  # one `up` event: its (head, tail)
    proc.stored(again.verify)
    last = await proc.process([])
    assert last.lines == []  # stored as we wrote it: done
    assert proc._written == {}


@pytest.mark.asyncio
async def test_a_share_group_check_waits_when_copies_cannot_be_read_and_survives_eviction() -> None:
    reads: list[object] = []
    answer: dict[Key, list[Copy]] | None = None

    async def copies(keys: object) -> dict[Key, list[Copy]] | None:
        reads.append(sorted(keys))  # type: ignore[call-overload]
        return answer

    proc = share_member(copies)
    proc.merger.capacity = 1  # the next transmission evicts the first from the cache
    first = await proc.process([msg(1, rssi=-120)])  # a copy naming no station
    second = await proc.process([msg(2, seq=2, t=NOW - 4, station="05", rssi=-90)])
    proc.stored(first.verify + second.verify)
    await proc.process([])  # InfluxDB cannot be read: both wait ...
    await proc.process([])  # ... and are not read again at once
    assert len(reads) == 1
    proc._verify_after = 0.0  # the retry time has come
    answer = {}  # nothing new from the other members
    again = await proc.process([])
    assert len(reads) == 2
    # the first kept its own copy's RSSI though evicted: nothing to write again
    assert again.lines == []
    assert proc._written == {}
