"""What is already stored for transmissions the merge cache does not know (a late copy after a
restart or an eviction, or a copy handled by another ingester of a share group).

The statements come from influx/query.py and go through influx/client.py; what stays here is
ingest's policy on the answers: a 401/403 means a write-only account (`_write_only_account`:
merge with the cache only, never ask again); any other failure, a statement error saying that
InfluxDB cannot answer now included, pauses lookups for a while (see `_query`).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterable
from typing import Any, TypeGuard

from influx import query as q
from influx.client import NO_DATABASE, InfluxClient, unavailable_statement
from influx.errors import InfluxUnavailable, ReaderError
from influx.statement import Query
from ingest.merge import UNKNOWN_STATION, Copy, Key

log = logging.getLogger(__name__)

Statement = Callable[[dict[str, tuple[int, int]]], Query]  # (first, last) s per device
Row = tuple[Key, dict[str, Any]]  # a row read, with the key it answers

DEVICES_PER_QUERY = 200  # statements per /query request: one per device
# A lookup that hangs (a stalled server) must not hold the stream for the full write timeout:
# without an answer we merge with the cache only, as when InfluxDB is down.
LOOKUP_TIMEOUT = 2.0
# After a failed lookup, merge with the cache only for this long instead of paying the timeout
# on every chunk while InfluxDB is down or stalled.
PAUSE_AFTER_FAILURE = 10.0


class StoredLookup:
    """One `/query` request (one statement per device) for a whole chunk of cache misses."""

    def __init__(self, influx: InfluxClient, *, readable: Callable[[], bool] = lambda: True):
        self.influx = influx
        # False while InfluxDB is known to lack points (the service: while batches wait in
        # the spool): "nothing stored" could then be wrong, so the lookup cannot say.
        self.readable = readable
        self.failures = 0
        self.forbidden = False  # the user may not read: never ask again
        self._paused_until = 0.0

    async def __call__(self, keys: Iterable[Key]) -> dict[Key, tuple[str, Copy]] | None:
        """What is stored for `keys`; None when InfluxDB cannot be read (failed, or paused)."""
        rows = await self._rows(keys, q.stored_copies)
        if rows is None:
            return None
        found: dict[Key, tuple[str, Copy]] = {}
        for key, row in rows:
            # No `station` stored: no copy named one, and the stored RSSI/SNR (if any) came
            # from a copy naming none; `Merger.seed` keeps it apart.
            best = Copy(row.get("station") or UNKNOWN_STATION, row.get("rssi"), row.get("snr"))
            found[key] = (row.get("station_ids") or "", best)
        return found

    async def copies(self, keys: Iterable[Key]) -> dict[Key, list[Copy]] | None:
        """Every station's copy in `uplink_copy` for `keys`, whichever member of a share group
        wrote it; None when InfluxDB cannot be read."""
        rows = await self._rows(keys, q.station_copies)
        if rows is None:
            return None
        found: dict[Key, list[Copy]] = {}
        for key, row in rows:
            if row.get("seq") == key[1] and row.get("station"):
                copy = Copy(row["station"], row.get("rssi"), row.get("snr"))
                found.setdefault(key, []).append(copy)
        return found

    async def _rows(self, keys: Iterable[Key], statement: Statement) -> list[Row] | None:
        """The rows `statement` reads for `keys`, each with its key: one request per
        `DEVICES_PER_QUERY` devices; None when InfluxDB cannot be read (failed, or paused), []
        for a write-only account."""
        if not self.readable():
            return None
        if self.forbidden:
            return []
        if time.monotonic() < self._paused_until:
            return None
        by_device: dict[str, list[Key]] = {}
        for key in keys:
            by_device.setdefault(key[0], []).append(key)
        found: list[Row] = []
        devices = sorted(by_device)
        for i in range(0, len(devices), DEVICES_PER_QUERY):
            part = {d: by_device[d] for d in devices[i : i + DEVICES_PER_QUERY]}
            got = await self._query(part, statement)
            if got is None:
                return None
            found += got
        return found

    async def _query(
        self, by_device: dict[str, list[Key]], statement: Statement
    ) -> list[Row] | None:
        ranges = {
            d: (min(k[2] for k in keys), max(k[2] for k in keys)) for d, keys in by_device.items()
        }
        try:
            results = await self.influx.results(
                statement(ranges), epoch="s", request_timeout=LOOKUP_TIMEOUT
            )
        except ReaderError as exc:
            return self._failed(exc)
        # A statement InfluxDB answered with an error saying it cannot answer now (it says
        # "query engine shutdown" to a query that reaches it as it stops) was not read: its
        # device's copies may well be stored, so this is a failed lookup. A missing database
        # surely holds nothing yet (the sink creates it). Any other error is a refusal that
        # would come back every time (a `max-select-series` limit, a bug of ours): holding
        # copies for it would fill the broker's in-flight window and stall intake, so it is
        # logged and its device merges with the cache alone, as with a write-only account.
        errors = [r.error for r in results if r.error and not r.error.startswith(NO_DATABASE)]
        unavailable = next((e for e in errors if unavailable_statement(e)), None)
        if unavailable is not None:
            return self._failed(InfluxUnavailable(f"InfluxDB: {unavailable}"))
        if errors:
            log.error(
                "InfluxDB refused a lookup of stored copies: %r; merged with the cache alone",
                errors[0],
            )
        found: list[Row] = []
        for keys, result in zip(by_device.values(), results, strict=False):
            wanted: dict[int, list[Key]] = {}
            for k in keys:
                wanted.setdefault(k[2], []).append(k)
            for series in result.series:
                for row in series.rows():
                    found += [(key, row) for key in wanted.get(row["time"], ())]
        return found

    def _failed(self, exc: ReaderError) -> list[Row] | None:
        """A lookup that did not read: a write-only account never asks again (merge with the
        cache only), any other failure pauses lookups (None: the caller holds what must wait)."""
        if _write_only_account(exc):
            # A write-only user (least privilege): reading will never work, so merge with the
            # cache only; a copy arriving after a restart may then lower `stations`.
            if not self.forbidden:
                log.warning(
                    "no right to read %r (%d): late copies are merged with the cache only; "
                    "grant READ to the ingester's user to merge them with what is stored",
                    self.influx.database,
                    exc.status,
                )
            self.forbidden = True
            return []
        self.failures += 1
        self._paused_until = time.monotonic() + PAUSE_AFTER_FAILURE
        log.warning(
            "cannot read stored copies (%s); copies that may be stored wait for %.0f s",
            exc,
            PAUSE_AFTER_FAILURE,
        )
        return None


def _write_only_account(exc: ReaderError) -> TypeGuard[InfluxUnavailable]:
    """Ingest's policy: a 401/403 on a read means the account may write but never read."""
    return isinstance(exc, InfluxUnavailable) and exc.status in (401, 403)


async def newest_stored_time(influx: InfluxClient) -> int | None:
    """The newest `uplink` time stored (-1 if none), or None if InfluxDB cannot say now.

    No copy of a transmission stamped later than this can have been written before our start,
    so the cache alone is right for those (one ingester).
    """
    try:
        results = await influx.results(q.newest_uplink_time(), epoch="s")
    except ReaderError:
        return None
    if not results or results[0].error is not None:
        return None
    series = results[0].series
    return int(series[0].values[0][0]) if series else -1
