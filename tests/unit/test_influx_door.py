"""Only influx/ talks HTTP to InfluxDB, and only influx/query.py holds InfluxQL text.

A grep over the string literals of the product packages (comments do not count; f-strings
do), so that a new module cannot open a side door without this test naming it.
"""

from __future__ import annotations

import io
import re
import tokenize
from collections.abc import Iterator
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
PRODUCT = sorted(
    p for p in ROOT.iterdir() if (p / "__init__.py").is_file() and p.name not in {"tests", "bench"}
)
# A path of InfluxDB's HTTP API at the start of a string or right after a `{...}` base URL.
HTTP_PATH = re.compile(r"""(?:^[rbfu]*["']|\})/(?:query|write|ping)\b""", re.IGNORECASE)
INFLUXQL = re.compile(
    r"\b(?:SELECT|SHOW (?:TAG|FIELD|MEASUREMENTS|DATABASES|SERIES|RETENTION|USERS)"
    r"|CREATE (?:DATABASE|USER|RETENTION)|DROP (?:DATABASE|SERIES|MEASUREMENT|USER)"
    r"|GRANT|REVOKE|DELETE FROM)\b"
)
# Text that looks like InfluxQL but is not sent by us to InfluxDB:
NOT_OURS = {
    "api/downlinks.py": "SQLite statements for the downlink queue, not InfluxQL",
    "dashboards/queries.py": "Grafana panel queries: Grafana sends them, with its $timeFilter",
}


def _strings(path: Path) -> Iterator[tuple[int, str]]:
    tokens = tokenize.generate_tokens(io.StringIO(path.read_text()).readline)
    for token in tokens:
        if token.type == tokenize.STRING:
            yield token.start[0], token.string


def _hits(pattern: re.Pattern[str], allowed: set[str]) -> list[str]:
    found = []
    for package in PRODUCT:
        for path in sorted(package.rglob("*.py")):
            name = path.relative_to(ROOT).as_posix()
            if name in allowed or name.startswith(tuple(a for a in allowed if a.endswith("/"))):
                continue
            found += [f"{name}:{n}: {s[:70]}" for n, s in _strings(path) if pattern.search(s)]
    return found


def test_only_influx_talks_http_to_influxdb() -> None:
    assert _hits(HTTP_PATH, {"influx/"}) == []


def test_only_influx_query_holds_influxql() -> None:
    assert _hits(INFLUXQL, {"influx/query.py", *NOT_OURS}) == []


def test_the_patterns_find_what_they_look_for() -> None:
    assert HTTP_PATH.search('"/query"')
    assert HTTP_PATH.search('f"{self.url}/write"')
    assert not HTTP_PATH.search('"Duration of one /write request"')
    assert INFLUXQL.search("f'SELECT last(seq) FROM {UPLINK}'")
    assert INFLUXQL.search("'SHOW TAG VALUES FROM \"uplink\"'")
    assert not INFLUXQL.search("'select a device type'")
