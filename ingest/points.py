"""Accepted and rejected uplinks as line-protocol points, laid out as `influx.schema` says."""

from __future__ import annotations

from catalogue.codec import Value
from influx.lineprotocol import FieldValue, encode_fields, encode_point, printable, series, text_of
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
    """The decoded `<type>` point and the raw `uplink` point of one (merged) transmission."""
    up = acc.uplink
    ts = up.time * NS
    best = state.best
    link = _link(state, best, up.seqNumber)
    values: dict[str, Value] = acc.decoded.values
    raw: dict[str, FieldValue] = {
        "data": up.data,
        "station_ids": state.station_ids,
        "out_of_range": len(acc.decoded.out_of_range),
    }
    if best.station != UNKNOWN_STATION:  # no station heard of: no field, null in the API
        raw["station"] = best.station
    if up.deviceTypeId:  # DESIGN section 1: kept, not needed
        raw["device_type_id"] = printable(up.deviceTypeId)
    name, device = acc.dtype.name, acc.device
    # As encode_point would, in the same order (so the same error wins): series, then fields.
    # The link fields appear in both points: encode them once. Series texts are cached; tags
    # are given in sorted order (device < type).
    decoded_series = series(name, ((TAG_DEVICE, device),))
    if values and not values.keys() & _LINK_KEYS:  # the loader reserves these names
        values_text = encode_fields(values)
        link_text = encode_fields(link)
        decoded_text = f"{values_text},{link_text}"
    else:
        decoded_text = encode_fields({**values, **link})
        link_text = encode_fields(link)
    raw_series = series(UPLINK, ((TAG_DEVICE, device), (TAG_TYPE, name)))
    raw_text = f"{encode_fields({'data': raw.pop('data')})},{link_text},{encode_fields(raw)}"
    return [
        ((name, device, ts), f"{decoded_series} {decoded_text} {ts}"),
        ((UPLINK, device, ts), f"{raw_series} {raw_text} {ts}"),
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
