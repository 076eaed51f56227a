"""Every InfluxQL statement the backend runs: fixed templates, filled through `influx.statement`.

The statements are grouped by who runs them: the API's reads, then ingest, `telemetry redecode`
and the local servers, then the live page's fleet snapshot. Identifiers and values pass the
checks of `influx.statement` (its docstring has the safety rules, RELIABILITY.md fact 7); this
is the only module that holds InfluxQL text (tests/unit/test_influx_door.py).
"""

from __future__ import annotations

from typing import Literal

from catalogue import DeviceType
from influx.schema import EVENT, TAG_DEVICE, TAG_KIND, TAG_STATION, TAG_TYPE, UPLINK, UPLINK_COPY
from influx.statement import (
    ParamValue,
    Query,
    QueryBuildError,
    check_fields,
    database_name,
    device_value,
    ident,
    limit_value,
    nanoseconds,
    order_keyword,
    seconds,
    string_literal,
)

Aggregate = Literal["mean", "min", "max", "sum", "count", "first", "last", "median"]
AGGREGATES: tuple[Aggregate, ...] = (
    "mean",
    "min",
    "max",
    "sum",
    "count",
    "first",
    "last",
    "median",
)
Order = Literal["asc", "desc"]

MESSAGE_FIELDS = ("seq", "data", "stations", "station", "rssi", "snr")


def devices(type_name: str | None, known_types: list[str]) -> Query:
    """Every device seen: its type, newest measurement time and the seq at that time."""
    where = ""
    params: dict[str, ParamValue] = {}
    if type_name is not None:
        if type_name not in known_types:
            raise QueryBuildError(f"unknown type {type_name!r}")
        where = f" WHERE {ident(TAG_TYPE)} = $type"
        params["type"] = type_name
    return _newest_per_device(where, params)


def _since(start_ns: int | None) -> tuple[str, dict[str, ParamValue]]:
    if start_ns is None:
        return "", {}
    return " WHERE time > $start", {"start": nanoseconds(start_ns)}


def newest_uplinks(start_ns: int | None = None) -> Query:
    """Per device and type, the newest uplink's time (after `start_ns`: an incremental poll)."""
    return _newest_per_device(*_since(start_ns))


def _newest_per_device(where: str, params: dict[str, ParamValue]) -> Query:
    """Per device and type, the newest uplink (its time and seq), under `where`."""
    return Query(
        f'SELECT last("seq") AS "last_seq" FROM {ident(UPLINK)}{where} '
        f"GROUP BY {ident(TAG_DEVICE)}, {ident(TAG_TYPE)}",
        params,
    )


def latest_values(dtype: DeviceType, field_name: str, start_ns: int | None = None) -> Query:
    """Per device of a type, the newest value of one field (the battery) and its time."""
    check_fields(dtype, (field_name,))
    where, params = _since(start_ns)
    return Query(
        f"SELECT last({ident(field_name)}) AS {ident(field_name)} FROM {ident(dtype.name)}"
        f"{where} GROUP BY {ident(TAG_DEVICE)}",
        params,
    )


def recorded_events() -> Query:
    """Per device, type and kind, the newest `event` point: the status last recorded."""
    return Query(
        f'SELECT last("state") AS "state" FROM {ident(EVENT)} '
        f"GROUP BY {ident(TAG_DEVICE)}, {ident(TAG_TYPE)}, {ident(TAG_KIND)}"
    )


def first_uplink_after(device: str, start_ns: int) -> Query:
    """The time of a device's first uplink after `start_ns`: the one that ended a silence."""
    return Query(
        f'SELECT first("seq") FROM {ident(UPLINK)} WHERE {ident(TAG_DEVICE)} = $device '
        "AND time > $start",
        {"device": device_value(device), "start": nanoseconds(start_ns)},
    )


def device_type(device: str) -> Query:
    """The device's type(s) with its newest message time and seq; no series: unknown device."""
    return Query(
        f'SELECT last("seq") AS "last_seq" FROM {ident(UPLINK)} '
        f"WHERE {ident(TAG_DEVICE)} = $device GROUP BY {ident(TAG_TYPE)}",
        {"device": device_value(device)},
    )


def device_summary(device: str) -> tuple[Query, Query]:
    """Identity (type, last point) and link counts; loss comes from `seq_since`.

    Separate queries, not one multi-statement request, so they can run concurrently: InfluxDB
    runs the statements of one request one after the other.
    """
    params: dict[str, ParamValue] = {"device": device_value(device)}
    counts = Query(
        f'SELECT count("seq") AS "messages", sum("stations") AS "stations", '
        f'mean("rssi") AS "rssi", sum("out_of_range") AS "out_of_range" '
        f"FROM {ident(UPLINK)} WHERE {ident(TAG_DEVICE)} = $device",
        params,
    )
    return device_type(device), counts


def seq_since(device: str, start_ns: int) -> Query:
    """A device's sequence numbers from `start_ns` on, in time order (incremental loss)."""
    return Query(
        f'SELECT "seq" FROM {ident(UPLINK)} WHERE {ident(TAG_DEVICE)} = $device '
        "AND time >= $start ORDER BY time ASC",
        {"device": device_value(device), "start": nanoseconds(start_ns)},
    )


def latest(dtype: DeviceType, device: str) -> Query:
    """The newest decoded point of a device."""
    cols = ", ".join(ident(f) for f in dtype.fields)
    return Query(
        f"SELECT {cols} FROM {ident(dtype.name)} WHERE {ident(TAG_DEVICE)} = $device "
        "ORDER BY time DESC LIMIT 1",
        {"device": device_value(device)},
    )


def history(
    dtype: DeviceType,
    device: str,
    *,
    fields: tuple[str, ...],
    start_ns: int,
    end_ns: int,
    order: Order,
    limit: int,
    every_ns: int | None = None,
    agg: Aggregate = "mean",
) -> Query:
    """Raw points, or one `agg` per `every` bucket (empty buckets left out), in [start, end)."""
    check_fields(dtype, fields)
    if not fields:
        raise QueryBuildError("no fields")
    params: dict[str, ParamValue] = {
        "device": device_value(device),
        "start": nanoseconds(start_ns),
        "end": nanoseconds(end_ns),
    }
    if every_ns is None:
        cols = ", ".join(ident(f) for f in fields)
        group = ""
    else:
        if agg not in AGGREGATES:
            raise QueryBuildError(f"unknown aggregate {agg!r}")
        cols = ", ".join(f"{agg}({ident(f)}) AS {ident(f)}" for f in fields)
        params["every"] = {"duration": nanoseconds(every_ns)}
        # fill(none): buckets with no data are left out, never invented.
        group = " GROUP BY time($every) fill(none)"
    return Query(
        f"SELECT {cols} FROM {ident(dtype.name)} WHERE {ident(TAG_DEVICE)} = $device "
        f"AND time >= $start AND time < $end{group} "
        f"ORDER BY time {order_keyword(order)} LIMIT {limit_value(limit)}",
        params,
    )


def messages(device: str, start_ns: int, end_ns: int, order: Order, limit: int) -> Query:
    """Raw uplinks of a device in [start, end)."""
    cols = ", ".join(ident(f) for f in MESSAGE_FIELDS)
    return Query(
        f"SELECT {cols} FROM {ident(UPLINK)} WHERE {ident(TAG_DEVICE)} = $device "
        f"AND time >= $start AND time < $end "
        f"ORDER BY time {order_keyword(order)} LIMIT {limit_value(limit)}",
        {
            "device": device_value(device),
            "start": nanoseconds(start_ns),
            "end": nanoseconds(end_ns),
        },
    )


# --- ingest, `telemetry redecode` and the local servers -------------------------------------

STORED_COPY_FIELDS = ("station_ids", "station", "rssi", "snr")


def stored_copies(ranges: dict[str, tuple[int, int]]) -> Query:
    """What is stored for each device in [first, last] seconds: one statement per device."""
    cols = ", ".join(STORED_COPY_FIELDS)
    return Query(
        ";".join(
            f"SELECT {cols} FROM {UPLINK} WHERE {TAG_DEVICE} = {string_literal(device_value(d))} "
            f"AND time >= {seconds(lo)}s AND time <= {seconds(hi)}s"
            for d, (lo, hi) in ranges.items()
        )
    )


def station_copies(ranges: dict[str, tuple[int, int]]) -> Query:
    """The `uplink_copy` points of each device in [first, last] seconds, their station a
    column: one statement per device (share groups, ingest/processor.py)."""
    return Query(
        ";".join(
            f"SELECT seq, rssi, snr, {TAG_STATION} FROM {UPLINK_COPY} "
            f"WHERE {TAG_DEVICE} = {string_literal(device_value(d))} "
            f"AND time >= {seconds(lo)}s AND time <= {seconds(hi)}s"
            for d, (lo, hi) in ranges.items()
        )
    )


def newest_uplink_time() -> Query:
    """The newest `uplink` point of all (its `seq`; the time is what callers want)."""
    return Query(f"SELECT last(seq) FROM {UPLINK}")


def device_ids() -> Query:
    """Every device id that has an `uplink` point."""
    return Query(f"SHOW TAG VALUES FROM {ident(UPLINK)} WITH KEY = {ident(TAG_DEVICE)}")


def raw_uplinks(device: str, after_s: int, end_s: int, limit: int, *, inclusive: bool) -> Query:
    """A device's stored uplinks from `after_s` (included when `inclusive`) to `end_s` (excluded),
    oldest first, every field: a page of `telemetry redecode`."""
    op = ">=" if inclusive else ">"
    return Query(
        f"SELECT * FROM {ident(UPLINK)} WHERE {ident(TAG_DEVICE)} = $device "
        f"AND time {op} {seconds(after_s)}s AND time < {seconds(end_s)}s "
        f"ORDER BY time ASC LIMIT {limit_value(limit)}",
        {"device": device_value(device)},
    )


def create_database(name: str) -> Query:
    return Query(f'CREATE DATABASE "{database_name(name)}"')


def create_admin_user(user: str, password: str) -> Query:
    """The first user, with all privileges (InfluxDB allows it without credentials once)."""
    return Query(
        f"CREATE USER {ident(user)} WITH PASSWORD {string_literal(password)} WITH ALL PRIVILEGES"
    )


# --- the fleet snapshot of the live page (api/routes/snapshot.py) -------------------------------
# A handful of statements for the whole fleet, whatever its size: two on `uplink`, two per type.
# Each is GROUP BY "device", so InfluxDB answers one series per device in one response.

SNAPSHOT_LINK_FIELDS = ("seq", "stations", "station", "rssi", "snr")


def snapshot_last_uplinks() -> Query:
    """Every device's newest stored message: its type (a tag), time, seq and link figures."""
    cols = ", ".join(ident(f) for f in SNAPSHOT_LINK_FIELDS)
    return Query(
        f"SELECT {cols} FROM {ident(UPLINK)} GROUP BY {ident(TAG_DEVICE)}, {ident(TAG_TYPE)} "
        "ORDER BY time DESC LIMIT 1"
    )


def snapshot_links(start_ns: int, end_ns: int, every_ns: int) -> Query:
    """Per device and bucket of [start, end): messages, first and last seq.

    First and last seq per bucket give the loss without reading every point: a bucket holding
    fewer than 4096 uplinks (the seq wrap) cannot hide a gap.
    """
    return Query(
        'SELECT count("seq") AS "messages", first("seq") AS "first_seq", '
        'last("seq") AS "last_seq" '
        f"FROM {ident(UPLINK)} WHERE time >= $start AND time < $end "
        f"GROUP BY time($every), {ident(TAG_DEVICE)} fill(none)",
        {
            "start": nanoseconds(start_ns),
            "end": nanoseconds(end_ns),
            "every": {"duration": nanoseconds(every_ns)},
        },
    )


def snapshot_latest(dtype: DeviceType) -> Query:
    """The newest decoded point of every device of a type."""
    cols = ", ".join(ident(f) for f in dtype.fields)
    return Query(
        f"SELECT {cols} FROM {ident(dtype.name)} GROUP BY {ident(TAG_DEVICE)} "
        "ORDER BY time DESC LIMIT 1"
    )


def snapshot_series(
    dtype: DeviceType, fields: tuple[str, ...], start_ns: int, end_ns: int, every_ns: int
) -> Query:
    """The mean of each numeric field per bucket of [start, end), for every device of a type."""
    check_fields(dtype, fields)
    if not fields:
        raise QueryBuildError("no fields")
    cols = ", ".join(f"mean({ident(f)}) AS {ident(f)}" for f in fields)
    return Query(
        f"SELECT {cols} FROM {ident(dtype.name)} WHERE time >= $start AND time < $end "
        f"GROUP BY time($every), {ident(TAG_DEVICE)} fill(none)",
        {
            "start": nanoseconds(start_ns),
            "end": nanoseconds(end_ns),
            "every": {"duration": nanoseconds(every_ns)},
        },
    )
