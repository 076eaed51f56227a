"""What is already stored for transmissions the merge cache does not know (a late copy after a
restart or an eviction, or a copy handled by another ingester of a share group)."""

from __future__ import annotations

import logging
import time
from collections.abc import Iterable

import httpx

from influx.schema import UPLINK
from ingest.merge import UNKNOWN_STATION, Copy, Key

log = logging.getLogger(__name__)

DEVICES_PER_QUERY = 200  # statements per /query request: one per device
# A lookup that hangs (a stalled server) must not hold the stream for the full write timeout:
# without an answer we merge with the cache only, as when InfluxDB is down.
LOOKUP_TIMEOUT = 2.0
# After a failed lookup, merge with the cache only for this long instead of paying the timeout
# on every chunk while InfluxDB is down or stalled.
PAUSE_AFTER_FAILURE = 10.0


class StoredLookup:
    """One `/query` request (one statement per device) for a whole chunk of cache misses."""

    def __init__(self, client: httpx.AsyncClient, database: str) -> None:
        self.client = client
        self.database = database
        self.failures = 0
        self.forbidden = False  # the user may not read: never ask again
        self._paused_until = 0.0

    async def __call__(self, keys: Iterable[Key]) -> dict[Key, tuple[str, Copy]] | None:
        """What is stored for `keys`; None when InfluxDB cannot be read (failed, or paused)."""
        if self.forbidden:
            return {}
        if time.monotonic() < self._paused_until:
            return None
        by_device: dict[str, list[Key]] = {}
        for key in keys:
            by_device.setdefault(key[0], []).append(key)
        found: dict[Key, tuple[str, Copy]] = {}
        devices = sorted(by_device)
        for i in range(0, len(devices), DEVICES_PER_QUERY):
            part = devices[i : i + DEVICES_PER_QUERY]
            got = await self._query({d: by_device[d] for d in part})
            if got is None:
                return None
            found |= got
        return found

    async def _query(self, by_device: dict[str, list[Key]]) -> dict[Key, tuple[str, Copy]] | None:
        # Device ids passed `sigfox.topics` validation (1-8 hex digits): safe inside quotes.
        statements = []
        for device, keys in by_device.items():
            lo, hi = min(k[2] for k in keys), max(k[2] for k in keys)
            statements.append(
                f"SELECT station_ids, station, rssi, snr FROM {UPLINK} "  # noqa: S608  # hex id, ints
                f"WHERE device = '{device}' AND time >= {lo}s AND time <= {hi}s"
            )
        try:
            r = await self.client.post(
                "/query",
                data={"q": ";".join(statements)},
                params={"db": self.database, "epoch": "s"},
                timeout=LOOKUP_TIMEOUT,
            )
            if r.status_code in (401, 403):
                # A write-only user (least privilege): reading will never work, so merge with
                # the cache only; a copy arriving after a restart may then lower `stations`.
                if not self.forbidden:
                    log.warning(
                        "no right to read %r (%d): late copies are merged with the cache only; "
                        "grant READ to the ingester's user to merge them with what is stored",
                        self.database,
                        r.status_code,
                    )
                self.forbidden = True
                return {}
            r.raise_for_status()
            results = r.json()["results"]
        except (httpx.HTTPError, ValueError, KeyError) as exc:
            self.failures += 1
            self._paused_until = time.monotonic() + PAUSE_AFTER_FAILURE
            log.warning(
                "cannot read stored copies (%s); copies that may be stored wait for %.0f s",
                type(exc).__name__,
                PAUSE_AFTER_FAILURE,
            )
            return None
        found: dict[Key, tuple[str, Copy]] = {}
        for keys, result in zip(by_device.values(), results, strict=False):
            wanted = {k[2]: k for k in keys}
            for series in result.get("series", []):
                cols = series["columns"]
                for values in series["values"]:
                    row = dict(zip(cols, values, strict=True))
                    key = wanted.get(row["time"])
                    if key is None:
                        continue
                    # No `station` stored: no copy named one, and the stored RSSI/SNR (if
                    # any) came from a copy naming none; `Merger.seed` keeps it apart.
                    station = row.get("station") or UNKNOWN_STATION
                    best = Copy(station, row.get("rssi"), row.get("snr"))
                    found[key] = (row.get("station_ids") or "", best)
        return found


async def newest_stored_time(client: httpx.AsyncClient, database: str) -> int | None:
    """The newest `uplink` time stored (-1 if none), or None if InfluxDB cannot say now.

    No copy of a transmission stamped later than this can have been written before our start,
    so the cache alone is right for those (one ingester).
    """
    try:
        r = await client.post(
            "/query",
            data={"q": f"SELECT last(seq) FROM {UPLINK}"},  # noqa: S608  # constant
            params={"db": database, "epoch": "s"},
        )
        r.raise_for_status()
        result = r.json()["results"][0]
    except (httpx.HTTPError, ValueError, KeyError, IndexError):
        return None
    if "error" in result:
        return None
    series = result.get("series") or []
    return int(series[0]["values"][0][0]) if series else -1
