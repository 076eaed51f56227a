"""Sequence-number arithmetic: 12-bit counters that wrap from 4095 to 0."""

from __future__ import annotations

from sigfox.limits import SEQ_MODULO

# A step forward larger than this is taken as a reordered (older) arrival, not as a loss:
# half the counter space, the usual serial-number-arithmetic rule (RFC 1982).
_HALF = SEQ_MODULO // 2


def next_seq(seq: int) -> int:
    return (seq + 1) % SEQ_MODULO


def forward_distance(prev: int, current: int) -> int:
    """How far `current` is ahead of `prev`, across the wrap (0..4095)."""
    return (current - prev) % SEQ_MODULO


def lost_between(prev: int, current: int) -> int:
    """Uplinks the network never heard between two consecutive arrivals; 0 for a reordering."""
    step = forward_distance(prev, current)
    if step == 0 or step > _HALF:
        return 0
    return step - 1


def is_newer(prev: int, current: int) -> bool:
    """True when `current` comes after `prev` in sequence order."""
    step = forward_distance(prev, current)
    return 0 < step <= _HALF
