"""The uplink body: Sigfox callback names, numbers also accepted as numeric strings."""

from __future__ import annotations

from typing import Annotated

from pydantic import BaseModel, ConfigDict, Field, StringConstraints

from sigfox.limits import DEVICE_ID, PAYLOAD_HEX, SEQ_MODULO

MAX_BODY_BYTES = 1024  # DESIGN section 1: a larger body is rejected


# Case is folded inside pydantic-core (no Python call per uplink); the patterns ignore case.
HexId = Annotated[str, StringConstraints(pattern=DEVICE_ID, to_upper=True)]
StationId = Annotated[str, StringConstraints(pattern=r"^[0-9A-Fa-f]{1,16}$", to_upper=True)]
HexData = Annotated[str, StringConstraints(pattern=PAYLOAD_HEX, to_lower=True)]


# Sigfox sends `null` for a value it does not have (an `rssi` it did not measure): JSON null
# means absent below. Through a template that quotes every value (`"rssi":"{rssi}"`, DESIGN
# section 11) the same null arrives as the text "null", which means absent too.
NULLABLE_KEYS = ("rssi", "snr")


def absent_nulls(doc: dict[str, object]) -> dict[str, object]:
    """`doc` with the text "null" of `rssi` and `snr` (also in `duplicates`) made None.

    Called only once pydantic's one-pass JSON parser has refused a body (ingest/validate.py),
    so bodies with real numbers pay nothing for it.
    """
    out = doc
    for key in NULLABLE_KEYS:
        if out.get(key) == "null":
            out = {**out, key: None}
    dups = out.get("duplicates")
    if isinstance(dups, list) and any(
        isinstance(d, dict) and "null" in (d.get(k) for k in NULLABLE_KEYS) for d in dups
    ):
        fixed = [absent_nulls(d) if isinstance(d, dict) else d for d in dups]
        out = {**out, "duplicates": fixed}
    return out


class DuplicateStation(BaseModel):
    """One other station in Sigfox's advanced callback `duplicates` list."""

    model_config = ConfigDict(extra="ignore", frozen=True)

    bsId: StationId  # Sigfox's own key
    rssi: float | None = Field(None, ge=-200, le=50, allow_inf_nan=False)
    snr: float | None = Field(None, ge=-50, le=100, allow_inf_nan=False)
    nbRep: int | None = Field(None, ge=0, le=16)


class Uplink(BaseModel):
    """A validated uplink body. `device` is upper-case, `data` lower-case hex."""

    model_config = ConfigDict(extra="ignore", frozen=True, str_max_length=MAX_BODY_BYTES)

    device: HexId
    time: int = Field(ge=0, le=2**33)
    seqNumber: int = Field(ge=0, lt=SEQ_MODULO)  # Sigfox's own key
    data: HexData
    station: StationId | None = None
    rssi: float | None = Field(None, ge=-200, le=50, allow_inf_nan=False)
    snr: float | None = Field(None, ge=-50, le=100, allow_inf_nan=False)
    duplicate: bool | None = None
    duplicates: list[DuplicateStation] | None = Field(None, max_length=16)
    deviceTypeId: str | None = Field(None, max_length=64)

    @property
    def payload(self) -> bytes:
        return bytes.fromhex(self.data)
