"""Every response body of the API, as pydantic models (they are also the OpenAPI schemas)."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field


class Problem(BaseModel):
    """An error, as RFC 9457 problem details (`application/problem+json`)."""

    type: str = Field(examples=["urn:sigfox-telemetry:problem:invalid-parameter"])
    title: str
    status: int
    detail: str
    parameter: str | None = Field(None, description="The request parameter at fault")


class FieldInfo(BaseModel):
    unit: str


class FieldDescription(BaseModel):
    name: str
    unit: str
    description: str
    type: str = Field(description="InfluxDB field type: integer, float, boolean or string")
    scale: float
    min: float | None
    max: float | None


class DeviceTypeOut(BaseModel):
    name: str
    description: str
    layout: str = Field(description="Payload layout in Sigfox's custom-format grammar")
    payload_length: int
    fields: list[FieldDescription]


class DeviceTypes(BaseModel):
    types: list[DeviceTypeOut]


class Alarm(BaseModel):
    kind: str = Field(description="`offline` or `battery_low`", examples=["offline"])
    since: str = Field(description="When the condition began (RFC 3339 UTC)")


class DeviceStatus(BaseModel):
    """DESIGN section 10: `online` (heard within two intervals), `late`, `offline`."""

    state: str = Field(examples=["online"])
    since: str = Field(description="When the device entered this state (RFC 3339 UTC)")
    alarms: list[Alarm]


class Device(BaseModel):
    device: str = Field(examples=["1A2B3C"])
    type: str
    last_seen: str = Field(description="Time of the newest stored message (RFC 3339 UTC)")
    last_seq: int | None
    status: DeviceStatus


class FleetAlarm(Alarm):
    device: str
    type: str


class Alarms(BaseModel):
    alarms: list[FleetAlarm]


class FleetType(BaseModel):
    type: str
    devices: int
    states: dict[str, int] = Field(description="Devices per state: online, late, offline")
    alarms: dict[str, int] = Field(description="Active alarms per kind")


class Fleet(BaseModel):
    types: list[FleetType]


class Devices(BaseModel):
    devices: list[Device]


class Point(BaseModel):
    """A time and the values of the requested fields (null when not stored)."""

    model_config = ConfigDict(extra="allow")
    time: str


class DeviceDetail(Device):
    latest: Point | None
    messages: int = Field(description="Messages stored (copies merged)")
    lost: int = Field(description="Uplinks never heard, from sequence gaps across the wrap")
    duplicates: int = Field(description="Copies heard by further stations, merged away")
    rssi: float | None = Field(description="Mean RSSI of the best station, dBm")
    out_of_range: int = Field(description="Decoded values not stored for being out of range")


class History(BaseModel):
    device: str
    type: str
    fields: dict[str, FieldInfo]
    points: list[Point]
    next: str | None = Field(description="Cursor for the next page; null when there is no more")


class Message(BaseModel):
    time: str
    seq: int | None
    data: str | None
    stations: int | None
    station: str | None
    rssi: float | None
    snr: float | None


class Messages(BaseModel):
    device: str
    messages: list[Message]
    next: str | None = Field(description="Cursor for the next page; null when there is no more")


class Health(BaseModel):
    status: str


class DownlinkIn(BaseModel):
    """A downlink to queue: 8 bytes as 16 hex digits (DESIGN section 11)."""

    model_config = ConfigDict(extra="forbid")

    data: str = Field(pattern=r"^[0-9A-Fa-f]{16}$", examples=["0102030405060708"])
    type: str | None = Field(
        None,
        max_length=64,
        description="The device's type; needed only for a device that has sent nothing yet",
    )


class DownlinkOut(BaseModel):
    id: str
    device: str
    type: str | None
    data: str
    status: str = Field(description="`queued`, `sent` or `cancelled`")
    created: str
    sent: str | None = Field(None, description="When it went out, for a sent downlink")
    seq: int | None = Field(None, description="The uplink's seqNumber that took it")


class Downlinks(BaseModel):
    device: str
    downlinks: list[DownlinkOut]


class LinkHealth(BaseModel):
    """How the network hears a device: its newest message, and the counts over the window."""

    stations: int | None = Field(description="Stations that heard the newest message")
    station: str | None = Field(description="The best station of the newest message")
    rssi: float | None = Field(description="RSSI of the newest message at its best station, dBm")
    snr: float | None = Field(description="SNR of the newest message at its best station, dB")
    messages: int = Field(description="Messages stored in the window (copies merged)")
    lost: int = Field(description="Uplinks never heard in the window, from sequence gaps")
    loss: float | None = Field(description="lost / (messages + lost); null with no message")


class SnapshotType(BaseModel):
    name: str
    description: str
    fields: dict[str, FieldInfo] = Field(description="Every field of the type, in layout order")
    series_fields: list[str] = Field(description="The numeric fields that have a series")


class SnapshotDevice(BaseModel):
    device: str = Field(examples=["1A2B3C"])
    type: str
    last_seen: str = Field(description="Time of the newest stored message (RFC 3339 UTC)")
    last_seq: int | None
    latest: Point | None = Field(description="The newest decoded values")
    status: DeviceStatus | None = Field(
        description="State and alarms; null while this API has no status engine running"
    )
    link: LinkHealth
    series: dict[str, list[float | None]] = Field(
        description="Per numeric field, the mean of each bucket of the window, oldest first; "
        "null for a bucket without data"
    )


class Snapshot(BaseModel):
    """The whole fleet at once, for the live page: few requests, whatever the fleet's size."""

    time: str = Field(description="When the snapshot was taken (RFC 3339 UTC)")
    start: str = Field(description="Start of the window and of its first bucket (RFC 3339 UTC)")
    every: str = Field(examples=["1h"], description="Length of one bucket of `series`")
    buckets: int = Field(description="Number of buckets in every series")
    types: list[SnapshotType]
    devices: list[SnapshotDevice] = Field(description="Every device seen, by type then id")
