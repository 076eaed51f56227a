"""Folding sequence loss incrementally: the same figure as a full pass, and stale marks refused."""

from __future__ import annotations

import itertools

from hypothesis import given
from hypothesis import strategies as st

from api.losscache import LossCache, LossMark, advance


def _full(seqs: list[int]) -> int:
    """Loss written out apart from the project: forward steps of 1..2048 across the wrap."""
    lost = 0
    for prev, cur in itertools.pairwise(seqs):
        step = (cur - prev) % 4096
        if 1 <= step <= 2048:
            lost += step - 1
    return lost


def test_wrap_gap_and_reordering() -> None:
    rows = [(t, s) for t, s in enumerate([4094, 0, 3, 2, 4])]  # 1 lost, 2 lost, back, +2
    mark = advance(None, rows)
    assert mark == LossMark(time_ns=4, seq=4, lost=3 + 1, count=5)


@given(st.lists(st.integers(0, 4095), min_size=1, max_size=60), st.data())
def test_folding_in_pieces_equals_one_pass(seqs: list[int], data: st.DataObject) -> None:
    rows = list(enumerate(seqs))
    cut = data.draw(st.integers(0, len(rows) - 1))
    first = advance(None, rows[: cut + 1])
    assert first is not None
    # the next query starts at the mark's own point (time >= mark.time_ns)
    second = advance(first, rows[cut:])
    assert second is not None
    assert second.lost == _full(seqs)
    assert second.count == len(seqs)
    assert (second.time_ns, second.seq) == rows[-1]


def test_a_mark_whose_point_changed_is_refused() -> None:
    mark = LossMark(time_ns=10, seq=5, lost=0, count=3)
    assert advance(mark, [(10, 6), (11, 7)]) is None
    assert advance(mark, []) is None
    assert advance(None, []) is None


def test_cache_is_bounded_and_least_recently_used_goes_first() -> None:
    cache = LossCache(max_devices=2)
    for name in ("A", "B"):
        cache.put(name, LossMark(1, 1, 0, 1))
    assert cache.get("A") is not None  # A is now the most recent
    cache.put("C", LossMark(1, 1, 0, 1))
    assert cache.get("B") is None
    assert cache.get("A") is not None
    cache.forget("A")
    assert cache.get("A") is None
