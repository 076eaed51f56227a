"""`telemetry redecode`: decode stored raw `uplink` points again with the current catalogue.

After a decoder fix, the `<type>` points are rewritten from the raw bytes kept in `uplink`.
Idempotent: a point's identity is (measurement, device, time), so a second run rewrites the same
points with the same values. A field that the new decoder leaves out (now out of range) keeps
its old value: InfluxDB cannot drop one field of a point; the `out_of_range` count is updated.
"""

from __future__ import annotations

import asyncio
import logging
import re
import time
from dataclasses import dataclass
from typing import Any

import click
import httpx

from catalogue import Catalogue, CodecError
from catalogue.times import NS, TimeTextError, parse_time_ns
from influx import query as q
from influx.client import InfluxClient
from influx.connection import async_client
from influx.errors import ReaderError, WriteError
from influx.lineprotocol import FieldValue, encode_point
from influx.schema import TAG_DEVICE, TAG_TYPE, UPLINK
from influx.statement import Query
from influx.writer import BACKOFF_CAP
from sigfox.limits import DEVICE_ID
from telemetry.backoff import backoff
from telemetry.errors import StartupError
from telemetry.runtime import clean_errors, start
from telemetry.settings import Settings

log = logging.getLogger(__name__)

PAGE = 5000  # rows read per query and lines per write: well under InfluxDB's limits
WRITE_ATTEMPTS = 6  # then give up with one line: a re-run picks up where it failed (idempotent)


def parse_time(value: str | None, default: int) -> int:
    """Epoch seconds from epoch seconds or RFC 3339 (catalogue/times.py); `StartupError` else."""
    if value is None:
        return default
    try:
        return parse_time_ns(value) // NS
    except TimeTextError as exc:
        raise StartupError(f"cannot read time {value!r}: it {exc}") from None


@dataclass
class Totals:
    rewritten: int = 0
    skipped: int = 0
    devices: int = 0


class Redecoder:
    def __init__(self, client: httpx.AsyncClient, settings: Settings, catalogue: Catalogue):
        self.influx = InfluxClient(
            client, settings.influx_database, bind_params=settings.influx_bind_params
        )
        self.catalogue = catalogue
        self.totals = Totals()

    async def rows(self, query: Query) -> list[dict[str, Any]]:
        """The rows of a one-statement query, times in seconds; `ReaderError` when it fails."""
        (series,) = await self.influx.query(query, epoch="s")
        return [row for s in series for row in s.rows()]

    async def devices(self) -> list[str]:
        return sorted(str(r["value"]) for r in await self.rows(q.device_ids()))

    async def run_device(self, device: str, start_s: int, end_s: int) -> None:
        cursor = start_s
        first = True
        while True:
            rows = await self.rows(q.raw_uplinks(device, cursor, end_s, PAGE, inclusive=first))
            first = False
            if not rows:
                return
            await self.write([line for row in rows for line in self.lines(device, row)])
            cursor = int(rows[-1]["time"])
            if len(rows) < PAGE:
                return

    def lines(self, device: str, row: dict[str, Any]) -> list[str]:
        dtype = self.catalogue.types.get(str(row.get("type")))
        ts = int(row["time"]) * NS
        if dtype is None:
            self.totals.skipped += 1
            log.warning(
                "cannot redecode %r at %d: type %r unknown", device, row["time"], row.get("type")
            )
            return []
        try:
            decoded = dtype.decode(bytes.fromhex(str(row.get("data") or "")))
        except (CodecError, ValueError) as exc:
            self.totals.skipped += 1
            log.warning("cannot redecode %r at %d: %s", device, row["time"], exc)
            return []
        link: dict[str, FieldValue] = {
            k: row[k] for k in ("seq", "stations") if isinstance(row.get(k), int)
        }
        link |= {k: float(row[k]) for k in ("rssi", "snr") if row.get(k) is not None}
        fields: dict[str, FieldValue] = {**decoded.values, **link}
        self.totals.rewritten += 1
        return [
            encode_point(dtype.name, {TAG_DEVICE: device}, fields, ts),
            encode_point(
                UPLINK,
                {TAG_DEVICE: device, TAG_TYPE: dtype.name},
                {"out_of_range": len(decoded.out_of_range)},
                ts,
            ),
        ]

    async def write(self, lines: list[str]) -> None:
        for attempt in range(WRITE_ATTEMPTS):
            try:
                refused = await self.influx.write(lines)
            except WriteError as exc:
                if attempt == WRITE_ATTEMPTS - 1:
                    raise StartupError(f"InfluxDB write failed: {exc}; run again") from None
                await asyncio.sleep(backoff(attempt, cap=BACKOFF_CAP, hint=exc.wait))
                continue
            for item in refused:
                log.error("InfluxDB refused %r: %s", item.line[:200], item.message)
            return


async def _run(
    settings: Settings, catalogue: Catalogue, device: str | None, s: int, e: int
) -> Totals:
    async with async_client(settings) as client:
        redecoder = Redecoder(client, settings, catalogue)
        try:
            devices = [device] if device else await redecoder.devices()
            for d in devices:
                await redecoder.run_device(d, s, e)
                redecoder.totals.devices += 1
        except ReaderError as exc:  # one line for the user; a re-run picks up where it stopped
            raise StartupError(f"cannot read InfluxDB at {settings.influx_url}: {exc}") from None
        return redecoder.totals


@click.command()
@click.option("--device", help="Only this device (1-8 hex digits); default: every device.")
@click.option(
    "--start", "start_", help="From (inclusive), RFC 3339 or epoch seconds; default: all."
)
@click.option("--end", help="To (exclusive), RFC 3339 or epoch seconds; default: now.")
@clean_errors
def redecode(device: str | None, start_: str | None, end: str | None) -> None:
    """Decode stored raw uplinks again with the current catalogue and rewrite decoded points."""
    settings, catalogue = start()
    if device is not None and not re.fullmatch(DEVICE_ID, device):
        raise StartupError(f"--device {device!r} is not 1-8 hex digits")
    s = parse_time(start_, 0)
    e = parse_time(end, int(time.time()) + 1)
    if e <= s:
        raise StartupError("--end must be after --start")
    totals = asyncio.run(_run(settings, catalogue, device.upper() if device else None, s, e))
    click.echo(
        f"redecoded {totals.rewritten} uplinks of {totals.devices} devices"
        f" ({totals.skipped} skipped)"
    )
