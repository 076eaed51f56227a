"""Link health of the snapshot from per-bucket counts and first/last seq (api/routes/snapshot)."""

from __future__ import annotations

import itertools
import random

from api.routes.snapshot import _link
from sigfox.sequence import lost_between

NEWEST = {"stations": 2, "station": "0A1B", "rssi": -110.0, "snr": 9.0}


def bucket(count: int, first: int, last: int) -> list[int]:
    return [0, count, first, last]


def test_loss_inside_and_between_buckets_across_the_wrap() -> None:
    # 4090..4095 with 4093 missing (1 lost inside), then 0..5 after 4095 (none between),
    # then 8..9 (6 and 7 lost between)
    link = _link(NEWEST, [bucket(5, 4090, 4095), bucket(6, 0, 5), bucket(2, 8, 9)])
    assert link.messages == 13
    assert link.lost == 3
    assert link.loss == round(3 / 16, 4)
    assert link.stations == 2
    assert link.station == "0A1B"


def test_a_reordering_counts_as_the_device_fold_does_never_a_wrap() -> None:
    # seqs by time 10, 8, 9 | 11: the per-device fold (sigfox.sequence) counts 9 -> 11 as one
    # lost and the backward steps as none; the bucket's "backwards" span must not count 4094
    link = _link(NEWEST, [bucket(3, 10, 9), bucket(1, 11, 11)])
    assert link.lost == fold([10, 8, 9, 11]) == 1


def test_without_reordering_the_buckets_give_the_device_fold() -> None:
    rng = random.Random(3)
    for _ in range(200):
        seq, seqs = rng.randrange(4096), []
        for _ in range(rng.randrange(1, 60)):
            seq = (seq + 1 + (rng.randrange(1, 4) if rng.random() < 0.1 else 0)) % 4096
            seqs.append(seq)
        cuts = sorted(rng.sample(range(1, len(seqs)), min(3, len(seqs) - 1)))
        parts = [seqs[a:b] for a, b in zip([0, *cuts], [*cuts, len(seqs)], strict=True)]
        buckets = [bucket(len(p), p[0], p[-1]) for p in parts if p]
        assert _link(NEWEST, buckets).lost == fold(seqs), seqs


def fold(seqs: list[int]) -> int:
    return sum(lost_between(a, b) for a, b in itertools.pairwise(seqs))


def test_no_message_in_the_window() -> None:
    link = _link(NEWEST, [])
    assert (link.messages, link.lost, link.loss) == (0, 0, None)
