"""A device type as the rest of the backend uses it: its fields, status rules and decode plan.

`DeviceType.decode` is the fast path of `FieldSpec.to_physical` and `in_range` (the slower
twin, kept equal by tests/unit/test_catalogue.py): `decode` runs for every uplink, the
`FieldSpec` methods where one value is converted. `catalogue.loader` builds these from the
data files and checks them; `Catalogue` holds them by name.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal, NamedTuple

from catalogue.codec import Layout, Slot, Value

StorageType = Literal["integer", "float", "boolean", "string"]

# DESIGN section 10's defaults: a report every 10 minutes, offline after six missed intervals,
# the battery alarm at 15 (%, the built-in types' battery unit).
DEFAULT_INTERVAL = 600.0
OFFLINE_INTERVALS = 6
DEFAULT_BATTERY_FIELD = "battery"
DEFAULT_BATTERY_LOW = 15.0
# `late` is past two intervals, so `offline_after` must leave room for it.
LATE_INTERVALS = 2


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
    # Whether a field holds text (`char`): its values then need JSON's own escaping, where
    # numbers and bools are written alike by line protocol and JSON (`ingest.eventbodies`).
    has_text: bool = field(init=False, repr=False, compare=False)
    # The fields stored as InfluxDB floats, in field order: their values read back are floats
    # (JSON may have written 21.0 as 21), as the API returns them.
    float_fields: tuple[str, ...] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "has_text", any(s.kind == "char" for s in self.layout.slots))
        floats = tuple(n for n, spec in self.fields.items() if spec.storage == "float")
        object.__setattr__(self, "float_fields", floats)
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
