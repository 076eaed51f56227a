"""The catalogue loader: built-in types exactly as DESIGN section 2, extra types, broken files."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from catalogue import CatalogueError, CodecError, load_catalogue

CASES = sorted((Path(__file__).parent.parent / "cases" / "catalogue").glob("*.toml"))

# DESIGN section 2, typed again: (layout, {field: (unit, scale)}).
BUILTIN: dict[str, tuple[str, dict[str, tuple[str, float]]]] = {
    "wristband": (
        "heart_rate::uint:8 steps::uint:32 calories::uint:16 sleep_phase::uint:8 battery::uint:8",
        {
            "heart_rate": ("bpm", 1),
            "steps": ("steps", 1),
            "calories": ("kcal", 1),
            "sleep_phase": ("", 1),
            "battery": ("%", 1),
        },
    ),
    "scale": (
        "weight::uint:16 body_fat::uint:16 bmi::uint:16 battery::uint:8",
        {"weight": ("kg", 0.01), "body_fat": ("%", 0.1), "bmi": ("", 0.1), "battery": ("%", 1)},
    ),
    "weather_station": (
        "temperature::int:16 humidity::uint:16 co2::uint:16 pressure::uint:16 battery::uint:8",
        {
            "temperature": ("°C", 0.01),
            "humidity": ("%RH", 0.1),
            "co2": ("ppm", 1),
            "pressure": ("hPa", 0.1),
            "battery": ("%", 1),
        },
    ),
    "plant_sensor": (
        "soil_moisture::uint:8 light::uint:16 temperature::int:16 battery::uint:8",
        {
            "soil_moisture": ("%", 1),
            "light": ("lux", 1),
            "temperature": ("°C", 0.01),
            "battery": ("%", 1),
        },
    ),
}
PAYLOAD_BYTES = {"wristband": 9, "scale": 7, "weather_station": 9, "plant_sensor": 6}

GOOD_EXTRA = """
name = "door"
description = "A door contact"
layout = "open::bool:7 count::uint:16"

[fields.open]
unit = ""
[fields.count]
unit = "openings"
min = 0
max = 60000
"""


def test_builtin_types_match_the_design() -> None:
    catalogue = load_catalogue()
    assert [t.name for t in catalogue] == sorted(BUILTIN)
    for name, (layout, fields) in BUILTIN.items():
        dtype = catalogue[name]
        assert dtype.layout.source == layout
        assert dtype.payload_length == PAYLOAD_BYTES[name]
        assert list(dtype.fields) == list(fields)
        for field, (unit, scale) in fields.items():
            spec = dtype.fields[field]
            assert (spec.unit, spec.scale) == (unit, scale), (name, field)
            assert spec.minimum is not None
            assert spec.maximum is not None
            assert spec.minimum < spec.maximum
            assert spec.slot.endianness == "big"
            assert spec.storage == ("integer" if scale == 1 else "float")
        assert dtype.description


def test_builtin_ranges_cover_the_design_meanings() -> None:
    catalogue = load_catalogue()
    phase = catalogue["wristband"].fields["sleep_phase"]
    assert (phase.minimum, phase.maximum) == (0, 3)  # 0 awake, 1 light, 2 deep, 3 REM
    for dtype in catalogue:
        battery = dtype.fields["battery"]
        assert (battery.minimum, battery.maximum) == (0, 100)
    lowest = catalogue["weather_station"].fields["temperature"].minimum
    assert lowest is not None
    assert lowest < 0  # a signed field


def test_extra_types_come_from_a_folder(tmp_path: Path) -> None:
    (tmp_path / "door.toml").write_text(GOOD_EXTRA)
    (tmp_path / "notes.txt").write_text("not a type")  # only *.toml files are types
    catalogue = load_catalogue(tmp_path)
    assert "door" in catalogue
    assert len(list(catalogue)) == len(BUILTIN) + 1
    door = catalogue["door"]
    assert door.source == tmp_path / "door.toml"
    assert door.fields["open"].storage == "boolean"
    assert door.payload_length == 3
    assert door.decode(bytes.fromhex("8003e8")).values == {"open": True, "count": 1000}


def test_an_empty_extra_folder_adds_nothing(tmp_path: Path) -> None:
    assert [t.name for t in load_catalogue(tmp_path)] == [t.name for t in load_catalogue()]


@pytest.mark.parametrize("case", CASES, ids=[p.stem for p in CASES])
def test_a_broken_file_fails_naming_file_and_field(case: Path, tmp_path: Path) -> None:
    expect = case.read_text().splitlines()[0].removeprefix("# expect: ")
    target = tmp_path / case.name
    shutil.copy(case, target)
    with pytest.raises(CatalogueError) as info:
        load_catalogue(tmp_path)
    message = str(info.value)
    assert message.startswith(f"{target}: ")
    assert expect in message


def test_there_are_broken_cases() -> None:
    assert len(CASES) >= 10


def test_redefining_a_builtin_type_fails(tmp_path: Path) -> None:
    (tmp_path / "my_wristband.toml").write_text(GOOD_EXTRA.replace('"door"', '"wristband"'))
    with pytest.raises(CatalogueError) as info:
        load_catalogue(tmp_path)
    message = str(info.value)
    assert "my_wristband.toml" in message
    assert "'wristband' is already defined" in message
    assert "wristband.toml" in message.split("already defined in", 1)[1]


def test_two_extra_files_may_not_define_the_same_type(tmp_path: Path) -> None:
    (tmp_path / "a.toml").write_text(GOOD_EXTRA)
    (tmp_path / "b.toml").write_text(GOOD_EXTRA)
    with pytest.raises(
        CatalogueError, match=r"b\.toml: type 'door' is already defined in .*a\.toml"
    ):
        load_catalogue(tmp_path)


LAYOUT = (
    "flag::bool:0 level::uint:4 mode:1:uint:3::3 code:2:char:2 temp::int:16 ratio::float:32"
    " big::uint:16"
)
MIXED = f"""
name = "mixed"
description = "Every kind of slot, scaled and ranged"
layout = "{LAYOUT}:little-endian"

[fields.flag]
unit = ""
[fields.code]
unit = ""
[fields.mode]
unit = ""
min = 1
[fields.level]
unit = ""
scale = 0.5
max = 6
[fields.temp]
unit = "C"
scale = 0.01
min = -40
max = 85
[fields.ratio]
unit = ""
scale = 2.5
min = -1e6
max = 1e6
[fields.big]
unit = ""
min = 10
"""


@given(payload=st.binary(min_size=12, max_size=12))
def test_decode_is_to_physical_and_in_range_field_by_field(payload: bytes) -> None:
    # `DeviceType.decode` inlines both over a precomputed plan; here they are applied the slow
    # way, on every built-in type and on a layout with every kind of slot (no struct fast path).
    import tempfile  # noqa: PLC0415  # hypothesis forbids the tmp_path fixture here

    with tempfile.TemporaryDirectory() as folder:
        (Path(folder) / "mixed.toml").write_text(MIXED)
        catalogue = load_catalogue(Path(folder))
    for dtype in catalogue:
        data = payload[: dtype.payload_length]
        try:
            raw = dtype.layout.decode(data)
        except CodecError:
            with pytest.raises(CodecError):
                dtype.decode(data)
            continue
        physical = {n: s.to_physical(raw[n]) for n, s in dtype.fields.items()}
        decoded = dtype.decode(data)
        assert decoded.values == {n: v for n, v in physical.items() if dtype.fields[n].in_range(v)}
        assert decoded.out_of_range == tuple(
            n for n, v in physical.items() if not dtype.fields[n].in_range(v)
        )
        assert [type(v) for v in decoded.values.values()] == [
            type(physical[n]) for n in decoded.values
        ]
