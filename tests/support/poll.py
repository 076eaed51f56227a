"""Polling with a deadline, the one way tests wait: never a fixed sleep."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Literal, TypeVar

T = TypeVar("T")


class WaitTimeout(AssertionError, TimeoutError):
    """A condition not met in time: a failed test (AssertionError), and a `TimeoutError` that a
    scenario catches to report a figure instead of failing at once."""


def wait_for(
    probe: Callable[[], T | Literal[False] | None],
    timeout: float = 30.0,
    what: str = "condition",
    step: float = 0.05,
) -> T:
    """Poll `probe` every `step` s until it returns something truthy, and return that."""
    deadline = time.monotonic() + timeout
    while True:
        value = probe()
        if value:
            return value
        if time.monotonic() > deadline:
            raise WaitTimeout(f"timed out waiting for {what} ({timeout:.0f} s); last {value!r}")
        time.sleep(step)


def seconds_until(
    probe: Callable[[], object], timeout: float, what: str, step: float = 0.1
) -> float:
    """`wait_for`, returning the seconds it took: for scenarios that report a recovery time."""
    t0 = time.monotonic()
    wait_for(lambda: bool(probe()), timeout, what, step)
    return time.monotonic() - t0
