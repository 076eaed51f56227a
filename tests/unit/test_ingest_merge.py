"""Merging copies of one transmission; sequence gaps; the per-device rate limit."""

from __future__ import annotations

import itertools

from ingest.gaps import GapCounter
from ingest.merge import Copy, Merger
from ingest.ratelimit import RateLimiter

KEY = ("1A", 5, 1000)


def test_copies_in_any_order_give_the_same_state() -> None:
    copies = [Copy("A", -120.0, 1.0), Copy("B", -100.0, 9.0), Copy("C", -110.0, None)]
    for order in itertools.permutations(copies):
        merger = Merger()
        for c in order:
            merger.merge(KEY, [c])
        state, added = merger.merge(KEY, [order[0]])  # a redelivery changes nothing
        assert added == 0
        assert len(state.stations) == 3
        assert state.best == Copy("B", -100.0, 9.0)
        assert state.station_ids == "A,B,C"


def test_missing_rssi_ranks_last_and_ties_go_to_smallest_id() -> None:
    merger = Merger()
    state, added = merger.merge(KEY, [Copy("Z", None, None), Copy("B", -90, 1), Copy("A", -90, 2)])
    assert added == 3
    assert state.best.station == "A"


def test_seed_from_the_stored_point_never_lowers_stations() -> None:
    merger = Merger()
    merger.seed(KEY, "A,B", Copy("B", -95.0, 3.0))
    state, added = merger.merge(KEY, [Copy("C", -130.0, 0.0)])
    assert added == 1
    assert state.station_ids == "A,B,C"
    assert state.best == Copy("B", -95.0, 3.0)


def test_lru_is_bounded_and_remembers_evicted_times() -> None:
    merger = Merger(capacity=2)
    merger.merge(("A", 1, 10), [Copy("S", None, None)])
    merger.merge(("A", 2, 20), [Copy("S", None, None)])
    merger.merge(("A", 1, 10), [Copy("T", None, None)])  # touch: now most recent
    merger.merge(("A", 3, 30), [Copy("S", None, None)])  # evicts time 20
    assert len(merger) == 2
    assert ("A", 2, 20) not in merger
    assert merger.evicted_max_time == 20


def test_gaps_count_wrap_and_ignore_reordering() -> None:
    gaps = GapCounter()
    assert gaps.observe("D", 4093) == 0
    assert gaps.observe("D", 4095) == 1
    assert gaps.observe("D", 2) == 2  # 0 and 1 lost across the wrap
    assert gaps.observe("D", 1) == 0  # late arrival of one counted lost: not another loss
    assert gaps.observe("D", 2) == 0  # repeat
    assert gaps.observe("D", 3) == 0
    assert gaps.observe("E", 7) == 0  # devices are independent


def test_gap_counter_is_bounded() -> None:
    gaps = GapCounter(max_devices=3)
    for i in range(10):
        gaps.observe(f"D{i}", 1)
    assert len(gaps._last) == 3


def test_token_bucket_burst_then_rate() -> None:
    rl = RateLimiter(burst=3, per_hour=3600)  # one token a second
    assert [rl.allow("D", 0.0) for _ in range(4)] == [True, True, True, False]
    assert rl.allow("D", 0.5) is False
    assert rl.allow("D", 1.0) is True
    assert rl.allow("E", 1.0) is True  # per device
    assert [rl.allow("D", 100.0) for _ in range(4)] == [True, True, True, False]  # capped at burst


def test_rate_limiter_is_bounded() -> None:
    rl = RateLimiter(burst=1, per_hour=1, max_devices=2)
    for d in ("A", "B", "C"):
        rl.allow(d, 0.0)
    assert len(rl._buckets) == 2
