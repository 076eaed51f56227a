"""Sigfox radio realism: which base stations hear a transmission, their RSSI and SNR, losses.

Pure: transmission `k` of a device is heard (or lost) the same way every time it is computed.
"""

from __future__ import annotations

from dataclasses import dataclass

from sigfox.limits import SEQ_MODULO
from simulators.noise import gauss, key_of, unit

STATION_POOL = 24  # base stations around the simulated town; devices share them
MAX_STATIONS = 3  # Sigfox reports up to three stations per transmission
# Share of transmissions heard by 1, 2 and 3 stations (cumulative); Sigfox's spatial diversity.
STATION_COUNT_CDF = (0.3, 0.7, 1.0)
RSSI_FLOOR, RSSI_CEIL = -147.0, -60.0  # dBm; Sigfox's sensitivity is about -142 dBm
SNR_FLOOR, SNR_CEIL = 0.5, 40.0  # dB


@dataclass(frozen=True, slots=True)
class Reception:
    """One station's copy of a transmission."""

    station: str
    rssi: float
    snr: float


def station_ids() -> tuple[str, ...]:
    """The town's base stations: 4 hex digits each, distinct, the same for every seed."""
    ids: list[str] = []
    n = 0
    while len(ids) < STATION_POOL:
        sid = f"{key_of('station', n) & 0xFFFF:04X}"
        n += 1
        if sid not in ids:
            ids.append(sid)
    return tuple(ids)


STATIONS = station_ids()


@dataclass(frozen=True, slots=True)
class Radio:
    """A device's radio neighbourhood: its nearby stations, how far they are, how lossy."""

    key: int
    stations: tuple[str, ...]  # 3..5 nearby stations
    offsets: tuple[float, ...]  # dB each station is below the device's best signal
    base_rssi: float  # dBm at the nearest station
    loss: float  # share of transmissions no station hears

    def receive(self, k: int) -> tuple[Reception, ...]:
        """The stations that heard transmission `k`, first to answer first; empty when lost."""
        if unit(self.key ^ 1, k) < self.loss:
            return ()
        u = unit(self.key ^ 2, k)
        count = next(i + 1 for i, edge in enumerate(STATION_COUNT_CDF) if u < edge)
        # which nearby stations: the ones with the highest random draw for this transmission
        order = sorted(range(len(self.stations)), key=lambda i: unit(self.key ^ 3, k * 8 + i))
        chosen = order[: min(count, MAX_STATIONS)]
        out: list[Reception] = []
        seen: set[float] = set()
        for n, i in enumerate(chosen):
            fading = 3.0 * gauss(self.key ^ 4, k * 8 + i)
            rssi = round(
                min(RSSI_CEIL, max(RSSI_FLOOR, self.base_rssi - self.offsets[i] + fading)), 1
            )
            while rssi in seen:  # distinct stations never report the very same level
                rssi = round(rssi - 0.1, 1)
            seen.add(rssi)
            snr = 0.4 * (rssi - RSSI_FLOOR) + 1.5 * gauss(self.key ^ 5, k * 8 + n)
            out.append(
                Reception(self.stations[i], rssi, round(min(SNR_CEIL, max(SNR_FLOOR, snr)), 2))
            )
        return tuple(out)


def radio_for(seed: int, device_id: str, loss: float) -> Radio:
    key = key_of(seed, "radio", device_id)
    n = 3 + int(unit(key, -1) * 3)  # 3..5 stations in range
    picks = sorted(range(STATION_POOL), key=lambda i: unit(key, 100 + i))[:n]
    offsets = tuple(0.0 if j == 0 else 2.0 + 12.0 * unit(key, 200 + j) for j in range(n))
    base = -100.0 - 30.0 * unit(key, -3)  # from close to a station to the edge of coverage
    return Radio(key, tuple(STATIONS[i] for i in picks), offsets, base, loss)


def seq_number(offset: int, k: int) -> int:
    """The device's 12-bit counter for slot `k`: one step per transmission, heard or not."""
    return (offset + k) % SEQ_MODULO
