"""The two points of an accepted uplink, against `encode_point` of the fields DESIGN 3 lists."""

from __future__ import annotations

import json

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from catalogue import CodecError, load_catalogue
from influx.lineprotocol import FieldValue, LineProtocolError, encode_point, printable
from ingest.merge import UNKNOWN_STATION, Copy, Merger
from ingest.points import accepted_points, values_fields
from ingest.validate import Accepted, validate

CAT = load_catalogue(None)
NOW = 1_716_000_000


def reference(acc: Accepted, copies: list[Copy]) -> list[str]:
    """Both lines built the plain way: dicts of fields in the documented order."""
    merger = Merger()
    state, _ = merger.merge((acc.device, acc.uplink.seqNumber, acc.uplink.time), copies)
    best = state.best
    named = {c.station for c in copies} - {UNKNOWN_STATION}
    link: dict[str, FieldValue] = {"seq": acc.uplink.seqNumber, "stations": len(named) or 1}
    if best.rssi is not None:
        link["rssi"] = float(best.rssi)
    if best.snr is not None:
        link["snr"] = float(best.snr)
    raw: dict[str, FieldValue] = {
        "data": acc.uplink.data,
        **link,
        "station_ids": ",".join(sorted(named)),
        "out_of_range": len(acc.decoded.out_of_range),
    }
    if best.station != UNKNOWN_STATION:
        raw["station"] = best.station
    if acc.uplink.deviceTypeId:
        raw["device_type_id"] = printable(acc.uplink.deviceTypeId)  # control chars escaped
    ts = acc.uplink.time * 1_000_000_000
    tags = {"device": acc.device}
    return [
        encode_point(acc.dtype.name, tags, {**acc.decoded.values, **link}, ts),
        encode_point("uplink", tags | {"type": acc.dtype.name}, raw, ts),
    ]


stations = st.sampled_from(["0A1B", "FF", "1234ABCD", "7"])
copies_st = st.lists(
    st.builds(
        Copy,
        stations | st.just(UNKNOWN_STATION),  # a copy naming no station
        st.none() | st.floats(-200, 50) | st.integers(-200, 50),
        st.none() | st.floats(-50, 100),
    ),
    min_size=1,
    max_size=4,
)


@given(
    type_name=st.sampled_from(sorted(CAT.types)),
    payload=st.binary(min_size=12, max_size=12),
    copies=copies_st,
    first_station=st.none() | stations,
    device_type_id=st.none() | st.sampled_from(["", "5a1b", 'quote"and\\slash', "tab\there"]),
    seq=st.integers(0, 4095),
)
@settings(max_examples=300)
def test_points_match_the_plain_encoding(  # noqa: PLR0917  # hypothesis's draws
    type_name: str,
    payload: bytes,
    copies: list[Copy],
    first_station: str | None,
    device_type_id: str | None,
    seq: int,
) -> None:
    dtype = CAT[type_name]
    data = payload[: dtype.payload_length].hex()
    body = {"device": "1a2b", "time": NOW - 60, "seqNumber": seq, "data": data}
    if first_station is not None:
        body["station"] = first_station
    if device_type_id is not None:
        body["deviceTypeId"] = device_type_id
    acc = validate(
        f"uplink/{type_name}/1A2B",
        json.dumps(body).encode(),
        catalogue=CAT,
        prefix="uplink",
        now=NOW,
        future_tolerance=300,
    )
    if not isinstance(acc, Accepted):
        with pytest.raises(CodecError):  # the only way a well-formed body fails here
            dtype.decode(bytes.fromhex(data))
        return
    heard = [Copy(first_station or UNKNOWN_STATION, None, None), *copies]
    merger = Merger()
    state, _ = merger.merge((acc.device, seq, acc.uplink.time), heard)
    try:
        expected = reference(acc, heard)
    except LineProtocolError as exc:
        with pytest.raises(LineProtocolError, match=str(exc.args[0]).split(" ")[0]):
            accepted_points(acc, state, values_fields(acc.decoded.values))
        return
    got = accepted_points(acc, state, values_fields(acc.decoded.values))
    assert [line for _, line in got] == expected
    ts = acc.uplink.time * 1_000_000_000
    assert [key for key, _ in got] == [(type_name, "1A2B", ts), ("uplink", "1A2B", ts)]
