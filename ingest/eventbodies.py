"""What the ingester's events say (DESIGN section 9): their topics and bodies, made fast.

Topics and bodies (times RFC 3339 UTC, as the API writes them):
- `<prefix>/<type>/<device>/up`: the merged message as stored, {"device", "type", "time",
  "seq", "stations", "station", "rssi", "snr", "values": {field: value}}; published again when
  a later copy changes `stations` or the best station;
- `<prefix>/rejected/<reason>`: {"reason", "topic", "device" (when known), "time", "detail"},
  `time` being when the message was received;
- `<prefix>/<type>/<device>/status`: made by the status watcher (`ingest.watcher`).

An `up` event is made for every stored uplink, so it is made as its PUBLISH's two halves
(`up_parts`, see `ingest.eventpackets`), its values rewritten from the stored point's
line-protocol fields; `up_document` is the same event spelled out slowly, and the tests hold
the two to the same bytes.
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
    values_text: str,
) -> tuple[bytes, bytes]:
    """The `up` event as it waits to be published: its PUBLISH's (head, tail), see
    `ingest.eventpackets`. Made for every stored uplink, so from text already made: the
    topic's field cached per device, and the values rewritten from `values_text`, their
    line-protocol fields (`influx.lineprotocol.encode_fields(values)`, made for the stored
    point anyway), rather than written a second time.

    Line protocol writes a number or a bool as JSON does (`repr` of a finite float, the digits
    of an int then `i`, `true`/`false`), and field names are identifiers (checked at catalogue
    load), so `a=1.5,b=2i,c=true` becomes `{"a":1.5,"b":2,"c":true}` by three replacements
    in C: "i," and a last "i" dropped, "," and "=" quoted. A type with text fields (whose values
    may hold "," or "=") is encoded from `up_document` instead. Device and station are hex or
    "-" (checked at input): no escaping."""
    field = _up_topic(prefix, dtype.name, device)
    if dtype.has_text:  # text values: JSON's own spelling
        doc = up_document(dtype, device, time_s, seq, stations, best, values)
        tail = ("\x00" + _dumps(doc)).encode()
        return publish_header(len(field) + 2 + len(tail)) + field, tail
    if values_text:
        if values_text[-1] == "i":
            values_text = values_text[:-1]
        values_text = values_text.replace("i,", ",").replace(",", ',"').replace("=", '":')
        values_text = f'{{"{values_text}}}'
    else:
        values_text = "{}"
    rssi, snr, station = best.rssi, best.snr, best.station
    station = "null" if station == UNKNOWN_STATION else f'"{station}"'
    tail = (
        f'\x00{{"device":"{device}","type":"{dtype.name}","time":"{rfc3339(time_s)}",'
        f'"seq":{seq},"stations":{stations},"station":{station},'
        f'"rssi":{"null" if rssi is None else _number(rssi)},'
        f'"snr":{"null" if snr is None else _number(snr)},"values":{values_text}}}'
    ).encode()
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

    `up_parts` must give exactly its JSON (the unit tests hold the two together); it encodes
    the types with text fields from it."""
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


@functools.lru_cache(maxsize=65_536)
def _up_topic(prefix: str, type_name: str, device: str) -> bytes:
    return topic_field(f"{prefix}/{type_name}/{device}/up".encode())


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
