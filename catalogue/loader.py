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
from pathlib import Path

from catalogue.codec import CodecError, Slot, parse_layout
from catalogue.devicetype import (
    DEFAULT_BATTERY_FIELD,
    DEFAULT_BATTERY_LOW,
    DEFAULT_INTERVAL,
    LATE_INTERVALS,
    OFFLINE_INTERVALS,
    Catalogue,
    DeviceType,
    FieldSpec,
    StatusSpec,
)
from catalogue.durations import parse_seconds

BUILTIN_DIR = Path(__file__).with_name("types")
_TYPE_NAME = re.compile(r"^[a-z][a-z0-9_]{0,31}\Z")
# Field names become InfluxDB field keys and API names next to these, so they must not clash.
RESERVED_FIELDS = frozenset({"time", "device", "type", "seq", "rssi", "snr", "stations", "station"})
# A type's name is its measurement's name; these measurements are the backend's own.
RESERVED_TYPES = frozenset({"uplink", "rejected", "event"})
STATUS_KEYS = frozenset({"interval", "offline_after", "battery_field", "battery_low"})


class CatalogueError(Exception):
    """A catalogue file that cannot be used; the message names the file and the field."""


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
