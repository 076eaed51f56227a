"""Accepted and rejected uplinks as line-protocol points, laid out as `influx.schema` says."""

from __future__ import annotations

from catalogue.codec import Value
from catalogue.times import NS
from influx.lineprotocol import (
    FieldValue,
    encode_fields,
    encode_point,
    float_text,
    printable,
    series,
    string_text,
    text_of,
)
from influx.schema import (
    BODY_KEEP_BYTES,
    REJECTED,
    TAG_DEVICE,
    TAG_REASON,
    TAG_STATION,
    TAG_TYPE,
    UPLINK,
    UPLINK_COPY,
)
from ingest.merge import UNKNOWN_STATION, Copy, Transmission
from ingest.validate import Accepted

DETAIL_KEEP_CHARS = 512  # enough for any pydantic or InfluxDB message we produce or relay

# A point's identity in a batch: measurement, device, time (ns). Two lines with one key in a
# batch would be the same point, so only the newest is written.
PointKey = tuple[str, str, int]


def values_fields(values: dict[str, Value]) -> str:
    """Decoded values as line-protocol fields ("" for none): made once per uplink, for its
    point (`accepted_points`) and its `up` event (`ingest.eventbodies.up_parts`).

    Raises `LineProtocolError` as `encode_fields` does (a char field with a control character).
    """
    return encode_fields(values) if values else ""


def accepted_points(
    acc: Accepted, state: Transmission, values_text: str
) -> list[tuple[PointKey, str]]:
    """The decoded `<type>` point and the raw `uplink` point of one (merged) transmission.

    `values_text`: the decoded values as fields, `values_fields(acc.decoded.values)`.

    Fields in this order: decoded point `<values>`, seq, stations, [rssi], [snr]; uplink point
    data, seq, stations, [rssi], [snr], station_ids, out_of_range, [station], [device_type_id].
    Written straight into two f-strings (this runs for every uplink; tests/unit/
    test_ingest_points.py checks it against `encode_point` of the same fields): integers need
    no escaping, floats go through `float_text` (finite or refused), text through `string_text`
    (escaped, control characters refused) except `data`, which the envelope's pattern limits to
    hex digits.
    """
    up = acc.uplink
    ts = up.time * NS
    best = state.best
    name, device = acc.dtype.name, acc.device
    # `stations` counts named stations; 1 when none is named (`Transmission.count`, inlined)
    link = f"seq={up.seqNumber}i,stations={len(state.stations) or 1}i"
    if best.rssi is not None:
        link = f"{link},rssi={float_text('rssi', best.rssi)}"
    if best.snr is not None:
        link = f"{link},snr={float_text('snr', best.snr)}"
    # Series texts are cached; tags are given in sorted order (device < type).
    decoded_series = series(name, ((TAG_DEVICE, device),))
    # The loader reserves the link fields' names, so no decoded value can clash with them.
    decoded_text = f"{values_text},{link}" if values_text else link
    raw = (
        f'{series(UPLINK, ((TAG_DEVICE, device), (TAG_TYPE, name)))} data="{up.data}",{link},'
        f"station_ids={string_text('station_ids', state.station_ids)},"
        f"out_of_range={len(acc.decoded.out_of_range)}i"
    )
    if best.station != UNKNOWN_STATION:  # no station heard of: no field, null in the API
        raw = f"{raw},station={string_text('station', best.station)}"
    if up.deviceTypeId:  # DESIGN section 1: kept, not needed
        raw = f"{raw},device_type_id={string_text('device_type_id', printable(up.deviceTypeId))}"
    return [
        ((name, device, ts), f"{decoded_series} {decoded_text} {ts}"),
        ((UPLINK, device, ts), f"{raw} {ts}"),
    ]


def copy_points(
    device: str, seq: int, time_s: int, copies: list[Copy]
) -> list[tuple[PointKey, str]]:
    """An `uplink_copy` point for each named station's copy (share groups): one series per
    device and station, so that the copies several ingesters write add up. Keyed by
    `<device>/<station>` in a batch, where `<type>` and `uplink` points are keyed by device."""
    ts = time_s * NS
    out = []
    for c in copies:
        if c.station == UNKNOWN_STATION:
            continue
        fields = f"seq={seq}i"
        if c.rssi is not None:
            fields = f"{fields},rssi={float_text('rssi', c.rssi)}"
        if c.snr is not None:
            fields = f"{fields},snr={float_text('snr', c.snr)}"
        tags = ((TAG_DEVICE, device), (TAG_STATION, c.station))
        out.append(
            (
                (UPLINK_COPY, f"{device}/{c.station}", ts),
                f"{series(UPLINK_COPY, tags)} {fields} {ts}",
            )
        )
    return out


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


class RejectStamper:
    """The one place that stamps reject records, for the processor and the sink alike.

    DESIGN section 3: a reject is stored at its receipt time in ns. Two rejects of one device
    (or of no device) at the same ns would be the same point and the second would overwrite the
    first, so the stamps are made strictly increasing. One stamper per ingester, shared.
    """

    __slots__ = ("_last_ns",)

    def __init__(self) -> None:
        self._last_ns = 0

    def stamp(self, received_ns: int) -> int:
        """A unique time for a reject received at `received_ns` (later than every earlier one)."""
        ts = max(received_ns, self._last_ns + 1)
        self._last_ns = ts
        return ts

    def record(  # noqa: PLR0917  # the fields of one record
        self,
        reason: str,
        device: str | None,
        topic: str,
        body: bytes,
        detail: str,
        received_ns: int,
    ) -> tuple[int, tuple[PointKey, str]]:
        """The stamp and the `rejected` point of one refused message."""
        ts = self.stamp(received_ns)
        return ts, rejected_point(reason, device, topic, body, detail, ts)
