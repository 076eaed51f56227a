"""Throttling of failed authentications per client, so API keys cannot be guessed at speed."""

from __future__ import annotations

import math
import time
from collections import OrderedDict, deque

# Clients whose failures we remember at once; the least recently failing is forgotten first,
# so a flood of distinct addresses cannot grow memory without bound.
MAX_CLIENTS = 10_000


class FailedAuthLimiter:
    """A sliding window of failures per client; past `limit`, refuse until it slides."""

    def __init__(self, limit: int, window: float = 60.0) -> None:
        self.limit = limit
        self.window = window
        self._failures: OrderedDict[str, deque[float]] = OrderedDict()

    def retry_after(self, client: str, now: float | None = None) -> int:
        """Seconds until `client` may try again; 0 when it is not throttled."""
        now = time.monotonic() if now is None else now
        failures = self._failures.get(client)
        if failures is None:
            return 0
        while failures and failures[0] <= now - self.window:
            failures.popleft()
        if len(failures) < self.limit:
            return 0
        return max(1, math.ceil(failures[0] + self.window - now))

    def record_failure(self, client: str, now: float | None = None) -> None:
        now = time.monotonic() if now is None else now
        failures = self._failures.pop(client, None) or deque(maxlen=self.limit)
        failures.append(now)
        self._failures[client] = failures
        while len(self._failures) > MAX_CLIENTS:
            self._failures.popitem(last=False)
