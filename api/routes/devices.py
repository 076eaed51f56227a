"""`GET /v1/devices` and `GET /v1/devices/{device}`: the fleet and one device's link health."""

from __future__ import annotations

import asyncio
from typing import Annotated, Any

from fastapi import APIRouter, Query, Request

from api.deps import AuthDep, CatalogueDep, DeviceDep, ReaderDep
from api.losscache import LossCache, LossMark, advance
from api.models import Device, DeviceDetail, Devices, DeviceStatus, Point
from api.params import check_type, point_row
from api.problems import COMMON_ERRORS, NOT_FOUND, bad_parameter, not_found
from api.statuscache import StatusCache
from catalogue.times import format_time
from influx import query as q
from influx.client import InfluxClient, Series
from status.rules import STATES

router = APIRouter(prefix="/v1", tags=["devices"], dependencies=[AuthDep])


@router.get("/devices", response_model=Devices, responses=COMMON_ERRORS)
async def devices(
    reader: ReaderDep,
    catalogue: CatalogueDep,
    request: Request,
    type: Annotated[  # the public parameter name of DESIGN section 4
        str | None, Query(description="Only devices of this type", max_length=64)
    ] = None,
    status: Annotated[
        str | None,
        Query(description="Only devices in this state: online, late or offline", max_length=16),
    ] = None,
) -> Devices:
    """Every device seen: its newest message's time and seq, and its status."""
    type = type or None  # `?type=` with no value lists every device, as no `type` does
    if type is not None:
        check_type(type, catalogue)
    status = status or None
    if status is not None and status not in STATES:
        raise bad_parameter("status", f"status must be one of {', '.join(STATES)}")
    cache: StatusCache = request.app.state.status
    (series,) = await reader.query(q.devices(type, catalogue.names()))
    out = []
    for s in series:
        if not s.values:
            continue
        device_id, type_name = s.tags.get("device", ""), s.tags.get("type", "")
        shown = cache.of(device_id, type_name, int(s.values[0][0]))
        if status is not None and shown["state"] != status:
            continue
        out.append(
            Device(
                device=device_id,
                type=type_name,
                last_seen=format_time(s.values[0][0]),
                last_seq=s.values[0][1],
                status=DeviceStatus(**shown),
            )
        )
    out.sort(key=lambda d: (d.type, d.device))
    return Devices(devices=out)


@router.get("/devices/{device}", response_model=DeviceDetail, responses=COMMON_ERRORS | NOT_FOUND)
async def device(
    device: DeviceDep, reader: ReaderDep, catalogue: CatalogueDep, request: Request
) -> DeviceDetail:
    """One device: newest values, link health from its stored messages, and its status."""
    memo = request.app.state.type_memo
    losses: LossCache = request.app.state.loss_cache
    mark = losses.get(device)
    queries = [*q.device_summary(device), q.seq_since(device, mark.time_ns if mark else 0)]
    known = memo.get(device)
    if known in catalogue:  # the type is known: its latest point can be read at the same time
        queries.append(q.latest(catalogue[known], device))
    answers = await asyncio.gather(*(reader.query(query) for query in queries))
    identity, counts, seqs = (a[0] for a in answers[:3])
    if not identity:
        raise not_found(f"no device {device} has sent anything", "device")
    newest = max(identity, key=_last_time)
    type_name = newest.tags.get("type", "")
    memo.remember(device, type_name)
    latest_rows = answers[3][0] if len(answers) > 3 and known == type_name else None
    if latest_rows is None and type_name in catalogue:
        (latest_rows,) = await reader.query(q.latest(catalogue[type_name], device))
    stats = _first_row(counts)
    messages = int(stats.get("messages") or 0)
    lost = await _lost(reader, losses, device, mark=mark, seqs=seqs, messages=messages)
    stations = stats.get("stations")
    latest: Point | None = None
    row = _first_row(latest_rows or [])
    if row:
        floats = catalogue[type_name].float_fields if type_name in catalogue else ()
        latest = Point(**point_row(row, floats))
    cache: StatusCache = request.app.state.status
    return DeviceDetail(
        device=device,
        type=type_name,
        last_seen=format_time(newest.values[0][0]),
        last_seq=newest.values[0][1],
        status=DeviceStatus(**cache.of(device, type_name, int(newest.values[0][0]))),
        latest=latest,
        messages=messages,
        lost=lost,
        duplicates=max(0, int(stations) - messages) if stations is not None else 0,
        rssi=stats.get("rssi"),
        out_of_range=int(stats.get("out_of_range") or 0),
    )


async def _lost(
    reader: InfluxClient,
    losses: LossCache,
    device: str,
    *,
    mark: LossMark | None,
    seqs: list[Series],
    messages: int,
) -> int:
    """Sequence loss, folded on from the device's mark; the whole history when that is stale."""
    folded = advance(mark, _seq_rows(seqs))
    if mark is not None and (folded is None or folded.count != messages):
        # points were stored before the mark (a backfill, a late uplink): fold everything again
        (everything,) = await reader.query(q.seq_since(device, 0))
        folded = advance(None, _seq_rows(everything))
    if folded is None:
        losses.forget(device)
        return 0
    if folded.count == messages:  # else an uplink landed between our queries: don't keep it
        losses.put(device, folded)
    return folded.lost


def _seq_rows(series: list[Series]) -> list[tuple[int, int]]:
    return [(int(t), int(seq)) for s in series for t, seq in s.values]


def _last_time(series: Series) -> int:
    return int(series.values[0][0]) if series.values else 0


def _first_row(series: list[Series]) -> dict[str, Any]:
    for s in series:
        rows = s.rows()
        if rows:
            return rows[0]
    return {}
