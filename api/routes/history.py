"""`GET /v1/devices/{device}/history` and `/messages`: decoded values and raw uplinks, paged."""

from __future__ import annotations

import csv
import io
import time
from typing import Annotated, Any

from fastapi import APIRouter, Header, Query, Request
from fastapi.responses import JSONResponse, Response

from api import typememo
from api.deps import AuthDep, CatalogueDep, DeviceDep, ReaderDep
from api.models import History, Messages
from api.paging import page
from api.params import (
    Window,
    decode_cursor,
    fingerprint,
    parse_duration,
    parse_fields,
    point_row,
    resolve_window,
)
from api.problems import COMMON_ERRORS, NOT_FOUND, bad_parameter
from catalogue import DeviceType
from catalogue.times import format_time
from influx import query as q
from influx.query import MESSAGE_FIELDS, Aggregate, Order

router = APIRouter(prefix="/v1", tags=["devices"], dependencies=[AuthDep])

MAX_LIMIT = 10_000  # DESIGN 4: at most 10000 points a page
CSV_MEDIA_TYPE = "text/csv"
NEXT_HEADER = "X-Next-Cursor"  # the CSV body has no room for the cursor
# InfluxDB refuses these on string and boolean fields; count, first and last take any type.
NUMERIC_AGGREGATES = frozenset({"mean", "min", "max", "sum", "median"})

Start = Annotated[
    str | None,
    Query(
        description="Inclusive start: RFC 3339 or epoch seconds (default: 24 h before end)",
        max_length=64,
    ),
]
End = Annotated[
    str | None,
    Query(description="Exclusive end: RFC 3339 or epoch seconds (default: now)", max_length=64),
]
Limit = Annotated[int, Query(ge=1, le=MAX_LIMIT, description="Rows per page")]
OrderParam = Annotated[Order, Query(description="Time order")]
Cursor = Annotated[str | None, Query(description="The `next` of the previous page", max_length=512)]
Fields = Annotated[
    str | None,
    Query(description="Comma list of the type's fields (default: all)", max_length=2048),
]
Every = Annotated[
    str | None,
    Query(description="Bucket width, e.g. 30s, 5m, 1h, 1d (absent: raw points)", max_length=32),
]
Agg = Annotated[
    Aggregate | None, Query(description="Aggregate per bucket (default mean); needs `every`")
]
Accept = Annotated[str | None, Header(include_in_schema=False)]

_CSV_DOC = {
    "description": "Rows as JSON, or as CSV with a header row for `Accept: text/csv` "
    "(the next cursor then comes in the `X-Next-Cursor` header)",
    "content": {CSV_MEDIA_TYPE: {"schema": {"type": "string"}}},
}


def _window(asked: Window, cursor: str | None, fp: str) -> Window:
    # start/end were checked even beside a cursor, so a bad one is reported, not ignored.
    return decode_cursor(cursor, fp) if cursor is not None else asked


@router.get(
    "/devices/{device}/history",
    response_model=History,
    responses=COMMON_ERRORS | NOT_FOUND | {200: _CSV_DOC},
)
async def history(
    *,
    device: DeviceDep,
    reader: ReaderDep,
    catalogue: CatalogueDep,
    request: Request,
    start: Start = None,
    end: End = None,
    fields: Fields = None,
    every: Every = None,
    agg: Agg = None,
    limit: Limit = 1000,
    order: OrderParam = "asc",
    cursor: Cursor = None,
    accept: Accept = None,
) -> Response:
    """Decoded values over [start, end): raw points, or one aggregate per `every` bucket."""
    every_ns = parse_duration(every) if every is not None else None
    if agg is not None and every_ns is None:
        raise bad_parameter("agg", "agg needs every (raw points are not aggregated)")
    aggregate: Aggregate = agg or "mean"
    asked = resolve_window(start, end, time.time_ns())
    type_name = await typememo.device_type(reader, request.app.state.type_memo, device)
    if type_name not in catalogue:
        raise bad_parameter("device", f"device type {type_name!r} is not in the catalogue")
    dtype = catalogue[type_name]
    names = _fields(fields, dtype, every_ns, aggregate)
    fp = fingerprint("history", device, names, every_ns, aggregate, order, start, end)
    window = _window(asked, cursor, fp)
    query = q.history(
        dtype,
        device,
        fields=names,
        start_ns=window.start,
        end_ns=window.end,
        order=order,
        limit=limit + 1,
        every_ns=every_ns,
        agg=aggregate,
    )
    (series,) = await reader.query(query)
    rows = [r for s in series for r in s.rows()]
    kept, next_cursor = page(
        rows, limit, window=window, order=order, step_ns=every_ns or 1, fingerprint=fp
    )
    if _wants_csv(accept):
        return _csv(["time", *names], kept, next_cursor)
    counted = every_ns is not None and aggregate == "count"
    return JSONResponse(_history_body(device, dtype, names, kept, next_cursor, counted=counted))


def _fields(
    asked: str | None, dtype: DeviceType, every_ns: int | None, aggregate: Aggregate
) -> tuple[str, ...]:
    """The fields asked for, each one the aggregate can take."""
    names = parse_fields(asked, dtype)
    if every_ns is not None and aggregate in NUMERIC_AGGREGATES:
        text = [n for n in names if dtype.fields[n].storage in ("string", "boolean")]
        if text:
            raise bad_parameter(
                "agg", f"{aggregate} needs numbers; {text[0]} is not (use count, first or last)"
            )
    return names


def _history_body(
    device: str,
    dtype: DeviceType,
    names: tuple[str, ...],
    kept: list[dict[str, Any]],
    next_cursor: str | None,
    *,
    counted: bool,
) -> dict[str, Any]:
    """The JSON page of `history`.

    A count per bucket (`counted`) is an integer whatever the field; other values of a float
    field are floats.
    """
    floats = () if counted else dtype.float_fields  # those not asked for are not in a row
    return {
        "device": device,
        "type": dtype.name,
        "fields": {n: {"unit": dtype.fields[n].unit} for n in names},
        "points": [point_row(r, floats) for r in kept],
        "next": next_cursor,
    }


@router.get(
    "/devices/{device}/messages",
    response_model=Messages,
    responses=COMMON_ERRORS | NOT_FOUND | {200: _CSV_DOC},
)
async def messages(
    *,
    device: DeviceDep,
    reader: ReaderDep,
    request: Request,
    start: Start = None,
    end: End = None,
    limit: Limit = 1000,
    order: OrderParam = "asc",
    cursor: Cursor = None,
    accept: Accept = None,
) -> Response:
    """Raw uplinks as stored (copies merged): time, seq, payload hex, stations, best station."""
    asked = resolve_window(start, end, time.time_ns())
    await typememo.device_type(reader, request.app.state.type_memo, device)
    fp = fingerprint("messages", device, order, start, end)
    window = _window(asked, cursor, fp)
    (series,) = await reader.query(q.messages(device, window.start, window.end, order, limit + 1))
    rows = [r for s in series for r in s.rows()]
    kept, next_cursor = page(rows, limit, window=window, order=order, step_ns=1, fingerprint=fp)
    if _wants_csv(accept):
        return _csv(["time", *MESSAGE_FIELDS], kept, next_cursor)
    return JSONResponse(
        {
            "device": device,
            "messages": [point_row(r, ("rssi", "snr")) for r in kept],
            "next": next_cursor,
        }
    )


def _wants_csv(accept: str | None) -> bool:
    return accept is not None and CSV_MEDIA_TYPE in accept.lower()


def _csv(header: list[str], rows: list[dict[str, Any]], next_cursor: str | None) -> Response:
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(header)
    for row in rows:
        writer.writerow(
            [format_time(row["time"])] + ["" if row.get(n) is None else row[n] for n in header[1:]]
        )
    headers = {NEXT_HEADER: next_cursor} if next_cursor else {}
    return Response(out.getvalue(), media_type=f"{CSV_MEDIA_TYPE}; charset=utf-8", headers=headers)
