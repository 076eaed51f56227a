"""A field's valid range and raw grid: the values the codec can carry, for the device models."""

from __future__ import annotations

import math
import struct

from catalogue import FieldSpec
from catalogue.codec import Value


def raw_bounds(spec: FieldSpec) -> tuple[float, float]:
    """What the slot can hold, as raw numbers."""
    slot = spec.slot
    if slot.kind == "uint":
        return 0, (1 << slot.size) - 1
    if slot.kind == "int":
        return -(1 << (slot.size - 1)), (1 << (slot.size - 1)) - 1
    limit = 3.0e38 if slot.size == 32 else 1.0e300
    return -limit, limit


def physical_bounds(spec: FieldSpec) -> tuple[float, float]:
    """The valid range, narrowed to what the slot can carry after scaling."""
    rlo, rhi = raw_bounds(spec)
    lo = rlo * spec.scale if spec.minimum is None else max(spec.minimum, rlo * spec.scale)
    hi = rhi * spec.scale if spec.maximum is None else min(spec.maximum, rhi * spec.scale)
    if spec.slot.kind == "float" and spec.minimum is None and spec.maximum is None:
        lo, hi = -1000.0, 1000.0  # an unbounded float: a plausible sensor span
    return lo, hi


def quantize(spec: FieldSpec, target: float | bool | str) -> Value:
    """The physical value the codec will carry for `target`: on the raw grid, inside the range."""
    kind = spec.slot.kind
    if kind in ("bool", "char"):
        return target
    assert not isinstance(target, str)  # noqa: S101  # numeric fields get numeric targets
    lo, hi = physical_bounds(spec)
    if kind == "float":
        margin = (hi - lo) * 1e-4  # float32 rounding must not carry a value past a bound
        x = min(hi - margin, max(lo + margin, float(target)))
        if spec.slot.size == 32:
            x = struct.unpack("f", struct.pack("f", x))[0]
        return x
    raw_lo = math.ceil(lo / spec.scale - 1e-9)
    raw_hi = math.floor(hi / spec.scale + 1e-9)
    raw = min(raw_hi, max(raw_lo, round(float(target) / spec.scale)))
    return spec.to_physical(raw)
