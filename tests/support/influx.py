"""Reading InfluxDB directly in tests, apart from the project's own query code."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import httpx

from telemetry.servers import Influxd


class TunedInfluxd(Influxd):
    """InfluxDB with settings of its own in `[coordinator]`, TOML values: `{"query-timeout":
    '"1ns"'}` has every SELECT answered with the statement error `query-timeout limit exceeded`."""

    def __init__(self, data_dir: Path, *, coordinator: dict[str, str]) -> None:
        super().__init__(data_dir)
        self.coordinator = coordinator

    def write_config(self) -> None:
        super().write_config()
        # A key may appear once in a TOML table: ours replace those of the default config.
        keys = tuple(f"  {k} =" for k in self.coordinator)
        lines = [ln for ln in self.conf_path.read_text().splitlines() if not ln.startswith(keys)]
        at = lines.index("[coordinator]") + 1
        lines[at:at] = [f"  {k} = {v}" for k, v in self.coordinator.items()]
        self.conf_path.write_text("\n".join(lines) + "\n")


def select(server: Influxd, database: str, q: str) -> list[dict[str, Any]]:
    """Rows of a one-statement query as dicts (column -> value); [] when nothing matched."""
    r = server.query(q, database=database, method="GET")
    return result_rows(r, q)


def result_rows(r: httpx.Response, q: str) -> list[dict[str, Any]]:
    """The rows of a one-statement `/query` answer, tags merged in; a query error fails the test."""
    r.raise_for_status()
    result = r.json()["results"][0]
    if "error" in result:
        raise AssertionError(f"query failed: {result['error']}: {q}")
    rows: list[dict[str, Any]] = []
    for series in result.get("series", []):
        tags = series.get("tags", {})
        rows.extend(dict(zip(series["columns"], v, strict=True)) | tags for v in series["values"])
    return rows


def write_lines(server: Influxd, database: str, lines: list[str], precision: str = "s") -> None:
    """Write raw line protocol, as fixtures for API tests."""
    auth = server.admin if server.auth else None
    r = httpx.post(
        f"{server.url}/write",
        params={"db": database, "precision": precision},
        content="\n".join(lines).encode(),
        auth=auth,
        timeout=60,
    )
    if r.status_code != 204:
        raise AssertionError(f"write failed {r.status_code}: {r.text}")
