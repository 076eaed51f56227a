"""ingest/merge.py: merging the copies of one transmission (stations, best RSSI, seeding)."""

from __future__ import annotations

import itertools

from ingest.merge import UNKNOWN_STATION, Copy, Merger

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


BARE = Copy(UNKNOWN_STATION, None, None)  # a body without `station` nor `rssi`


def test_a_copy_naming_no_station_adds_none() -> None:
    # DATA, then the same transmission's bare copy (DESIGN 1): one station, its RSSI
    merger = Merger()
    state, added = merger.merge(KEY, [Copy("3A5F", -126.0, None)])
    assert added == 1
    state, added = merger.merge(KEY, [BARE])
    assert added == 0
    assert (state.count, state.best, state.station_ids) == (1, Copy("3A5F", -126.0, None), "3A5F")


def test_a_bare_copy_first_then_a_named_one_is_still_one_station() -> None:
    merger = Merger()
    state, added = merger.merge(KEY, [BARE])
    assert (added, state.count, state.best.station, state.station_ids) == (1, 1, "-", "")
    state, added = merger.merge(KEY, [Copy("3A5F", -126.0, 4.0)])
    assert (added, state.count) == (0, 1)
    assert state.best == Copy("3A5F", -126.0, 4.0)


def test_advanced_body_counts_its_duplicates_only() -> None:
    # no `station`: the copy of the body itself names none, `duplicates` are every station
    merger = Merger()
    heard = [BARE, Copy("0B01", -120.0, 3.0), Copy("0B02", -98.5, 9.0), Copy("0B03", -130.0, None)]
    state, added = merger.merge(KEY, heard)
    assert (added, state.count, state.station_ids) == (3, 3, "0B01,0B02,0B03")
    assert state.best == Copy("0B02", -98.5, 9.0)
    state, added = merger.merge(KEY, [Copy("0B03", -130.0, None), BARE])  # its DATA twin
    assert (added, state.count) == (0, 3)


def test_with_no_station_named_the_best_unnamed_copy_gives_rssi() -> None:
    merger = Merger()
    merger.merge(KEY, [Copy(UNKNOWN_STATION, -120.0, 1.0)])
    state, added = merger.merge(KEY, [Copy(UNKNOWN_STATION, -100.0, 2.0), BARE])
    assert (added, state.count, state.best) == (0, 1, Copy(UNKNOWN_STATION, -100.0, 2.0))
    state, _ = merger.merge(KEY, [Copy("0A", None, None)])  # a named station wins, RSSI or not
    assert state.best == Copy("0A", None, None)


def test_seed_skips_the_unknown_station_of_points_stored_before() -> None:
    # points written when a copy without `station` counted as station "-"
    merger = Merger()
    merger.seed(KEY, "-,3A5F", Copy("3A5F", -126.0, None))
    state, added = merger.merge(KEY, [BARE])
    assert (added, state.count, state.station_ids) == (0, 1, "3A5F")


def test_seed_of_a_point_that_named_no_station() -> None:
    merger = Merger()
    merger.seed(KEY, "", Copy(UNKNOWN_STATION, -110.0, None))
    state, added = merger.merge(KEY, [Copy("0C", -125.0, None)])
    assert (added, state.count, state.best) == (0, 1, Copy("0C", -125.0, None))


def test_any_order_and_any_split_into_bodies_merge_the_same() -> None:
    heard = [BARE, Copy("A", -120.0, 1.0), Copy(UNKNOWN_STATION, -90.0, None), Copy("B", -100.0, 9)]
    for order in itertools.permutations(heard):
        for cut in range(1, len(order) + 1):
            merger = Merger()
            merger.merge(KEY, list(order[:cut]))
            state, _ = merger.merge(KEY, list(order[cut:]))
            assert (state.count, state.station_ids, state.best) == (2, "A,B", Copy("B", -100.0, 9))


def test_lru_is_bounded_and_remembers_evicted_times() -> None:
    merger = Merger(capacity=2)
    merger.merge(("A", 1, 10), [Copy("S", None, None)])
    merger.merge(("A", 2, 20), [Copy("S", None, None)])
    merger.merge(("A", 1, 10), [Copy("T", None, None)])  # touch: now most recent
    merger.merge(("A", 3, 30), [Copy("S", None, None)])  # evicts time 20
    assert len(merger) == 2
    assert ("A", 2, 20) not in merger
    assert merger.evicted_max_time == 20
