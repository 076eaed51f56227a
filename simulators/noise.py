"""Deterministic randomness as pure functions of (keys, time): no state, no clock, no I/O.

Every random choice of a simulated device is a hash of its seed, its name and the time slot it
concerns, so a value at time `t` is the same whether it is computed during a backfill or live,
in any order, after a restart.
"""

from __future__ import annotations

import functools
import hashlib
import math

_MASK = (1 << 64) - 1


@functools.lru_cache(maxsize=1 << 16)  # models ask for the same few keys again and again
def key_of(*parts: object) -> int:
    """A 64-bit key from any printable parts (stable across runs, unlike `hash()`)."""
    text = "\x1f".join(str(p) for p in parts).encode()
    return int.from_bytes(hashlib.blake2b(text, digest_size=8).digest(), "big")


def mix(key: int, n: int) -> int:
    """splitmix64 of `key` combined with the integer `n`: cheap, well spread."""
    z = (key + (n + 1) * 0x9E3779B97F4A7C15) & _MASK
    z = ((z ^ (z >> 30)) * 0xBF58476D1CE4E5B9) & _MASK
    z = ((z ^ (z >> 27)) * 0x94D049BB133111EB) & _MASK
    return z ^ (z >> 31)


def unit(key: int, n: int) -> float:
    """Uniform in [0, 1) for slot `n` of stream `key`."""
    return (mix(key, n) >> 11) / float(1 << 53)


def signed(key: int, n: int) -> float:
    """Uniform in [-1, 1)."""
    return 2.0 * unit(key, n) - 1.0


def gauss(key: int, n: int) -> float:
    """Roughly normal (mean 0, sd about 1): the sum of four uniforms, bounded to +-3.5."""
    return sum(unit(key, 4 * n + i) for i in range(4)) * math.sqrt(3.0) - 2.0 * math.sqrt(3.0)


def smooth(key: int, t: float, period: float) -> float:
    """Value noise in [-1, 1]: random knots every `period` seconds, cosine-interpolated."""
    x = t / period
    i = math.floor(x)
    f = x - i
    w = (1.0 - math.cos(math.pi * f)) / 2.0
    return signed(key, i) * (1.0 - w) + signed(key, i + 1) * w


def drift(key: int, t: float, period: float) -> float:
    """Two octaves of `smooth`: slow wandering with some detail, in [-1, 1]."""
    return 0.7 * smooth(key, t, period) + 0.3 * smooth(key ^ 0x5A5A, t, period / 4.0)
