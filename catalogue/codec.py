"""Sigfox's custom-format payload grammar: one engine, decoding for ingest, encoding for simulators.

A layout is a space-separated list of `name:byte_index:type:length[:endianness[:bit_offset]]`:

| type    | length means                  | value  | notes                                         |
| ------- | ----------------------------- | ------ | --------------------------------------------- |
| `uint`  | bits, 1..64                   | int    | whole bytes, `endianness` (default big)       |
| `int`   | bits, 1..64, two's complement | int    | as `uint`, signed                             |
| `bool`  | bit position 0..7 (0 = LSB)   | bool   |                                               |
| `float` | 32 or 64 bits, IEEE 754       | float  |                                               |
| `char`  | bytes                         | str    | ASCII                                         |

Bit fields, as Sigfox's own documentation and KCCS's (its operator in Japan) define them: a
`uint`/`int` of at most 8 bits may give a bit offset after the endianness, which may be left
empty (`status:1:uint:4::3`). The offset is the position of the field's MOST significant bit in
its byte (7 = the top bit) and the field reads downward from it; without one the field starts at
bit 7. So `s:0:uint:2:2` on `04` reads bits 2..1 and gives 2. (A lone offset in the endianness
place, `mode::uint:3:4`, is read as the offset too.)

An empty byte index follows Sigfox's pointer: the first field is at byte 0; a `bool` reads the
current byte (the one the previous field left the pointer on); any other field reads the byte
after the last one read when the previous field gave no bit offset, and the same byte when it gave
one. Example: `speed::uint:8 direction::uint:4 status:1:uint:4::3` on `3ca5` gives speed 60,
direction 10 (byte 1, bits 7..4) and status 5 (byte 1, bits 3..0). Decoding is pure: no I/O, no
clock.
"""

from __future__ import annotations

import math
import re
import struct
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Literal

from sigfox.limits import MAX_PAYLOAD_BYTES

Kind = Literal["uint", "int", "bool", "float", "char"]
Endianness = Literal["big", "little"]
Value = int | float | bool | str

_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_\-#]*\Z")


class CodecError(ValueError):
    """A layout or payload the codec cannot handle; `field` names the part at fault when known."""

    def __init__(self, message: str, field: str | None = None) -> None:
        super().__init__(message)
        self.field = field


@dataclass(frozen=True, slots=True)
class Slot:
    """One field of a layout, resolved to absolute positions."""

    name: str
    kind: Kind
    byte: int  # first byte
    size: int  # bits for uint/int/float/bool(1), bytes*8 for char
    endianness: Endianness
    # The field's LOWEST bit inside `byte` (the right shift that reads it), for bools and bit
    # fields; None for whole-byte fields. (The grammar's bit offset is the field's top bit.)
    shift: int | None

    @property
    def end(self) -> int:
        """One past the last byte this field touches."""
        if self.shift is not None:
            return self.byte + 1
        return self.byte + self.size // 8


@dataclass(frozen=True, slots=True)
class Layout:
    """A parsed layout: its slots and the payload length it needs."""

    source: str
    slots: tuple[Slot, ...]
    # Derived once: both are read for every uplink (a property cost ~1 s per 60,000 messages).
    length: int = field(init=False)
    names: tuple[str, ...] = field(init=False)
    # A precompiled struct for layouts of byte-aligned whole ints and floats (None otherwise):
    # one C call per payload instead of one Python `_read` per field.
    fast: _FastPath | None = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "length", max((s.end for s in self.slots), default=0))
        object.__setattr__(self, "names", tuple(s.name for s in self.slots))
        object.__setattr__(self, "fast", _fast_path(self.slots, self.length))

    def decode(self, payload: bytes) -> dict[str, Value]:
        """Raw values of every field; a payload shorter than the layout raises `CodecError`."""
        return dict(zip(self.names, self.decode_values(payload), strict=True))

    def decode_values(self, payload: bytes) -> tuple[Value, ...]:
        """`decode`'s values in slot order, without the dict (the ingest hot path)."""
        fast = self.fast
        if fast is None:
            return tuple(self.decode_generic(payload).values())
        self._check_length(payload)
        values = fast.unpack(payload)
        for i, s in fast.floats:  # in slot order, so the same field is named as below
            if not math.isfinite(values[i]):  # type: ignore[arg-type]  # a float
                raise CodecError(f"field {s.name!r} is not a finite number", s.name)
        return values

    def decode_generic(self, payload: bytes) -> dict[str, Value]:
        """`decode` field by field: for every layout, and the reference for the fast path."""
        self._check_length(payload)
        return {s.name: _read(s, payload) for s in self.slots}

    def _check_length(self, payload: bytes) -> None:
        if len(payload) < self.length:
            raise CodecError(
                f"payload is {len(payload)} bytes, layout needs {self.length}", field=None
            )

    def encode(self, values: dict[str, Value]) -> bytes:
        """The payload for raw `values` (all fields required); out-of-width values raise."""
        buf = bytearray(self.length)
        for s in self.slots:
            if s.name not in values:
                raise CodecError(f"no value for field {s.name!r}", field=s.name)
            _write(s, buf, values[s.name])
        return bytes(buf)


@dataclass(frozen=True, slots=True)
class _FastPath:
    """A layout as one `struct.Struct`: values come out in slot order."""

    unpack: Callable[[bytes], tuple[Value, ...]]  # `unpack_from`: longer payloads allowed
    floats: tuple[tuple[int, Slot], ...]  # checked for finiteness after unpacking, in slot order


_INT_CODES = {8: "b", 16: "h", 32: "i", 64: "q"}


def _fast_path(slots: tuple[Slot, ...], length: int) -> _FastPath | None:
    """The struct for `slots` if each is a whole-byte int or a float, none overlap and all
    multi-byte fields share one byte order; else None (the generic path handles it)."""
    orders = {s.endianness for s in slots if s.size > 8}
    if len(orders) > 1 or any(s.kind not in ("uint", "int", "float") for s in slots):
        return None
    if any(s.shift is not None or s.size not in _INT_CODES for s in slots):
        return None
    ordered = sorted(slots, key=lambda s: s.byte)
    fmt = [">" if orders == {"big"} or not orders else "<"]
    cursor = 0
    for s in ordered:
        if s.byte < cursor:
            return None  # overlapping fields
        fmt.append("x" * (s.byte - cursor))
        code = ("f" if s.size == 32 else "d") if s.kind == "float" else _INT_CODES[s.size]
        fmt.append(code.upper() if s.kind == "uint" else code)
        cursor = s.end
    fmt.append("x" * (length - cursor))
    if [s.name for s in ordered] != [s.name for s in slots]:
        return None  # struct returns byte order; keep the slot order dicts are built in
    st = struct.Struct("".join(fmt))
    floats = tuple((i, s) for i, s in enumerate(slots) if s.kind == "float")
    return _FastPath(st.unpack_from, floats)


def parse_layout(source: str) -> Layout:
    """Parse a layout string; any mistake raises `CodecError` naming the field."""
    slots: list[Slot] = []
    # Sigfox's pointer: where a field with an empty byte index is read (see the module doc).
    after_bool = 0  # for a bool: the byte the previous field left the pointer on
    after_other = 0  # for any other type
    seen: set[str] = set()
    for token in source.split():
        parts = token.split(":")
        if len(parts) < 4:
            raise CodecError(f"field {token!r}: expected name:byte_index:type:length", token)
        name = parts[0]
        if not _NAME.match(name):
            raise CodecError(f"field {token!r}: bad name {name!r}", name)
        if name in seen:
            raise CodecError(f"field {name!r} appears twice", name)
        seen.add(name)
        slot, has_offset = _make_slot(token, parts, after_bool, after_other)
        if slot.end > MAX_PAYLOAD_BYTES:
            raise CodecError(
                f"field {name!r} ends at byte {slot.end}, past {MAX_PAYLOAD_BYTES} bytes", name
            )
        slots.append(slot)
        if has_offset:  # the pointer stays on this byte, for every type
            after_bool = after_other = slot.byte
        elif slot.kind == "bool":  # a bool does not move the pointer; the others go past it
            after_bool, after_other = slot.byte, slot.byte + 1
        else:
            after_bool = after_other = slot.end
    if not slots:
        raise CodecError("layout has no fields")
    return Layout(source=" ".join(source.split()), slots=tuple(slots))


def _make_slot(
    token: str, parts: list[str], after_bool: int, after_other: int
) -> tuple[Slot, bool]:
    """The slot of one field, and whether it gave a bit offset (which keeps the pointer)."""
    name, index, kind, length, *options = parts
    if not length.isdigit():
        raise CodecError(f"field {token!r}: length {length!r} is not a number", name)
    size = int(length)
    endianness, offset = _options(token, name, options)
    if index == "":
        byte = after_bool if kind == "bool" else after_other
    elif index.isdigit():
        byte = int(index)
    else:
        raise CodecError(f"field {token!r}: byte index {index!r} is not a number", name)
    slot = _typed_slot(token, name, kind, byte=byte, size=size, endianness=endianness, top=offset)
    return slot, offset is not None


def _options(token: str, name: str, options: list[str]) -> tuple[Endianness, int | None]:
    """`[endianness[:bit_offset]]`: the endianness may be empty (as KCCS writes it), and a lone
    number in its place is the offset."""
    if len(options) > 2:
        raise CodecError(f"field {token!r}: expected at most :endianness:bit_offset", name)
    endianness: Endianness = "big"
    offset: int | None = None
    for i, opt in enumerate(options):
        if opt in ("big-endian", "little-endian") and i == 0:
            endianness = "big" if opt == "big-endian" else "little"
        elif opt.isdigit() and (i == 1 or len(options) == 1):
            offset = int(opt)
            if offset > 7:
                raise CodecError(f"field {token!r}: bit offset {opt} is not 0..7", name)
        elif opt.isdigit():
            raise CodecError(f"field {token!r}: the bit offset comes after the endianness", name)
        elif opt != "":
            raise CodecError(f"field {token!r}: unknown option {opt!r}", name)
    return endianness, offset


def _typed_slot(
    token: str,
    name: str,
    kind: str,
    *,
    byte: int,
    size: int,
    endianness: Endianness,
    top: int | None,
) -> Slot:
    """The slot for `kind`; `top` is the bit offset given (the field's most significant bit)."""
    if kind == "bool":
        if size > 7 or top is not None:
            raise CodecError(f"field {token!r}: bool takes a bit position 0..7", name)
        return Slot(name, "bool", byte, 1, endianness, size)
    if kind in ("uint", "int"):
        if not 1 <= size <= 64:
            raise CodecError(f"field {token!r}: {kind} length must be 1..64 bits", name)
        shift = None
        if size < 8 or top is not None:
            if size > 8:
                raise CodecError(f"field {token!r}: a bit offset needs a length of 8 or less", name)
            top = 7 if top is None else top
            if size > top + 1:
                raise CodecError(
                    f"field {token!r}: {size} bits down from bit {top} leave the byte", name
                )
            shift = top + 1 - size
        elif size % 8:
            raise CodecError(f"field {token!r}: {kind} over 8 bits must be whole bytes", name)
        return Slot(name, "uint" if kind == "uint" else "int", byte, size, endianness, shift)
    if kind == "float":
        if size not in (32, 64) or top is not None:
            raise CodecError(f"field {token!r}: float length must be 32 or 64", name)
        return Slot(name, "float", byte, size, endianness, None)
    if kind == "char":
        if not 1 <= size <= MAX_PAYLOAD_BYTES or top is not None:
            raise CodecError(
                f"field {token!r}: char length must be 1..{MAX_PAYLOAD_BYTES} bytes", name
            )
        return Slot(name, "char", byte, size * 8, endianness, None)
    raise CodecError(f"field {token!r}: unknown type {kind!r}", name)


def _read(s: Slot, payload: bytes) -> Value:
    if s.kind == "bool":
        return bool(payload[s.byte] >> (s.shift or 0) & 1)
    if s.kind == "char":
        raw = payload[s.byte : s.end]
        try:
            return raw.decode("ascii")
        except UnicodeDecodeError as exc:
            raise CodecError(f"field {s.name!r} is not ASCII", s.name) from exc
    if s.kind == "float":
        fmt = (">" if s.endianness == "big" else "<") + ("f" if s.size == 32 else "d")
        value = float(struct.unpack_from(fmt, payload, s.byte)[0])
        if not math.isfinite(value):
            raise CodecError(f"field {s.name!r} is not a finite number", s.name)
        return value
    if s.shift is not None:
        raw_int = payload[s.byte] >> s.shift & ((1 << s.size) - 1)
    else:
        raw_int = int.from_bytes(payload[s.byte : s.end], s.endianness)
    if s.kind == "int" and raw_int >= 1 << (s.size - 1):
        raw_int -= 1 << s.size
    return raw_int


def _write(s: Slot, buf: bytearray, value: Value) -> None:
    if s.kind == "bool":
        if not isinstance(value, bool):
            raise CodecError(f"field {s.name!r} needs a bool", s.name)
        buf[s.byte] |= int(value) << (s.shift or 0)
        return
    if s.kind == "char":
        if not isinstance(value, str):
            raise CodecError(f"field {s.name!r} needs a string", s.name)
        raw = value.encode("ascii", errors="strict") if value.isascii() else None
        if raw is None or len(raw) != s.size // 8:
            raise CodecError(f"field {s.name!r} needs {s.size // 8} ASCII characters", s.name)
        buf[s.byte : s.end] = raw
        return
    if s.kind == "float":
        if (
            isinstance(value, bool)
            or not isinstance(value, int | float)
            or not math.isfinite(value)
        ):
            raise CodecError(f"field {s.name!r} needs a finite number", s.name)
        fmt = (">" if s.endianness == "big" else "<") + ("f" if s.size == 32 else "d")
        struct.pack_into(fmt, buf, s.byte, value)
        return
    if isinstance(value, bool) or not isinstance(value, int):
        raise CodecError(f"field {s.name!r} needs an integer", s.name)
    lo, hi = (
        (0, (1 << s.size) - 1)
        if s.kind == "uint"
        else (-(1 << (s.size - 1)), (1 << (s.size - 1)) - 1)
    )
    if not lo <= value <= hi:
        raise CodecError(f"field {s.name!r}: {value} does not fit {s.kind}:{s.size}", s.name)
    raw_int = value & ((1 << s.size) - 1)
    if s.shift is not None:
        buf[s.byte] |= raw_int << s.shift
    else:
        buf[s.byte : s.end] = raw_int.to_bytes(s.size // 8, s.endianness)
