"""`GET /v1/snapshot`: the whole fleet in one answer (latest values, status, link, 24 h series).

The live page (api/routes/page.py) draws itself from this one request instead of one history
call per device. It runs two statements on `uplink` and two per device type, concurrently,
each grouped by device, so its cost grows with the data in the window, not with the number of
requests.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterator
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Query, Request

from api.deps import AuthDep, CatalogueDep, ReaderDep
from api.models import (
    DeviceStatus,
    FieldInfo,
    LinkHealth,
    Point,
    Snapshot,
    SnapshotDevice,
    SnapshotType,
)
from api.params import point_row
from api.problems import COMMON_ERRORS
from catalogue import DeviceType
from catalogue.times import NS, format_time
from influx import query as q
from influx import statement
from influx.client import Series
from sigfox.sequence import forward_distance, is_newer, lost_between

router = APIRouter(prefix="/v1", tags=["devices"], dependencies=[AuthDep])

# 24 buckets of an hour: a sparkline's worth of points that a wall screen can show, and 24
# numbers per field keep a 1,000-device answer near a megabyte.
EVERY_NS = 3600 * NS
BUCKETS = 24
# Link counts per 6 h: loss from each bucket's first and last seq equals the per-device fold
# while a device sends fewer than 4096 uplinks (the seq wrap) in 6 h, one per 5 s (a Sigfox
# device sends 140 a day), in order: a reordering inside one bucket can hide a gap there.
# Fewer, longer buckets than the series: InfluxDB's time here goes mostly into the rows it
# writes out (measured with bench/page_bench.py).
LINK_EVERY_NS = 6 * 3600 * NS
SeriesMode = Literal["all", "first", "none"]
# Means are rounded to this many decimals: every catalogue scale is 0.01 or coarser.
DECIMALS = 2

Numeric = dict[str, tuple[str, ...]]  # per type name, the fields that get a series
Latest = dict[str, dict[str, Any]]  # per device, its newest decoded point
Curves = dict[str, dict[str, list[float | None]]]  # per device and field, the bucket means


@router.get("/snapshot", response_model=Snapshot, responses=COMMON_ERRORS)
async def snapshot(
    reader: ReaderDep,
    catalogue: CatalogueDep,
    request: Request,
    series: Annotated[
        SeriesMode,
        Query(
            description="Which numeric fields get a 24 h series: `all` of them, the `first` of "
            "each type (what the live page draws; a third of the work), or `none`"
        ),
    ] = "all",
) -> Snapshot:
    """Every device with its type, newest values, status (when this API computes it), link
    health (stations, RSSI, loss over the last 24 h) and a coarse 24 h series per numeric
    field, in a few queries for the whole fleet."""
    now_ns = time.time_ns()
    end_ns = (now_ns // EVERY_NS + 1) * EVERY_NS  # InfluxDB aligns buckets on the epoch
    start_ns = end_ns - BUCKETS * EVERY_NS
    types = list(catalogue)
    numeric = {t.name: _numeric_fields(t, series) for t in types}
    queries = _queries(types, numeric, start_ns, end_ns)
    answers = iter(await asyncio.gather(*(reader.query(query) for query in queries)))
    (last_uplinks,) = next(answers)
    (links,) = next(answers)
    latest, curves = _per_type(answers, types, numeric, start_ns)
    devices = _devices(
        last_uplinks,
        link_rows={_device(s): s.values for s in links},
        latest=latest,
        curves=curves,
        numeric=numeric,
        statuses=_statuses(request),
    )
    return Snapshot(
        time=format_time(now_ns // NS * NS),
        start=format_time(start_ns),
        every=f"{EVERY_NS // (3600 * NS)}h",
        buckets=BUCKETS,
        types=[
            SnapshotType(
                name=t.name,
                description=t.description,
                fields={n: FieldInfo(unit=f.unit) for n, f in t.fields.items()},
                series_fields=list(numeric[t.name]),
            )
            for t in types
        ],
        devices=devices,
    )


def _queries(
    types: list[DeviceType], numeric: Numeric, start_ns: int, end_ns: int
) -> list[statement.Query]:
    """Two statements on `uplink`, then per type its latest points and (if any) its series."""
    queries = [q.snapshot_last_uplinks(), q.snapshot_links(start_ns, end_ns, LINK_EVERY_NS)]
    for t in types:
        queries.append(q.snapshot_latest(t))
        if numeric[t.name]:
            queries.append(q.snapshot_series(t, numeric[t.name], start_ns, end_ns, EVERY_NS))
    return queries


def _per_type(
    answers: Iterator[list[list[Series]]], types: list[DeviceType], numeric: Numeric, start_ns: int
) -> tuple[Latest, Curves]:
    """Each device's latest point and series, from the answers in `_queries`' order."""
    latest: Latest = {}
    curves: Curves = {}
    for t in types:
        (rows,) = next(answers)
        floats = t.float_fields
        for s in rows:
            if s.values:
                latest[_device(s)] = point_row(s.rows()[0], floats)
        if numeric[t.name]:
            (buckets,) = next(answers)
            for s in buckets:
                curves[_device(s)] = _series(s, numeric[t.name], start_ns)
    return latest, curves


def _devices(
    last_uplinks: list[Series],
    *,
    link_rows: dict[str, list[list[Any]]],
    latest: Latest,
    curves: Curves,
    numeric: Numeric,
    statuses: dict[str, DeviceStatus] | None,
) -> list[SnapshotDevice]:
    """One entry per device with a stored message, by type then id."""
    devices = []
    for s in last_uplinks:
        if not s.values:
            continue
        device, type_name = _device(s), s.tags.get("type", "")
        row = dict(zip(s.columns, s.values[0], strict=True))
        fields = numeric.get(type_name, ())
        devices.append(
            SnapshotDevice(
                device=device,
                type=type_name,
                last_seen=format_time(row["time"]),
                last_seq=row.get("seq"),
                latest=Point(**latest[device]) if device in latest else None,
                status=statuses.get(device) if statuses is not None else None,
                link=_link(row, link_rows.get(device, [])),
                series=curves.get(device) or {f: [None] * BUCKETS for f in fields},
            )
        )
    devices.sort(key=lambda d: (d.type, d.device))
    return devices


def _numeric_fields(dtype: DeviceType, mode: SeriesMode = "all") -> tuple[str, ...]:
    names = tuple(n for n, f in dtype.fields.items() if f.storage in ("integer", "float"))
    if mode == "none":
        return ()
    return names[:1] if mode == "first" else names


def _device(series: Series) -> str:
    return series.tags.get("device", "")


def _series(s: Series, fields: tuple[str, ...], start_ns: int) -> dict[str, list[float | None]]:
    out: dict[str, list[float | None]] = {f: [None] * BUCKETS for f in fields}
    index = {f: s.columns.index(f) for f in fields}
    for row in s.values:
        slot = (int(row[0]) - start_ns) // EVERY_NS
        if 0 <= slot < BUCKETS:
            for f, i in index.items():
                value = row[i]
                out[f][slot] = None if value is None else round(float(value), DECIMALS)
    return out


def _link(newest: dict[str, Any], buckets: list[list[Any]]) -> LinkHealth:
    """The newest message's figures, and messages and loss over the window's buckets.

    Columns of a bucket: time, messages, first_seq, last_seq.
    """
    messages = lost = 0
    prev_last: int | None = None
    for _, held, first, last in buckets:
        if not held:
            continue
        count = int(held)
        messages += count
        # In a bucket: the seqs it spans less those it holds. A bucket whose last copy by time
        # is an older seq (a reordering) spans "backwards": no loss counted there.
        if is_newer(int(first), int(last)):
            lost += max(0, forward_distance(int(first), int(last)) + 1 - count)
        if prev_last is not None:
            lost += lost_between(prev_last, int(first))
        prev_last = int(last)
    return LinkHealth(
        stations=newest.get("stations"),
        station=newest.get("station"),
        rssi=newest.get("rssi"),
        snr=newest.get("snr"),
        messages=messages,
        lost=lost,
        loss=round(lost / (messages + lost), 4) if messages else None,
    )


def _statuses(request: Request) -> dict[str, DeviceStatus] | None:
    """Each device's status from the status engine (DESIGN 10), when this API runs one."""
    engine = getattr(request.app.state, "status", None)
    if engine is None:
        return None
    # The engine's snapshot holds exactly DeviceStatus's keys, times already RFC 3339.
    return {
        device: DeviceStatus.model_validate(status) for device, status in engine.snapshot().items()
    }
