"""Keyset paging over time: a page is `limit` rows, the cursor holds the window still to read.

Point times are unique per device and measurement (a point's identity), so "after the last time
returned" loses and repeats nothing, even while new points arrive.
"""

from __future__ import annotations

from typing import Any

from api.params import Window, encode_cursor
from influx.query import Order


def next_window(
    rows: list[dict[str, Any]], limit: int, window: Window, order: Order, step_ns: int
) -> Window | None:
    """The window after this page, or None when the rows fetched (limit + 1) show no more.

    `step_ns` is 1 for raw points, the bucket width for aggregates: the next page starts at the
    next bucket boundary, so paged buckets equal those of one big query.
    """
    if len(rows) <= limit:
        return None
    last = int(rows[limit - 1]["time"])
    if order == "asc":
        return Window(last + step_ns, window.end)
    return Window(window.start, last)


def page(
    rows: list[dict[str, Any]],
    limit: int,
    *,
    window: Window,
    order: Order,
    step_ns: int,
    fingerprint: str,
) -> tuple[list[dict[str, Any]], str | None]:
    """The rows to return and the cursor for the rest (None: nothing more)."""
    rest = next_window(rows, limit, window, order, step_ns)
    cursor = encode_cursor(fingerprint, rest) if rest is not None else None
    return rows[:limit], cursor
