"""sigfox/sequence.py: 12-bit sequence arithmetic across the wrap (RFC 1982 half-space rule)."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from sigfox.limits import SEQ_MODULO
from sigfox.sequence import forward_distance, is_newer, lost_between

SEQ = st.integers(0, SEQ_MODULO - 1)


def test_forward_distance_wraps() -> None:
    assert forward_distance(10, 13) == 3
    assert forward_distance(4095, 0) == 1
    assert forward_distance(4094, 2) == 4
    assert forward_distance(7, 7) == 0
    assert forward_distance(13, 10) == 4093  # behind: nearly a whole lap forward


def test_lost_between_counts_the_uplinks_never_heard() -> None:
    assert lost_between(10, 11) == 0  # the next one
    assert lost_between(10, 14) == 3  # 11, 12, 13
    assert lost_between(4094, 1) == 2  # 4095 and 0, across the wrap
    assert lost_between(10, 10) == 0  # a repeat
    assert lost_between(10, 9) == 0  # a late arrival is a reordering, not a loss
    assert lost_between(0, 2048) == 2047  # half the space ahead: still a loss
    assert lost_between(0, 2049) == 0  # further: taken as older


def test_is_newer_follows_the_half_space_rule() -> None:
    assert is_newer(10, 11)
    assert is_newer(4095, 0)
    assert not is_newer(11, 10)
    assert not is_newer(5, 5)
    assert is_newer(0, 2048)
    assert not is_newer(0, 2049)


# Exactly half the space (2048) is newer both ways round, by the rule's own choice (examples
# above); strictly inside it, the order is one-sided.
@given(SEQ, st.integers(1, SEQ_MODULO // 2 - 1))
def test_a_step_forward_within_half_the_space_is_newer_and_loses_step_minus_one(
    prev: int, step: int
) -> None:
    current = (prev + step) % SEQ_MODULO
    assert forward_distance(prev, current) == step
    assert is_newer(prev, current)
    assert not is_newer(current, prev)
    assert lost_between(prev, current) == step - 1
    assert lost_between(current, prev) == 0  # the way back is never a loss
