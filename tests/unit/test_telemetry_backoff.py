"""telemetry/backoff.py: the one retry delay, capped, jittered, and a server's hint honoured."""

from __future__ import annotations

import random

from telemetry.backoff import BASE, CAP, HINT_CAP_FACTOR, backoff


def test_backoff_is_capped_jittered_and_honours_the_server() -> None:
    delays = [backoff(attempt, base=0.5, cap=30.0) for attempt in range(40)]
    assert all(0 <= d <= 30.0 for d in delays)
    assert len(set(delays)) > 1  # jitter
    assert backoff(0, hint=12.0) >= 12.0
    assert backoff(0, cap=30.0, hint=10_000.0) <= 120.0  # a silly Retry-After is bounded


def test_each_attempt_stays_under_its_exponential_bound() -> None:
    for attempt in range(12):
        bound = min(CAP, BASE * 2**attempt)
        assert all(0 <= backoff(attempt) <= bound for _ in range(200)), attempt


def test_a_short_hint_does_not_shorten_nor_a_long_one_exceed_the_bound() -> None:
    assert all(backoff(6, cap=5.0, hint=0.0) <= 5.0 for _ in range(200))
    assert backoff(0, cap=5.0, hint=1e9) == 5.0 * HINT_CAP_FACTOR


def test_the_global_random_state_is_left_alone() -> None:
    random.seed(3)
    expected = random.random()
    random.seed(3)
    backoff(4)
    assert random.random() == expected
