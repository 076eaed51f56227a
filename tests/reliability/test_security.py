"""Security checks that need no ingester: dependency advisory floors, InfluxDB least privilege."""

from __future__ import annotations

import importlib.metadata
from collections.abc import Callable

import httpx
import pytest
from packaging.version import Version

from telemetry.servers import Influxd
from tests.reliability.roles import ROLES, Role, as_role, create_roles

# Published advisories affecting our dependencies: (package, advisory id, first fixed version).
# pip-audit cannot reach a vulnerability database here (RELIABILITY.md, fact 11), so the floors are
# kept by hand; add a row when an advisory is published, never delete one.
ADVISORY_FLOORS: tuple[tuple[str, str, str], ...] = (
    ("starlette", "GHSA-f96h-pmfr-66vw / CVE-2024-47874 multipart DoS", "0.40.0"),
    ("starlette", "GHSA-2c2j-9gv5-cj73 / CVE-2025-54121 large upload blocks loop", "0.47.2"),
    ("starlette", "GHSA-7f5h-v6xp-fcq8 / CVE-2025-62727 Range header DoS", "0.49.1"),
    ("python-multipart", "GHSA-2jv5-9r88-3w3p / CVE-2024-24762 Content-Type ReDoS", "0.0.7"),
    ("python-multipart", "GHSA-59g5-xgcq-4qw3 / CVE-2024-53981 boundary DoS", "0.0.18"),
    ("python-multipart", "CVE-2026-24486 path traversal (UPLOAD_KEEP_FILENAME)", "0.0.22"),
    ("python-multipart", "GHSA-mj87-hwqh-73pj / CVE-2026-40347 preamble DoS", "0.0.26"),
    ("fastapi", "GHSA-qf9m-vfgh-m389 / CVE-2024-24762 form ReDoS", "0.109.1"),
    ("fastapi", "GHSA-8h2j-cgx8-6xv7 / CVE-2021-32677 JSON CSRF", "0.65.2"),
    ("h11", "GHSA-vqfr-h8mv-ghfj / CVE-2025-43859 chunked smuggling", "0.16.0"),
    ("uvicorn", "GHSA-33c7-2mpw-hg34 / CVE-2020-7694 log injection", "0.11.7"),
    ("uvicorn", "GHSA-f97h-2pfx-f59f / CVE-2020-7695 response splitting", "0.11.7"),
    ("httpx", "GHSA-h8pj-cxx2-jfg2 / CVE-2021-41945 URL parsing", "0.23.0"),
    ("pydantic", "GHSA-mr82-8j83-vxmv / CVE-2024-3772 email ReDoS", "2.4.0"),
    ("paho-mqtt", "PVE-2024-65106 (pyup) race condition", "1.0.2"),
)


def _installed(package: str) -> Version | None:
    try:
        return Version(importlib.metadata.version(package))
    except importlib.metadata.PackageNotFoundError:
        return None


@pytest.mark.parametrize(("package", "advisory", "floor"), ADVISORY_FLOORS)
def test_installed_dependency_is_above_advisory_floor(
    package: str, advisory: str, floor: str
) -> None:
    version = _installed(package)
    if version is None:
        pytest.skip(f"{package} is not installed")
    assert version >= Version(floor), f"{package} {version} is affected by {advisory}: need {floor}"


def test_floor_table_names_every_web_and_mqtt_dependency() -> None:
    named = {p for p, _, _ in ADVISORY_FLOORS}
    assert {"starlette", "python-multipart", "paho-mqtt", "fastapi", "uvicorn", "h11"} <= named


# --- InfluxDB least privilege ---

DB = "telemetry"
SELECT_ALL = 'SELECT * FROM "uplink"'
# Measured on InfluxDB 1.6.7: naive concatenation lets this stacked DROP through, and it runs.
STACKED = f'SELECT * FROM "uplink" WHERE device = \'x\'; DROP DATABASE "{DB}"; --\''  # noqa: S608


@pytest.fixture
def secured(make_influxd: Callable[..., Influxd]) -> Influxd:
    server = make_influxd(auth=True)
    server.create_database(DB)
    create_roles(server, DB)
    return server


def _role(name: str) -> Role:
    return next(r for r in ROLES if r.user == name)


def _write(server: Influxd, role: Role) -> int:
    r = as_role(
        server,
        role,
        "POST",
        "/write",
        params={"db": DB, "precision": "s"},
        content=b"uplink,device=1A2B3C seq=1i 1716000000",
    )
    return r.status_code


def _read(server: Influxd, role: Role, q: str = SELECT_ALL, method: str = "GET") -> int:
    """The HTTP status: InfluxDB 1.x refuses a privilege error with 403, for the whole request."""
    return as_role(server, role, method, "/query", params={"db": DB, "q": q}).status_code


@pytest.mark.integration
def test_unauthenticated_requests_are_refused(secured: Influxd) -> None:
    assert httpx.get(f"{secured.url}/query", params={"q": "SHOW DATABASES"}).status_code == 401
    r = httpx.post(f"{secured.url}/write", params={"db": DB}, content=b"m v=1 1")
    assert r.status_code == 401


@pytest.mark.integration
def test_ingester_user_writes_but_cannot_read(secured: Influxd) -> None:
    ingester = _role("ingester")
    assert _write(secured, ingester) == 204
    assert _read(secured, ingester) == 403


@pytest.mark.integration
@pytest.mark.parametrize("name", ["api", "grafana"])
def test_read_users_read_but_cannot_write_or_drop(secured: Influxd, name: str) -> None:
    assert _write(secured, _role("ingester")) == 204
    reader = _role(name)
    assert _read(secured, reader) == 200
    assert _write(secured, reader) == 403
    assert _read(secured, reader, f'DROP DATABASE "{DB}"', method="POST") == 403
    assert _read(secured, reader, 'DROP MEASUREMENT "uplink"', method="POST") == 403
    # The stacked injection of RELIABILITY.md fact 7, sent by GET: refused as a whole.
    assert _read(secured, reader, STACKED) == 403
    dbs = secured.query("SHOW DATABASES").json()["results"][0]["series"][0]["values"]
    assert [DB] in dbs
    rows = secured.query('SELECT count("seq") FROM "uplink"', database=DB).json()
    assert rows["results"][0]["series"][0]["values"][0][1] == 1  # the point is still there
