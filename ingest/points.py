"""Accepted and rejected uplinks as line-protocol points, laid out as `influx.schema` says."""

from __future__ import annotations

from catalogue.codec import Value
from influx.lineprotocol import (
    FieldValue,
    encode_fields,
    encode_point,
    field_text,
    printable,
    series,
    text_of,
)
from influx.schema import (
    BODY_KEEP_BYTES,
    REJECTED,
    TAG_DEVICE,
    TAG_REASON,
    TAG_TYPE,
    UPLINK,
)
from ingest.merge import UNKNOWN_STATION, Copy, Transmission
from ingest.validate import Accepted

NS = 1_000_000_000
DETAIL_KEEP_CHARS = 512  # enough for any pydantic or InfluxDB message we produce or relay

# A point's identity in a batch: measurement, device, time (ns). Two lines with one key in a
# batch would be the same point, so only the newest is written.
PointKey = tuple[str, str, int]


_LINK_KEYS = frozenset({"seq", "stations", "rssi", "snr"})


def _link(state: Transmission, best: Copy, seq: int) -> dict[str, FieldValue]:
    fields: dict[str, FieldValue] = {"seq": seq, "stations": len(state.stations)}
    if best.rssi is not None:
        fields["rssi"] = float(best.rssi)
    if best.snr is not None:
        fields["snr"] = float(best.snr)
    return fields


def accepted_points(acc: Accepted, state: Transmission) -> list[tuple[PointKey, str]]:
    """The decoded `<type>` point and the raw `uplink` point of one (merged) transmission.

    Fields in this order: decoded point `<values>`, seq, stations, [rssi], [snr]; uplink point
    data, seq, stations, [rssi], [snr], station_ids, out_of_range, [station], [device_type_id].
    Built field by field (no intermediate dicts; the link fields encoded once for both points)
    and checked in that order, as `encode_point` would, so the same error wins.
    """
    up = acc.uplink
    ts = up.time * NS
    best = state.best
    values: dict[str, Value] = acc.decoded.values
    name, device = acc.dtype.name, acc.device
    # Series texts are cached; tags are given in sorted order (device < type).
    decoded_series = series(name, ((TAG_DEVICE, device),))
    if not values or values.keys() & _LINK_KEYS:  # the loader reserves these names
        decoded_text = encode_fields({**values, **_link(state, best, up.seqNumber)})
        values_text = None
    else:
        values_text = encode_fields(values)
    link = [field_text("seq", up.seqNumber), field_text("stations", len(state.stations))]
    if best.rssi is not None:
        link.append(field_text("rssi", float(best.rssi)))
    if best.snr is not None:
        link.append(field_text("snr", float(best.snr)))
    link_text = ",".join(link)
    if values_text is not None:
        decoded_text = f"{values_text},{link_text}"
    raw_series = series(UPLINK, ((TAG_DEVICE, device), (TAG_TYPE, name)))
    raw = [
        field_text("data", up.data),
        link_text,
        field_text("station_ids", state.station_ids),
        field_text("out_of_range", len(acc.decoded.out_of_range)),
    ]
    if best.station != UNKNOWN_STATION:  # no station heard of: no field, null in the API
        raw.append(field_text("station", best.station))
    if up.deviceTypeId:  # DESIGN section 1: kept, not needed
        raw.append(field_text("device_type_id", printable(up.deviceTypeId)))
    return [
        ((name, device, ts), f"{decoded_series} {decoded_text} {ts}"),
        ((UPLINK, device, ts), f"{raw_series} {','.join(raw)} {ts}"),
    ]


def rejected_point(  # noqa: PLR0917  # the fields of one record
    reason: str, device: str | None, topic: str, body: bytes, detail: str, received_ns: int
) -> tuple[PointKey, str]:
    """A kept copy of a refused message, at its receipt time in ns (unique per ingester)."""
    tags = {TAG_REASON: reason} | ({TAG_DEVICE: device} if device else {})
    fields: dict[str, FieldValue] = {
        "topic": printable(topic[:BODY_KEEP_BYTES]),
        "body": text_of(body[:BODY_KEEP_BYTES]),
        "detail": printable(detail[:DETAIL_KEEP_CHARS]),
    }
    return (REJECTED, device or "", received_ns), encode_point(REJECTED, tags, fields, received_ns)
