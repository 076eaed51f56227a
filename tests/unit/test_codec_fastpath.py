"""The codec's struct fast path decodes exactly as the generic field-by-field path does."""

from __future__ import annotations

import math

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from catalogue import CodecError, load_catalogue, parse_layout
from catalogue.codec import Layout, Value

CATALOGUE = load_catalogue()


@st.composite
def fast_layouts(draw: st.DrawFn) -> Layout:
    """Whole-byte ints and floats, one byte order, with gaps, sometimes a bool or bit field."""
    order = draw(st.sampled_from(["", ":little-endian", ":big-endian"]))
    tokens: list[str] = []
    used = 0
    for i in range(draw(st.integers(1, 6))):
        kind = draw(st.sampled_from(["uint", "int", "float", "uint", "int", "bits"]))
        used += draw(st.sampled_from([0, 0, 0, 1]))  # a gap now and then
        if kind == "bits":
            width, rest = 1, f"uint:{draw(st.integers(1, 7))}"
        elif kind == "float":
            width = draw(st.sampled_from([4, 8]))
            rest = f"float:{width * 8}{order}"
        else:
            width = draw(st.sampled_from([1, 2, 4, 8]))
            rest = f"{kind}:{width * 8}{order}"
        if used + width > 12:
            break
        tokens.append(f"f{i}:{used}:{rest}")
        used += width
    if not tokens:
        tokens.append("f0:0:uint:8")
    return parse_layout(" ".join(tokens))


def _outcome(decode: object, payload: bytes) -> tuple[str, object]:
    try:
        values = decode(payload)  # type: ignore[operator]
    except CodecError as exc:
        return "error", (str(exc), exc.field)
    # NaN never equals itself: compare floats by their text
    return "ok", [(k, repr(v) if isinstance(v, float) else v) for k, v in values.items()]


@given(fast_layouts(), st.binary(max_size=14))
@settings(max_examples=500)
def test_fast_path_equals_generic_path(layout: Layout, payload: bytes) -> None:
    assert _outcome(layout.decode, payload) == _outcome(layout.decode_generic, payload)


@given(fast_layouts(), st.data())
@settings(max_examples=200)
def test_fast_path_on_payloads_of_the_right_length(layout: Layout, data: st.DataObject) -> None:
    payload = data.draw(st.binary(min_size=layout.length, max_size=layout.length))
    assert _outcome(layout.decode, payload) == _outcome(layout.decode_generic, payload)


def test_layouts_of_whole_byte_fields_take_the_fast_path() -> None:
    assert parse_layout("a::uint:8 b::int:16:little-endian c::float:32:little-endian").fast
    assert parse_layout("a::uint:16 b:4:float:64").fast


def test_other_layouts_take_the_generic_path() -> None:
    assert parse_layout("a::uint:16:little-endian b::uint:16").fast is None  # mixed order
    assert parse_layout("a::bool:0 b::uint:8").fast is None
    assert parse_layout("a::uint:4 b::uint:8").fast is None
    assert parse_layout("a:0:uint:8::7 b:1:uint:8").fast is None  # a bit field 8 bits wide
    assert parse_layout("a::char:2 b::uint:8").fast is None
    assert parse_layout("a:0:uint:16 b:1:uint:8").fast is None  # overlapping
    assert parse_layout("a:2:uint:8 b:0:uint:8").fast is None  # not in byte order


def test_catalogue_types_take_the_fast_path() -> None:
    # the shipped types are whole-byte ints: the ingest hot path must not fall back
    assert all(t.layout.fast is not None for t in CATALOGUE)


def test_fast_path_refuses_a_non_finite_float_as_the_generic_path_does() -> None:
    layout = parse_layout("a::float:32 b::float:32")
    nan_b = bytes(4) + bytes.fromhex("7fc00000")
    with pytest.raises(CodecError) as caught:
        layout.decode(nan_b)
    assert caught.value.field == "b"
    assert math.isclose(layout.decode(bytes.fromhex("3f800000") + bytes(4))["a"], 1.0)  # type: ignore[arg-type]


def test_fast_path_values_match_an_independent_struct_decode() -> None:
    layout = parse_layout("a::uint:8 b::int:16 c::uint:32 d::int:8")
    payload = bytes.fromhex("ff8000fffffffe80")
    values: dict[str, Value] = layout.decode(payload)
    assert values == {"a": 255, "b": -32768, "c": 0xFFFFFFFE, "d": -128}
