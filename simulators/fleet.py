"""The simulated fleet: device ids, each device's model, and what one transmission puts on the air.

`transmit(device, k)` is pure: slot `k` of a device always has the same time, values, payload,
sequence number and receiving stations; `bodies()` turns it into Sigfox callback bodies, one per
station that heard it (DESIGN section 1).
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass

from catalogue import Catalogue, DeviceType
from catalogue.codec import Value
from sigfox.limits import SEQ_MODULO
from simulators.behaviour import Generic, Model
from simulators.home import PlantSensor, WeatherStation
from simulators.noise import key_of, mix, unit
from simulators.people import Scale, Wristband
from simulators.radio import Radio, Reception, radio_for, seq_number
from simulators.schedule import Schedule, schedule_for


@dataclass(frozen=True, slots=True)
class Device:
    """One simulated device and everything that makes it behave as itself."""

    dtype: DeviceType
    index: int
    device_id: str  # 1..8 upper-case hex digits
    model: Model
    schedule: Schedule
    radio: Radio
    seq_offset: int  # where its counter stood at slot 0
    type_id: str  # Sigfox's deviceTypeId: 24 hex digits, one per device type


@dataclass(frozen=True, slots=True)
class Transmission:
    """Slot `k` of a device: what it measured and which stations heard it (none: lost)."""

    device: Device
    k: int
    seq: int
    device_time: float
    values: dict[str, Value]
    payload: bytes
    receptions: tuple[Reception, ...]


def device_id(seed: int, type_name: str, index: int, taken: set[str]) -> str:
    """1..8 upper-case hex digits from seed, type and index; distinct across the whole fleet."""
    attempt = 0
    while True:
        value = mix(key_of(seed, "device", type_name, index), attempt) & 0xFFFFFFFF
        candidate = f"{value:X}"
        if candidate not in taken:
            return candidate
        attempt += 1


# The built-in types' own models, each for the fields it was written for: a catalogue file that
# changes a built-in type's fields gets the generic model instead.
_DEDICATED: dict[str, tuple[tuple[str, ...], Callable[[DeviceType, int], Model]]] = {
    "wristband": (("heart_rate", "steps", "calories", "sleep_phase", "battery"), Wristband),
    "scale": (("weight", "body_fat", "bmi", "battery"), Scale),
    "weather_station": (("temperature", "humidity", "co2", "pressure", "battery"), WeatherStation),
    "plant_sensor": (("soil_moisture", "light", "temperature", "battery"), PlantSensor),
}


def model_for(dtype: DeviceType, seed: int, device_id: str) -> Model:
    """The dedicated model for a built-in type, else the generic one."""
    key = key_of(seed, "model", dtype.name, device_id)
    dedicated = _DEDICATED.get(dtype.name)
    if dedicated is not None and set(dtype.fields) == set(dedicated[0]):
        return dedicated[1](dtype, key)
    return Generic(dtype, key)


def build_fleet(
    catalogue: Catalogue, type_names: list[str], per_type: int, seed: int, loss: float
) -> list[Device]:
    """`per_type` devices of each named type, the same for the same seed."""
    taken: set[str] = set()
    fleet: list[Device] = []
    for name in type_names:
        dtype = catalogue[name]
        type_id = f"{key_of('device-type', name):016x}{key_of('device-type-2', name) >> 32:08x}"
        for index in range(per_type):
            did = device_id(seed, name, index, taken)
            taken.add(did)
            fleet.append(
                Device(
                    dtype=dtype,
                    index=index,
                    device_id=did,
                    model=model_for(dtype, seed, did),
                    schedule=schedule_for(name, seed, did, dtype.status.interval),
                    radio=radio_for(seed, did, loss),
                    seq_offset=int(unit(key_of(seed, "seq", did), 0) * SEQ_MODULO),
                    type_id=type_id,
                )
            )
    return fleet


def transmit(device: Device, k: int, device_time: float | None = None) -> Transmission:
    """Slot `k` of `device`, at its scheduled time unless `device_time` says otherwise."""
    t = device.schedule.slot_time(k) if device_time is None else device_time
    values = device.model.values(t)
    return Transmission(
        device=device,
        k=k,
        seq=seq_number(device.seq_offset, k),
        device_time=t,
        values=values,
        payload=device.dtype.encode(values),
        receptions=device.radio.receive(k),
    )


def bodies(tx: Transmission, stamp: int) -> list[bytes]:
    """One JSON body per station copy, stamped `stamp` (epoch seconds, never in the future)."""
    out = []
    for n, rx in enumerate(tx.receptions):
        body = {
            "device": tx.device.device_id,
            "time": stamp,
            "seqNumber": tx.seq,
            "data": tx.payload.hex(),
            "station": rx.station,
            "rssi": rx.rssi,
            "snr": rx.snr,
            "duplicate": n > 0,  # Sigfox flags the copies from the second station on
            "deviceTypeId": tx.device.type_id,
        }
        out.append(json.dumps(body, separators=(",", ":")).encode())
    return out
