"""The failed-authentication limiter: a sliding window per client, bounded memory."""

from __future__ import annotations

import pytest

from api import authlimit
from api.authlimit import FailedAuthLimiter


def test_throttles_after_the_limit_until_the_window_slides() -> None:
    limiter = FailedAuthLimiter(limit=3, window=60)
    for t in (0.0, 1.0, 2.0):
        assert limiter.retry_after("a", now=t) == 0
        limiter.record_failure("a", now=t)
    assert limiter.retry_after("a", now=2.5) == 58  # the first failure leaves the window at 60
    assert limiter.retry_after("b", now=2.5) == 0  # other clients are not affected
    assert limiter.retry_after("a", now=60.0) == 0


def test_memory_is_bounded(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(authlimit, "MAX_CLIENTS", 5)
    limiter = FailedAuthLimiter(limit=2)
    for i in range(50):
        limiter.record_failure(f"10.0.0.{i}", now=0.0)
    assert len(limiter._failures) == 5
