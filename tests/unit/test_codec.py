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
    if "encoded" in case:  # the simulators' direction: the same values give this payload
        assert parse_layout(case["layout"]).encode(case["expect"]).hex() == case["encoded"]


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


# Where a field sits: (byte, lowest bit) for bools and bit fields, (byte, None) otherwise.
Place = tuple[int, int | None]


@st.composite
def sigfox_layouts(draw: st.DrawFn) -> tuple[str, dict[str, Place]]:
    """Layouts in Sigfox's grammar with bit fields at every offset, both byte orders and empty
    byte indexes wherever DESIGN 2's rule lands them right; with where each field must sit.

    The rule is modelled here on its own (a pointer: a bool reads the byte it is on, any other
    field the byte after the last one read unless the previous field gave a bit offset), so the
    parser is checked against it, not against itself.
    """
    tokens: list[str] = []
    places: dict[str, Place] = {}
    after_bool = after_other = 0  # the modelled pointer
    byte = 0

    def index(pointer: int) -> str:
        return "" if pointer == byte and draw(st.booleans()) else str(byte)

    while byte < 12:
        what = draw(st.sampled_from(["bits", "bits", "whole", "gap"]))
        if what == "gap":
            byte += 1
            continue
        if what == "bits":  # byte `byte` cut into runs of bits, top down, some left unnamed
            top = 7
            while top >= 0:
                size = draw(st.integers(1, top + 1))
                kind = draw(st.sampled_from(["uint", "int", "skip"] + ["bool"] * (size == 1)))
                if kind != "skip":
                    name = f"f{len(tokens)}"
                    if kind == "bool":
                        tokens.append(f"{name}:{index(after_bool)}:bool:{top}")
                        places[name] = (byte, top)
                        after_bool, after_other = byte, byte + 1
                    else:
                        # an offset is needed below bit 7; at bit 7 it may be left out
                        give = top < 7 or size == 8 or draw(st.booleans())
                        order = draw(st.sampled_from(["", "big-endian", "little-endian"]))
                        tail = f":{order}:{top}" if order or draw(st.booleans()) else f":{top}"
                        tokens.append(
                            f"{name}:{index(after_other)}:{kind}:{size}{tail if give else ''}"
                        )
                        places[name] = (byte, top + 1 - size)
                        if give:
                            after_bool = after_other = byte
                        else:
                            after_bool = after_other = byte + 1
                top -= size
            byte += 1
            continue
        kind = draw(st.sampled_from(["uint", "int", "float", "char"]))
        width = {
            "uint": st.sampled_from([1, 2, 4, 8]),
            "int": st.sampled_from([1, 2, 4, 8]),
            "float": st.sampled_from([4, 8]),
            "char": st.integers(1, 3),
        }[kind]
        n = draw(width)
        if byte + n > 12:
            break
        length = n if kind == "char" else n * 8
        order = (
            "" if kind == "char" else draw(st.sampled_from(["", ":big-endian", ":little-endian"]))
        )
        name = f"f{len(tokens)}"
        tokens.append(f"{name}:{index(after_other)}:{kind}:{length}{order}")
        places[name] = (byte, None)
        byte += n
        after_bool = after_other = byte
    if not tokens:
        tokens.append("f0::uint:8")
        places["f0"] = (0, None)
    return " ".join(tokens), places


@given(sigfox_layouts(), st.data())
@settings(max_examples=400)
def test_sigfox_layouts_sit_where_the_rule_says_and_round_trip(
    case: tuple[str, dict[str, Place]], data: st.DataObject
) -> None:
    source, places = case
    layout = parse_layout(source)
    assert {s.name: (s.byte, s.shift) for s in layout.slots} == places, source
    values = {s.name: data.draw(_value_for(s)) for s in layout.slots}
    payload = layout.encode(values)
    assert len(payload) == layout.length
    decoded = layout.decode(payload)
    for name, value in values.items():
        if isinstance(value, float):
            assert math.isclose(decoded[name], value, rel_tol=1e-6), source  # type: ignore[arg-type]
        else:
            assert decoded[name] == value, source
    # bytes past the layout (padding to 12) change nothing
    assert layout.decode(payload + bytes(12 - len(payload))) == decoded


def test_bit_fields_read_downward_from_their_offset_at_every_offset() -> None:
    # one bit set at a time: a 1-bit field at offset o sees exactly bit o
    for o in range(8):
        layout = parse_layout(f"b:0:uint:1::{o}")
        assert [layout.decode(bytes([1 << k]))["b"] for k in range(8)] == [
            int(k == o) for k in range(8)
        ]


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


# DESIGN section 2's built-in layouts as struct formats, typed again: they have no bit fields,
# so the bit-offset rules must leave them decoding exactly as before.
BUILTIN_STRUCTS = {
    "wristband": ">BIHBB",
    "scale": ">HHHB",
    "weather_station": ">hHHHB",
    "plant_sensor": ">BHhB",
}


@given(st.binary(min_size=12, max_size=12), st.sampled_from(sorted(BUILTIN_STRUCTS)))
def test_builtin_types_decode_as_their_struct_layout(padded: bytes, name: str) -> None:
    fmt = BUILTIN_STRUCTS[name]
    layout = CATALOGUE[name].layout
    assert layout.length == struct.calcsize(fmt)
    expected = dict(zip(layout.names, struct.unpack_from(fmt, padded), strict=True))
    exact = padded[: layout.length]
    assert layout.decode(exact) == layout.decode_generic(exact) == expected
    assert layout.decode(padded) == expected  # padded to 12 bytes: the same fields
    assert layout.encode(expected) == exact


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
