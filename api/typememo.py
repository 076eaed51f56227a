"""Finding a device's type, remembered per process since a device never changes type."""

from __future__ import annotations

from dataclasses import dataclass

from api.problems import not_found
from influx import query as q
from influx.client import InfluxClient

# Enough for a large fleet; past it the memo starts over rather than grow without bound.
MAX_REMEMBERED = 100_000


@dataclass(frozen=True, slots=True)
class Seen:
    """A device as the `uplink` measurement knows it."""

    type: str
    last_seen_ns: int
    last_seq: int | None


class TypeMemo:
    """device -> type; only devices that exist are remembered."""

    def __init__(self) -> None:
        self._types: dict[str, str] = {}

    def get(self, device: str) -> str | None:
        return self._types.get(device)

    def remember(self, device: str, type_name: str) -> None:
        if len(self._types) >= MAX_REMEMBERED:
            self._types.clear()
        self._types[device] = type_name


async def device_type(reader: InfluxClient, memo: TypeMemo, device: str) -> str:
    """The device's type, or a 404 when no message of it is stored."""
    known = memo.get(device)
    if known is not None:
        return known
    (series,) = await reader.query(q.device_type(device))
    if not series:
        raise not_found(f"no device {device} has sent anything", "device")
    # a device id reused under another type: the most recent one wins
    newest = max(series, key=lambda s: s.values[0][0] if s.values else 0)
    type_name = newest.tags.get("type", "")
    memo.remember(device, type_name)
    return type_name
