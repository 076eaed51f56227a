"""The one retry delay: capped exponential backoff with full jitter, for every retry loop.

Full jitter (a delay drawn from 0 to the exponential bound) spreads the retries of many clients
that lost the same server at the same moment, so they do not come back in step.
"""

from __future__ import annotations

import random

# Jitter from a generator of its own: background retries never touch the global `random`
# state that simulators and tests seed (Hypothesis flags strategies whose draws it changes).
_JITTER = random.Random()  # noqa: S311  # jitter, not crypto

BASE = 0.5  # s: the first retry comes within half a second, so a blip costs little
CAP = 30.0  # s: a server away for long is still asked twice a minute
HINT_CAP_FACTOR = 4  # a server's Retry-After is followed up to 4 caps, never longer


def backoff(attempt: int, base: float = BASE, cap: float = CAP, hint: float | None = None) -> float:
    """Seconds to wait before retry `attempt` (0 for the first); a `hint` (Retry-After) wins
    when it asks for longer, up to HINT_CAP_FACTOR times `cap`."""
    delay = _JITTER.uniform(0, min(cap, base * 2**attempt))
    return max(delay, min(hint, cap * HINT_CAP_FACTOR)) if hint is not None else delay
