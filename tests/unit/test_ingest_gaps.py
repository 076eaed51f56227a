"""ingest/gaps.py: sequence gaps per device, across the wrap, ignoring reordering; bounded."""

from __future__ import annotations

from ingest.gaps import GapCounter


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
