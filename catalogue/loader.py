"""Device types read from TOML data files: built-ins under `catalogue/types/`, extras from a folder.

A file looks like::

    name = "wristband"
    description = "Activity wristband"
    layout = "heart_rate::uint:8 steps::uint:32"

    [fields.heart_rate]
    unit = "bpm"
    scale = 1            # the raw integer is multiplied by this
    min = 25             # valid range after scaling; values outside are not stored
    max = 230

    [status]             # optional: how often its devices report (DESIGN section 10)
    interval = "10m"     # expected time between uplinks; late past two of them
    offline_after = "1h" # default six intervals
    battery_field = "battery"  # default `battery` when the type has that field
    battery_low = 15     # battery_low alarm at or below this, in the field's unit

Every field of the layout needs a `[fields.<name>]` table. A broken file raises `CatalogueError`
naming the file and the field.
"""

from __future__ import annotations

import math
import re
import tomllib
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal, NamedTuple

from catalogue.codec import CodecError, Layout, Slot, Value, parse_layout
from catalogue.durations import parse_seconds

BUILTIN_DIR = Path(__file__).with_name("types")
_TYPE_NAME = re.compile(r"^[a-z][a-z0-9_]{0,31}\Z")
# Field names become InfluxDB field keys and API names next to these, so they must not clash.
RESERVED_FIELDS = frozenset({"time", "device", "type", "seq", "rssi", "snr", "stations", "station"})
# A type's name is its measurement's name; these measurements are the backend's own.
RESERVED_TYPES = frozenset({"uplink", "rejected", "event"})
StorageType = Literal["integer", "float", "boolean", "string"]

# DESIGN section 10's defaults: a report every 10 minutes, offline after six missed intervals,
# the battery alarm at 15 (%, the built-in types' battery unit).
DEFAULT_INTERVAL = 600.0
OFFLINE_INTERVALS = 6
DEFAULT_BATTERY_FIELD = "battery"
DEFAULT_BATTERY_LOW = 15.0
# `late` is past two intervals, so `offline_after` must leave room for it.
LATE_INTERVALS = 2
STATUS_KEYS = frozenset({"interval", "offline_after", "battery_field", "battery_low"})


class CatalogueError(Exception):
    """A catalogue file that cannot be used; the message names the file and the field."""


@dataclass(frozen=True, slots=True)
class FieldSpec:
    """One decoded field: its slot in the payload, unit, scale and valid range (after scaling)."""

    name: str
    slot: Slot
    unit: str
    scale: float
    minimum: float | None
    maximum: float | None
    description: str
    decimals: int = 0  # decimal places the scale introduces, computed once (hot path)

    @property
    def storage(self) -> StorageType:
        """The InfluxDB field type; fixed here so that a type conflict cannot happen."""
        if self.slot.kind == "bool":
            return "boolean"
        if self.slot.kind == "char":
            return "string"
        if self.slot.kind in ("uint", "int") and self.scale == 1:
            return "integer"
        return "float"

    def to_physical(self, raw: Value) -> Value:
        if isinstance(raw, bool | str) or self.scale == 1:
            return raw
        if self.slot.kind == "float":
            return raw * self.scale
        # round away binary noise: 0.01 * 2150 must be 21.5, not 21.500000000000004
        return round(raw * self.scale, self.decimals)

    def to_raw(self, value: Value) -> Value:
        if isinstance(value, bool | str) or self.scale == 1:
            return value
        if self.slot.kind == "float":
            return value / self.scale
        return round(value / self.scale)

    def in_range(self, value: Value) -> bool:
        if isinstance(value, bool | str):
            return True
        if self.minimum is not None and value < self.minimum:
            return False
        return self.maximum is None or value <= self.maximum


@dataclass(frozen=True, slots=True)
class StatusSpec:
    """How often a type's devices report, and when their battery is low (seconds, field unit)."""

    interval: float = DEFAULT_INTERVAL
    offline_after: float = DEFAULT_INTERVAL * OFFLINE_INTERVALS
    battery_field: str | None = None
    battery_low: float = DEFAULT_BATTERY_LOW

    @property
    def late_after(self) -> float:
        return self.interval * LATE_INTERVALS


class Decoded(NamedTuple):
    """A decoded payload: values in range, and the names of fields that were out of range."""

    values: dict[str, Value]
    out_of_range: tuple[str, ...]


class _Step(NamedTuple):
    name: str
    plain: bool  # bool and char: kept as read
    scale: float
    decimals: int  # rounding after scaling; -1 for float slots (not rounded)
    minimum: float | None
    maximum: float | None


@dataclass(frozen=True, slots=True)
class DeviceType:
    """A device type: name, layout and its fields in layout order."""

    name: str
    description: str
    layout: Layout
    fields: dict[str, FieldSpec]
    source: Path
    status: StatusSpec = field(default_factory=StatusSpec)
    # Per field, in slot order, what `decode` needs: computed once, read for every uplink.
    _plan: tuple[_Step, ...] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        plan = []
        for slot in self.layout.slots:
            spec = self.fields[slot.name]
            plain = slot.kind in ("bool", "char")  # no scale, no range (as `to_physical` says)
            plan.append(
                _Step(
                    slot.name,
                    plain,
                    spec.scale,
                    -1 if slot.kind == "float" else spec.decimals,  # -1: no rounding
                    spec.minimum,
                    spec.maximum,
                )
            )
        object.__setattr__(self, "_plan", tuple(plan))

    @property
    def payload_length(self) -> int:
        return self.layout.length

    def decode(self, payload: bytes) -> Decoded:
        """Scaled values; out-of-range values are left out and named. Raises `CodecError`.

        `FieldSpec.to_physical` and `in_range`, inlined over the precomputed plan: this runs for
        every uplink (tests/unit/test_catalogue.py checks it against them).
        """
        values: dict[str, Value] = {}
        bad: list[str] = []
        for (name, plain, scale, decimals, lo, hi), raw in zip(
            self._plan, self.layout.decode_values(payload), strict=True
        ):
            if plain:
                values[name] = raw
                continue
            value = raw
            if scale != 1:
                value = raw * scale if decimals < 0 else round(raw * scale, decimals)  # type: ignore[operator]
            if (lo is not None and value < lo) or (hi is not None and value > hi):  # type: ignore[operator]
                bad.append(name)
            else:
                values[name] = value
        return Decoded(values, tuple(bad))

    def encode(self, values: dict[str, Value]) -> bytes:
        """The payload carrying physical `values` (scaled back to raw integers)."""
        return self.layout.encode(
            {n: s.to_raw(values[n]) for n, s in self.fields.items() if n in values}
        )


class Catalogue:
    """The device types by name; a plain dict underneath."""

    def __init__(self, types: dict[str, DeviceType]) -> None:
        self.types = types

    def __getitem__(self, name: str) -> DeviceType:
        return self.types[name]

    def __contains__(self, name: object) -> bool:
        return name in self.types

    def __iter__(self) -> Iterator[DeviceType]:
        return iter(self.types.values())

    def __len__(self) -> int:
        return len(self.types)

    def names(self) -> list[str]:
        return list(self.types)


def load_catalogue(extra_dir: Path | None = None) -> Catalogue:
    """The built-in types plus every `*.toml` in `extra_dir`, which may not redefine a type."""
    types: dict[str, DeviceType] = {}
    dirs = [BUILTIN_DIR] + ([extra_dir] if extra_dir is not None else [])
    for folder in dirs:
        for path in sorted(folder.glob("*.toml")):
            dtype = load_type_file(path)
            if dtype.name in types:
                raise CatalogueError(
                    f"{path}: type {dtype.name!r} is already defined in {types[dtype.name].source}"
                )
            types[dtype.name] = dtype
    return Catalogue(types)


def load_type_file(path: Path) -> DeviceType:
    try:
        doc = tomllib.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError) as exc:
        raise CatalogueError(f"{path}: cannot read: {exc}") from None
    return _build_type(path, doc)


def _build_type(path: Path, doc: dict[str, object]) -> DeviceType:
    name = doc.get("name")
    if not isinstance(name, str) or not _TYPE_NAME.match(name):
        raise CatalogueError(f"{path}: field 'name' must match {_TYPE_NAME.pattern}")
    if name in RESERVED_TYPES:
        raise CatalogueError(f"{path}: field 'name' {name!r} is a measurement of the backend's own")
    layout_src = doc.get("layout")
    if not isinstance(layout_src, str):
        raise CatalogueError(f"{path}: field 'layout' must be a string")
    try:
        layout = parse_layout(layout_src)
    except CodecError as exc:
        raise CatalogueError(f"{path}: field 'layout': {exc}") from None
    tables = doc.get("fields", {})
    if not isinstance(tables, dict):
        raise CatalogueError(f"{path}: 'fields' must be a table of tables")
    unknown = set(tables) - set(layout.names)
    if unknown:
        raise CatalogueError(f"{path}: field 'fields.{sorted(unknown)[0]}' is not in the layout")
    fields: dict[str, FieldSpec] = {}
    for slot in layout.slots:
        fields[slot.name] = _build_field(path, slot, tables.get(slot.name))
    description = doc.get("description", "")
    if not isinstance(description, str):
        raise CatalogueError(f"{path}: field 'description' must be a string")
    status = _build_status(path, doc.get("status", {}), fields)
    return DeviceType(name, description, layout, fields, path, status)


def _build_status(path: Path, table: object, fields: dict[str, FieldSpec]) -> StatusSpec:
    """The optional `[status]` table, every key checked, defaults from DESIGN section 10."""
    where = f"{path}: field 'status"
    if not isinstance(table, dict):
        raise CatalogueError(f"{where}' must be a table")
    extra = set(table) - STATUS_KEYS
    if extra:
        raise CatalogueError(f"{where}.{sorted(extra)[0]}' is not a known key")
    interval = _duration(where, table, "interval", DEFAULT_INTERVAL)
    offline_after = _duration(where, table, "offline_after", interval * OFFLINE_INTERVALS)
    if offline_after <= interval * LATE_INTERVALS:
        raise CatalogueError(
            f"{where}.offline_after' must be longer than two intervals (a device is late first)"
        )
    battery_field = table.get(
        "battery_field", DEFAULT_BATTERY_FIELD if DEFAULT_BATTERY_FIELD in fields else None
    )
    if battery_field is not None:
        if not isinstance(battery_field, str) or battery_field not in fields:
            raise CatalogueError(f"{where}.battery_field' must name a field of the layout")
        if fields[battery_field].storage not in ("integer", "float"):
            raise CatalogueError(f"{where}.battery_field' must name a numeric field")
    low = table.get("battery_low", DEFAULT_BATTERY_LOW)
    if isinstance(low, bool) or not isinstance(low, int | float) or not math.isfinite(low):
        raise CatalogueError(f"{where}.battery_low' must be a number")
    return StatusSpec(interval, offline_after, battery_field, float(low))


def _duration(where: str, table: dict[str, object], key: str, default: float) -> float:
    if key not in table:
        return default
    seconds = parse_seconds(table[key]) if isinstance(table[key], str) else None
    if seconds is None:
        raise CatalogueError(f"{where}.{key}' must be a duration such as 90s, 10m, 6h or 2d")
    return seconds


def _build_field(path: Path, slot: Slot, table: object) -> FieldSpec:
    where = f"{path}: field 'fields.{slot.name}"
    if slot.name in RESERVED_FIELDS:
        raise CatalogueError(f"{where}' uses a reserved name")
    if not isinstance(table, dict):
        raise CatalogueError(f"{where}' is missing (every layout field needs unit and range)")
    unit = table.get("unit", "")
    if not isinstance(unit, str):
        raise CatalogueError(f"{where}.unit' must be a string")
    scale = table.get("scale", 1)
    if (
        isinstance(scale, bool)
        or not isinstance(scale, int | float)
        or not math.isfinite(scale)
        or scale <= 0
    ):
        raise CatalogueError(f"{where}.scale' must be a positive number")
    bounds: list[float | None] = []
    for key in ("min", "max"):
        value = table.get(key)
        if value is not None and (isinstance(value, bool) or not isinstance(value, int | float)):
            raise CatalogueError(f"{where}.{key}' must be a number")
        bounds.append(value)
    if bounds[0] is not None and bounds[1] is not None and bounds[0] > bounds[1]:
        raise CatalogueError(f"{where}.min' is above its max")
    description = table.get("description", "")
    if not isinstance(description, str):
        raise CatalogueError(f"{where}.description' must be a string")
    extra = set(table) - {"unit", "scale", "min", "max", "description"}
    if extra:
        raise CatalogueError(f"{where}.{sorted(extra)[0]}' is not a known key")
    scale_value: float = float(scale) if scale != 1 else 1
    return FieldSpec(
        slot.name,
        slot,
        unit,
        scale_value,
        bounds[0],
        bounds[1],
        description,
        _decimals(scale_value),
    )


def _decimals(scale: float) -> int:
    """Decimal places a scale introduces: 0.01 -> 2, 0.1 -> 1, 2 -> 0."""
    text = f"{scale:.10f}".rstrip("0")
    return len(text.split(".")[1]) if "." in text else 0
