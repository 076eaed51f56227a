"""What every device model shares, and the models that fit any device type.

A model gives the physical values of a device at device time `t` (epoch seconds), pure of `t`:
it holds no clock and does no I/O. `Behaviour` turns a model's targets into values through
`quantize`, so every value is on the field's raw grid and inside its range. `Generic` is the model
of a type added as a catalogue file; `Draining` wraps any model for `--low-battery`. The built-in
types have models of their own in simulators/people.py and simulators/home.py.
"""

from __future__ import annotations

from typing import Protocol

from catalogue import DeviceType, FieldSpec
from catalogue.codec import Value
from simulators.bounds import physical_bounds, quantize
from simulators.localtime import DAY
from simulators.noise import drift, key_of, smooth, unit

HOUR = 3600.0


class Model(Protocol):
    def values(self, t: float) -> dict[str, Value]:
        """Physical values of every field at device time `t`, each in its valid range."""
        ...


# Simulated people recharge or replace a battery at this level, above the catalogue's
# `battery_low` (15 %): a battery alarm is then what `--low-battery` asks for, not chance.
REPLACED_AT = 20.0


def sawtooth_battery(key: int, t: float, life_days: float, low: float = REPLACED_AT) -> float:
    """A battery drained linearly over `life_days`, then recharged or replaced (100 % again)."""
    period = life_days * DAY
    frac = ((t + unit(key, -77) * period) % period) / period
    return 100.0 - frac * (100.0 - low)


class Behaviour:
    """A model from targets: each field's target value, quantized onto what the codec carries."""

    def __init__(self, dtype: DeviceType, key: int) -> None:
        self.dtype = dtype
        self.key = key

    def values(self, t: float) -> dict[str, Value]:
        targets = self.targets(t)
        return {name: quantize(spec, targets[name]) for name, spec in self.dtype.fields.items()}

    def targets(self, t: float) -> dict[str, float | bool | str]:
        raise NotImplementedError

    def k(self, name: str) -> int:
        return self.key ^ key_of(name)


class Generic(Behaviour):
    """Any type: numbers wander smoothly inside their range, booleans flip now and then, text
    changes daily; a field named like `battery` drains."""

    def targets(self, t: float) -> dict[str, float | bool | str]:
        out: dict[str, float | bool | str] = {}
        for name, spec in self.dtype.fields.items():
            k = self.k(name)
            kind = spec.slot.kind
            if kind == "bool":
                out[name] = smooth(k, t, 6 * HOUR) > 0.4
            elif kind == "char":
                n = spec.slot.size // 8
                day = int(t // DAY)
                out[name] = "".join(chr(65 + int(unit(k, day * 16 + i) * 26)) for i in range(n))
            else:
                lo, hi = physical_bounds(spec)
                if "battery" in name.lower():
                    out[name] = lo + (hi - lo) * sawtooth_battery(k, t, 365.0) / 100.0
                else:
                    wander = 0.65 * drift(k, t, DAY) + 0.35 * smooth(k ^ 9, t, 2 * HOUR)
                    out[name] = (lo + hi) / 2.0 + (hi - lo) / 2.0 * 0.9 * wander
        return out


# `--low-battery`: a draining battery is empty after this many of the device's uplinks, so the
# alarm (at 15 % by default) comes within about nine, minutes into a demo at --speed.
DRAIN_UPLINKS = 10


class Draining:
    """Another model, except that its battery drains from its level at `start` to empty."""

    def __init__(self, inner: Model, spec: FieldSpec, start: float, span: float) -> None:
        self.inner = inner
        self.spec = spec
        self.start = start
        self.span = span

    def values(self, t: float) -> dict[str, Value]:
        values = self.inner.values(t)
        level = values.get(self.spec.name)
        if t <= self.start or isinstance(level, bool) or not isinstance(level, int | float):
            return values
        lo, _ = physical_bounds(self.spec)
        left = max(0.0, 1.0 - (t - self.start) / self.span)
        values[self.spec.name] = quantize(self.spec, lo + (level - lo) * left)
        return values
