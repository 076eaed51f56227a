"""The codec: golden cases from tests/cases/codec, and Hypothesis properties."""

from __future__ import annotations

import contextlib
import math
import struct
import tomllib
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from catalogue import CodecError, load_catalogue, parse_layout
from catalogue.codec import Layout, Slot, Value

CASES = sorted((Path(__file__).parent.parent / "cases" / "codec").glob("*.toml"))
CATALOGUE = load_catalogue()


def _decode_case(case: dict[str, Any]) -> tuple[dict[str, Value], list[str]]:
    payload = bytes.fromhex(case.get("hex", ""))
    if "type" in case:
        decoded = CATALOGUE[case["type"]].decode(payload)
        return decoded.values, list(decoded.out_of_range)
    return parse_layout(case["layout"]).decode(payload), []


@pytest.mark.parametrize("path", CASES, ids=[p.stem for p in CASES])
def test_golden_case(path: Path) -> None:
    case = tomllib.loads(path.read_text())
    if "error" in case:
        with pytest.raises(CodecError) as info:
            _decode_case(case)
        assert str(info.value) == case["error"]
        return
    values, out_of_range = _decode_case(case)
    assert values == case["expect"]
    assert out_of_range == case.get("out_of_range", [])
    assert all(type(values[k]) is type(v) for k, v in case["expect"].items())


def test_there_are_golden_cases() -> None:
    assert len(CASES) >= 10


def _value_for(slot: Slot) -> st.SearchStrategy[Value]:
    if slot.kind == "bool":
        return st.booleans()
    if slot.kind == "char":
        alphabet = st.characters(min_codepoint=32, max_codepoint=126)
        return st.text(alphabet, min_size=slot.size // 8, max_size=slot.size // 8)
    if slot.kind == "float":
        if slot.size == 32:
            return st.floats(allow_nan=False, allow_infinity=False, width=32)
        return st.floats(allow_nan=False, allow_infinity=False)
    if slot.kind == "uint":
        return st.integers(0, (1 << slot.size) - 1)
    return st.integers(-(1 << (slot.size - 1)), (1 << (slot.size - 1)) - 1)


@st.composite
def layouts_and_values(draw: st.DrawFn) -> tuple[Layout, dict[str, Value]]:
    """Random non-overlapping layouts: whole-byte fields laid one after another."""
    tokens: list[str] = []
    used = 0
    for i in range(draw(st.integers(1, 6))):
        kind = draw(st.sampled_from(["uint", "int", "float", "char", "bool", "bits"]))
        if kind == "bool":
            width, token = 1, f"f{i}::bool:{draw(st.integers(0, 7))}"
        elif kind == "bits":
            width, token = 1, f"f{i}::uint:{draw(st.integers(1, 7))}"
        elif kind == "char":
            width = draw(st.integers(1, 3))
            token = f"f{i}::char:{width}"
        elif kind == "float":
            width = draw(st.sampled_from([4, 8]))
            token = f"f{i}::float:{width * 8}"
        else:
            width = draw(st.sampled_from([1, 2, 4]))
            endian = draw(st.sampled_from(["", ":little-endian", ":big-endian"]))
            token = f"f{i}::{kind}:{width * 8}{endian}"
        if used + width > 12:
            break
        # explicit byte indexes so that bit fields never share a byte in this generator
        name, _, rest = token.partition("::")
        tokens.append(f"{name}:{used}:{rest}")
        used += width
    layout = parse_layout(" ".join(tokens))
    values = {s.name: draw(_value_for(s)) for s in layout.slots}
    return layout, values


@given(layouts_and_values())
@settings(max_examples=300)
def test_decode_inverts_encode(case: tuple[Layout, dict[str, Value]]) -> None:
    layout, values = case
    decoded = layout.decode(layout.encode(values))
    for name, value in values.items():
        if isinstance(value, float):
            assert math.isclose(decoded[name], value, rel_tol=1e-6)  # type: ignore[arg-type]
        else:
            assert decoded[name] == value


@given(st.binary(max_size=16), st.sampled_from(sorted(CATALOGUE.names())))
def test_any_payload_decodes_or_raises_codec_error(payload: bytes, name: str) -> None:
    dtype = CATALOGUE[name]
    try:
        decoded = dtype.decode(payload)
    except CodecError:
        assert len(payload) < dtype.payload_length
    else:
        assert set(decoded.values) | set(decoded.out_of_range) == set(dtype.fields)


@given(st.text(max_size=60))
def test_any_layout_text_parses_or_raises_codec_error(text: str) -> None:
    try:
        layout = parse_layout(text)
    except CodecError:
        return
    assert layout.length <= 12


@given(st.binary(max_size=12), st.text(alphabet="abc:0123456789 uintfloachrbo-eg", max_size=40))
def test_random_layout_and_payload_never_raise_other_errors(payload: bytes, text: str) -> None:
    with contextlib.suppress(CodecError):
        parse_layout(text).decode(payload)


@pytest.mark.parametrize("name", sorted(CATALOGUE.names()))
def test_catalogue_physical_values_round_trip(name: str) -> None:
    dtype = CATALOGUE[name]
    values: dict[str, Value] = {}
    for field in dtype.fields.values():
        lo = field.minimum if field.minimum is not None else 0
        hi = field.maximum if field.maximum is not None else lo + 10
        mid = lo + (hi - lo) / 3
        values[field.name] = field.to_physical(field.to_raw(mid if field.scale != 1 else int(mid)))
    decoded = dtype.decode(dtype.encode(values))
    assert decoded.values == values
    assert decoded.out_of_range == ()


def test_encode_rejects_values_that_do_not_fit() -> None:
    layout = parse_layout("x::uint:8")
    with pytest.raises(CodecError, match="does not fit"):
        layout.encode({"x": 256})
    with pytest.raises(CodecError, match="no value"):
        layout.encode({})


def test_scaled_float_field_round_trips(tmp_path: Path) -> None:
    (tmp_path / "thermo.toml").write_text(
        'name = "thermo"\nlayout = "t::float:32 n::uint:8"\n'
        '[fields.t]\nunit = "°C"\nscale = 0.1\n[fields.n]\nunit = ""\n'
    )
    dtype = load_catalogue(tmp_path)["thermo"]
    payload = dtype.encode({"t": 2.5, "n": 3})
    assert struct.unpack(">f", payload[:4])[0] == 25.0
    assert dtype.decode(payload).values == {"t": 2.5, "n": 3}
