"""The validation ladder: every reason, and the first failing step wins."""

from __future__ import annotations

import json
import struct
from pathlib import Path

import pytest
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st
from pydantic import ValidationError

from catalogue import load_catalogue
from influx.schema import REJECT_REASONS
from ingest.validate import Accepted, Rejection, validate
from sigfox.envelope import Uplink, absent_nulls
from sigfox.topics import _parse_cached, parse_uplink_topic

CAT = load_catalogue(None)
NOW = 1_716_000_000
GOOD = struct.pack(">BIHBB", 72, 12345, 512, 2, 88).hex()


def body(**over: object) -> bytes:
    doc = {"device": "1A2B3C", "time": NOW, "seqNumber": 123, "data": GOOD} | over
    return json.dumps({k: v for k, v in doc.items() if v is not None}).encode()


def run(topic: str, raw: bytes) -> Accepted | Rejection:
    return validate(topic, raw, catalogue=CAT, prefix="uplink", now=NOW, future_tolerance=300)


CASES = {
    "topic": ("uplink/wristband", body()),
    "topic-device": ("uplink/wristband/XYZ", body()),
    "topic-prefix": ("other/wristband/1A2B3C", body()),
    "too_large": ("uplink/wristband/1A2B3C", body(deviceTypeId="x" * 1100)),
    "encoding": ("uplink/wristband/1A2B3C", b'{"device": "\xc3\x28"}'),
    "json": ("uplink/wristband/1A2B3C", b"{not json"),
    "json-array": ("uplink/wristband/1A2B3C", b"[1, 2]"),
    "json-deep": ("uplink/wristband/1A2B3C", b"[" * 1000),
    "envelope": ("uplink/wristband/1A2B3C", body(seqNumber=4096)),
    "envelope-missing": ("uplink/wristband/1A2B3C", body(data=None)),
    "envelope-hex": ("uplink/wristband/1A2B3C", body(data="zz")),
    "envelope-nan": (
        "uplink/wristband/1A2B3C",
        b'{"device":"1A2B3C","time":1,"seqNumber":1,"data":"","rssi":NaN}',
    ),
    "unknown_type": ("uplink/toaster/1A2B3C", body()),
    "device_mismatch": ("uplink/wristband/1A2B3D", body()),
    "future": ("uplink/wristband/1A2B3C", body(time=NOW + 301)),
    "payload_length": ("uplink/wristband/1A2B3C", body(data=GOOD[:-2])),
}


@pytest.mark.parametrize("name", CASES)
def test_each_reason(name: str) -> None:
    topic, raw = CASES[name]
    result = run(topic, raw)
    assert isinstance(result, Rejection)
    assert result.reason == name.split("-", maxsplit=1)[0]
    assert result.detail


def test_decode_reason_for_a_payload_the_codec_refuses(tmp_path: Path) -> None:
    folder = tmp_path
    (folder / "label.toml").write_text(
        'name = "label"\nlayout = "tag::char:2"\n[fields.tag]\nunit = ""\n'
    )
    cat = load_catalogue(folder)
    raw = json.dumps({"device": "A", "time": NOW, "seqNumber": 1, "data": "ff41"}).encode()
    result = validate(
        "uplink/label/A", raw, catalogue=cat, prefix="uplink", now=NOW, future_tolerance=0
    )
    assert isinstance(result, Rejection)
    assert result.reason == "decode"


def test_first_failing_step_wins() -> None:
    # unknown type AND device mismatch AND future: the earliest rung is reported
    result = run("uplink/toaster/1A2B3D", body(time=NOW + 10_000))
    assert isinstance(result, Rejection)
    assert result.reason == "unknown_type"
    assert result.device == "1A2B3D"


def test_accepted_values_numeric_strings_and_case() -> None:
    raw = body(device="1a2b3c", seqNumber="123", time=str(NOW), rssi="-118.5", data=GOOD.upper())
    result = run("uplink/wristband/1a2b3c", raw)
    assert isinstance(result, Accepted)
    assert result.device == "1A2B3C"
    assert result.uplink.seqNumber == 123
    assert result.uplink.rssi == -118.5
    hr, steps, kcal, sleep, battery = struct.unpack(">BIHBB", bytes.fromhex(GOOD))
    assert result.decoded.values == {
        "heart_rate": hr,
        "steps": steps,
        "calories": kcal,
        "sleep_phase": sleep,
        "battery": battery,
    }


def test_out_of_range_values_are_left_out_not_rejected() -> None:
    data = struct.pack(">BIHBB", 255, 1, 1, 9, 50).hex()
    result = run("uplink/wristband/1A2B3C", body(data=data))
    assert isinstance(result, Accepted)
    assert set(result.decoded.out_of_range) == {"heart_rate", "sleep_phase"}
    assert "heart_rate" not in result.decoded.values


def test_exactly_at_the_future_tolerance_is_accepted() -> None:
    assert isinstance(run("uplink/wristband/1A2B3C", body(time=NOW + 300)), Accepted)


def test_body_of_exactly_1_kib_passes_the_size_rung() -> None:
    raw = body()[:-1] + b', "pad": "'  # unknown keys are ignored
    raw += b"x" * (1024 - len(raw) - 2) + b'"}'
    assert len(raw) == 1024
    assert isinstance(run("uplink/wristband/1A2B3C", raw), Accepted)
    assert run("uplink/wristband/1A2B3C", raw[:-2] + b'x"}').reason == "too_large"  # type: ignore[union-attr]


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=20),
    lambda inner: (
        st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4)
    ),
    max_leaves=12,
)
near_bodies = st.fixed_dictionaries(
    {},
    optional={
        "device": st.sampled_from(["1A2B3C", "1a2b3c", "", "G", "1A2B3C4D5"])
        | st.text(max_size=10),
        "time": st.integers(-5, 2**34) | st.text(max_size=12) | st.floats(),
        "seqNumber": st.integers(-2, 5000) | st.text(max_size=6),
        "data": st.sampled_from([GOOD, GOOD[:-2], "", "zz", GOOD + "00"]) | st.text(max_size=30),
        "station": st.text(max_size=20),
        "rssi": st.floats() | st.text(max_size=8),
        "duplicates": json_values,
    },
)


@given(
    topic=st.sampled_from(["uplink/wristband/1A2B3C", "uplink/scale/1A2B3C", "uplink/x/1"])
    | st.text(max_size=40),
    raw=st.binary(max_size=1200)
    | near_bodies.map(lambda d: json.dumps(d).encode())
    | json_values.map(lambda v: json.dumps(v).encode()),
)
@settings(max_examples=300, suppress_health_check=[HealthCheck.too_slow])
def test_any_input_gets_an_answer_never_an_exception(topic: str, raw: bytes) -> None:
    result = run(topic, raw)
    assert isinstance(result, Accepted | Rejection)
    if isinstance(result, Rejection):
        assert result.reason in REJECT_REASONS
    else:
        assert result.device == topic.rsplit("/", 1)[-1].upper()


def _step_by_step(raw: bytes) -> Uplink | None:
    """Steps 3-5 as the ladder describes them: UTF-8, then one JSON object, then the model."""
    try:
        doc = json.loads(raw.decode("utf-8"))
        return Uplink.model_validate(absent_nulls(doc)) if isinstance(doc, dict) else None
    except (ValueError, RecursionError):  # ValidationError is a ValueError
        return None


duplicate_lists = st.lists(
    st.fixed_dictionaries(
        {"bsId": st.sampled_from(["0A1B", "ab", "", "xyz"]) | st.text(max_size=4)},
        optional={
            "rssi": st.floats() | st.integers(-300, 100) | st.none() | st.just("null"),
            "nbRep": st.integers(-1, 20),
        },
    ),
    max_size=3,
)
mostly_valid = st.fixed_dictionaries(
    {
        "device": st.sampled_from(["1A2B3C", "1a2b3c", "0"]),
        "time": st.integers(0, 2**33) | st.sampled_from(["17", 1.0, 2.5, True]),
        "seqNumber": st.integers(0, 4095) | st.sampled_from(["7", 4096, 1.0, False]),
        "data": st.sampled_from([GOOD, GOOD.upper(), "", "0"]),
    },
    optional={
        "station": st.sampled_from(["0a1b", "0A1B", "1" * 17, 5]),
        "rssi": st.floats(-200, 50)
        | st.integers()
        | st.booleans()
        | st.none()
        | st.floats()
        | st.sampled_from(["null", "NULL", "-120.5"]),
        "snr": st.floats(-50, 100) | st.sampled_from(["8.5", "1e2", " 3", "nan", "null"]),
        "duplicate": st.booleans() | st.sampled_from(["true", "yes", 1, 2, "0"]),
        "duplicates": duplicate_lists | st.none(),
        "deviceTypeId": st.text(max_size=70),
        "extra": json_values,
    },
)
envelope_docs = near_bodies | mostly_valid


@given(
    raw=envelope_docs.map(lambda d: json.dumps(d).encode())
    | envelope_docs.map(lambda d: json.dumps(d, ensure_ascii=False).encode())
    | st.binary(max_size=200)
    | st.builds(
        lambda d, pre, post: pre + json.dumps(d).encode() + post,
        envelope_docs,
        st.sampled_from([b"", b" ", b"\n", b"\xef\xbb\xbf", b"\x00", b"["]),
        st.sampled_from([b"", b" \n", b"x", b"\x00", b"}", b',"device":"FF"}']),
    )
)
@settings(max_examples=1000, suppress_health_check=[HealthCheck.too_slow])
def test_the_one_pass_envelope_agrees_with_the_steps(raw: bytes) -> None:
    # `validate` tries pydantic's JSON parser first and walks steps 3-5 only when it refuses:
    # whatever that parser accepts, the steps must accept too, with the very same uplink.
    try:
        fast = Uplink.model_validate_json(raw)
    except ValidationError:
        event("refused by the one pass")
        return
    event("accepted by the one pass")
    assert _step_by_step(raw) == fast


def test_a_topic_device_with_a_final_newline_is_a_topic_reject() -> None:
    # Python's `$` matches before a final newline; the topic's device id must end the topic.
    result = run("uplink/wristband/1A2B3C\n", body())
    assert isinstance(result, Rejection)
    assert result.reason == "topic"


def test_long_topics_are_parsed_but_not_cached() -> None:
    long_type = "x" * 5000
    before = _parse_cached.cache_info().currsize
    assert parse_uplink_topic("uplink", f"uplink/{long_type}/1A") == (long_type, "1A")
    assert _parse_cached.cache_info().currsize == before
    assert parse_uplink_topic("uplink", "uplink/wristband/1a") == ("wristband", "1A")


@pytest.mark.parametrize("extra", ["", "00", "ffffff"])
def test_a_payload_longer_than_its_layout_is_decoded_from_the_layout(extra: str) -> None:
    # devices pad to 12 bytes (DESIGN 2): the layout's fields, the whole payload kept raw
    data = GOOD + extra
    result = run("uplink/wristband/1A2B3C", body(data=data))
    assert isinstance(result, Accepted)
    assert result.uplink.data == data
    hr, steps, kcal, sleep, battery = struct.unpack(">BIHBB", bytes.fromhex(GOOD))
    assert result.decoded.values == {
        "heart_rate": hr,
        "steps": steps,
        "calories": kcal,
        "sleep_phase": sleep,
        "battery": battery,
    }


def test_a_shorter_payload_names_the_length_it_needs() -> None:
    result = run("uplink/wristband/1A2B3C", body(data=GOOD[:-2]))
    assert isinstance(result, Rejection)
    assert result.detail == "8 bytes, wristband needs at least 9"


@pytest.mark.parametrize("null", ["null", '"null"'])
def test_rssi_and_snr_null_mean_absent(null: str) -> None:
    # JSON null as Sigfox sends it, or the text "null" through a template quoting every value
    raw = (
        f'{{"device":"1A2B3C","time":{NOW},"seqNumber":7,"data":"{GOOD}","station":"3A5F",'
        f'"rssi":{null},"snr":{null},'
        f'"duplicates":[{{"bsId":"0B01","rssi":{null},"snr":{null},"nbRep":2}}]}}'
    ).encode()
    result = run("uplink/wristband/1A2B3C", raw)
    assert isinstance(result, Accepted), result
    up = result.uplink
    assert (up.station, up.rssi, up.snr) == ("3A5F", None, None)
    assert up.duplicates is not None
    assert (up.duplicates[0].bsId, up.duplicates[0].rssi, up.duplicates[0].snr) == (
        "0B01",
        None,
        None,
    )


@given(doc=mostly_valid)
@settings(max_examples=500, suppress_health_check=[HealthCheck.too_slow])
def test_the_text_null_is_json_null(doc: dict[str, object]) -> None:
    # whichever path takes it, a body with "null" texts gives what it gives with JSON nulls
    nulled = {k: (None if k in ("rssi", "snr") and v == "null" else v) for k, v in doc.items()}
    if isinstance(dups := doc.get("duplicates"), list):
        nulled["duplicates"] = [
            {k: (None if k == "rssi" and v == "null" else v) for k, v in d.items()} for d in dups
        ]
    a = run("uplink/wristband/1A2B3C", json.dumps(doc).encode())
    b = run("uplink/wristband/1A2B3C", json.dumps(nulled).encode())
    if isinstance(a, Accepted):
        assert isinstance(b, Accepted)
        assert a.uplink == b.uplink
    else:
        assert isinstance(b, Rejection)
        assert a.reason == b.reason
