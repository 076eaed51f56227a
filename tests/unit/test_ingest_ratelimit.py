"""ingest/ratelimit.py: the per-device token bucket (burst, then the hourly rate); bounded."""

from __future__ import annotations

from ingest.ratelimit import RateLimiter


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
