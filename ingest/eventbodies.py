"""What the ingester's events say (DESIGN section 9): their topics and bodies, made fast.

Topics and bodies (times RFC 3339 UTC, as the API writes them):
- `<prefix>/<type>/<device>/up`: the merged message as stored, {"device", "type", "time",
  "seq", "stations", "station", "rssi", "snr", "values": {field: value}}; published again when
  a later copy changes `stations` or the best station;
- `<prefix>/rejected/<reason>`: {"reason", "topic", "device" (when known), "time", "detail"},
  `time` being when the message was received;
- `<prefix>/<type>/<device>/status`: made by the status watcher (`ingest.watcher`).

An `up` event is made for every stored uplink, so it is made as its PUBLISH's two halves
(`up_parts`, see `ingest.eventpackets`) from one template per type; `up_document` is the
same event spelled out slowly, and the tests hold the two to the same bytes.
"""

from __future__ import annotations

import functools
import json
import time

from catalogue import DeviceType
from catalogue.codec import Value
from influx.schema import BODY_KEEP_BYTES
from ingest.eventpackets import publish_header, topic_field
from ingest.merge import UNKNOWN_STATION, Copy
from ingest.points import DETAIL_KEEP_CHARS

_dumps = json.JSONEncoder(separators=(",", ":"), ensure_ascii=False, allow_nan=False).encode


@functools.lru_cache(maxsize=4096)
def rfc3339(seconds: int) -> str:
    """Epoch seconds as `2024-05-18T02:40:00Z` (cached: uplinks arrive in runs of one second)."""
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(seconds))


def rfc3339_ns(ns: int) -> str:
    """Nanoseconds as RFC 3339 UTC with milliseconds, for receipt times."""
    seconds, frac = divmod(ns, 1_000_000_000)
    return f"{rfc3339(seconds)[:-1]}.{frac // 1_000_000:03d}Z"


def up_parts(  # noqa: PLR0917  # the fields of one stored message
    prefix: str,
    dtype: DeviceType,
    device: str,
    time_s: int,
    seq: int,
    stations: int,
    best: Copy,
    values: dict[str, Value],
) -> tuple[bytes, bytes]:
    """The `up` event as it waits to be published: its PUBLISH's (head, tail), see
    `ingest.eventpackets`. Made for every stored uplink, so in few steps: the topic's field
    cached per device, the body one template of the type (in the usual case: every field in
    range, a station with RSSI and SNR, a type of numbers only), filled and encoded.

    Only values need JSON encoding (device, station, type and field names are hex or
    identifiers, checked at input and at catalogue load), and `str` of a finite int or float
    (a stored point's numbers are finite: line protocol refuses the others) is its JSON."""
    # Over 60 lines as one function: it runs once per event, and each call saved counts.
    field = _up_topic(prefix, dtype.name, device)
    rssi, snr, station = best.rssi, best.snr, best.station
    template = _templates.get(dtype.name)
    if template is None:
        template = _templates[dtype.name] = _template(dtype)
    if not template:  # a type with text or booleans: JSON's own spelling
        doc = up_document(dtype, device, time_s, seq, stations, best, values)
        text = "\x00" + _dumps(doc)
    elif (
        rssi is not None
        and snr is not None
        and station != UNKNOWN_STATION
        and len(values) == len(dtype.fields)
    ):
        # `_number` inlined for the usual hit (a call costs a third of what it saves).
        rssi_text = _FLOAT_TEXT.get(rssi)
        if rssi_text is None or type(rssi) is not float:
            rssi_text = _number(rssi)
        snr_text = _FLOAT_TEXT.get(snr)
        if snr_text is None or type(snr) is not float:
            snr_text = _number(snr)
        text = template % (
            device,
            rfc3339(time_s),
            seq,
            stations,
            station,
            rssi_text,
            snr_text,
            *values.values(),
        )
    else:
        text = _UP % (
            device,
            dtype.name,
            rfc3339(time_s),
            seq,
            stations,
            "null" if station == UNKNOWN_STATION else f'"{station}"',
            "null" if rssi is None else rssi,
            "null" if snr is None else snr,
            _values_template(tuple(values)) % tuple(values.values()),
        )
    tail = text.encode()
    return publish_header(len(field) + 2 + len(tail)) + field, tail


def up_document(  # noqa: PLR0917  # the fields of one stored message
    dtype: DeviceType,
    device: str,
    time_s: int,
    seq: int,
    stations: int,
    best: Copy,
    values: dict[str, Value],
) -> dict[str, object]:
    """The `up` event's body as a document: DESIGN section 9 spelled out, the slow way.

    The templates of `up_parts` must give exactly its JSON (the unit tests hold the two
    together); types the templates do not cover are encoded from it."""
    return {
        "device": device,
        "type": dtype.name,
        "time": rfc3339(time_s),
        "seq": seq,
        "stations": stations,
        "station": None if best.station == UNKNOWN_STATION else best.station,
        "rssi": best.rssi,
        "snr": best.snr,
        "values": values,
    }


def _number(x: Value) -> str:
    """`str(x)`, remembered for floats: RSSI and SNR take few values, and writing a float
    measured about 1,500 instructions where the lookup takes a tenth of that."""
    text = _FLOAT_TEXT.get(x)
    if text is None or type(x) is not float:  # 8 == 8.0, but an int is written "8"
        text = str(x)
        # Zero is left out: 0.0 == -0.0, written differently.
        if type(x) is float and x and len(_FLOAT_TEXT) < FLOAT_TEXTS:
            _FLOAT_TEXT[x] = text
    return text


# Floats remembered at most (about 100 bytes each): RSSI and SNR of 0.01 dB steps, many times
# over; once full, the others are written each time.
FLOAT_TEXTS = 20_000
_FLOAT_TEXT: dict[object, str] = {}  # float keys only (see `_number`)


_UP = (
    '\x00{"device":"%s","type":"%s","time":"%s","seq":%d,"stations":%d,"station":%s,"rssi":%s,'
    '"snr":%s,"values":%s}'
)


@functools.lru_cache(maxsize=1024)
def _values_template(names: tuple[str, ...]) -> str:
    """`{"name":%s,...}` for values of an all-number type (some left out as out of range)."""
    return "{" + ",".join(f'"{name}":%s' for name in names) + "}"


@functools.lru_cache(maxsize=65_536)
def _up_topic(prefix: str, type_name: str, device: str) -> bytes:
    return topic_field(f"{prefix}/{type_name}/{device}/up".encode())


_NUMERIC_KINDS = frozenset(("uint", "int", "float"))
# Type name -> its tail template ("" for a type with text). Float values are written by `%s`
# (through `_number` they measured 2,900 instructions more an event, the calls costing more
# than the floats' text saved, for a type of three floats).
_templates: dict[str, str] = {}


def _template(dtype: DeviceType) -> str:
    """The tail of an `up` event of `dtype` with %-placeholders ("" unless all numbers).

    `%s` and not `%r`: the same text for ints and floats, and measured faster."""
    if not all(f.slot.kind in _NUMERIC_KINDS for f in dtype.fields.values()):
        return ""  # bool and char values need JSON's own spelling
    fields = ",".join(f'"{name}":%s' for name in dtype.fields)
    return (
        f'\x00{{"device":"%s","type":"{dtype.name}","time":"%s","seq":%d,"stations":%d,'
        f'"station":"%s","rssi":%s,"snr":%s,"values":{{{fields}}}}}'
    )


def rejected_event(  # noqa: PLR0917  # the fields of one reject
    prefix: str, reason: str, topic: str, device: str | None, received_ns: int, detail: str
) -> tuple[str, bytes]:
    """Topic and body of a `rejected` event."""
    # topic and detail cut where the stored `rejected` point cuts them (ingest/points.py)
    doc: dict[str, object] = {"reason": reason, "topic": topic[:BODY_KEEP_BYTES]}
    if device:
        doc["device"] = device
    doc["time"] = rfc3339_ns(received_ns)
    doc["detail"] = detail[:DETAIL_KEEP_CHARS]
    return f"{prefix}/rejected/{reason}", _dumps(doc).encode()
