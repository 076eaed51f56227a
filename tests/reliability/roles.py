"""InfluxDB users of the deployed stack, least privilege: ingest writes, API and Grafana read."""

from __future__ import annotations

from dataclasses import dataclass

import httpx

from telemetry.servers import Influxd


@dataclass(frozen=True)
class Role:
    user: str
    password: str
    privilege: str  # InfluxQL privilege on the database: READ, WRITE or ALL


# The three users of the least-privilege baseline: `ingester` writes, `api` and `grafana` read.
ROLES = (
    Role("ingester", "ingester-password", "WRITE"),
    Role("api", "api-password", "READ"),
    Role("grafana", "grafana-password", "READ"),
)


def create_roles(server: Influxd, database: str, roles: tuple[Role, ...] = ROLES) -> None:
    """Create each user (not admin) and grant it only its privilege on `database`."""
    for role in roles:
        for q in (
            f"CREATE USER \"{role.user}\" WITH PASSWORD '{role.password}'",
            f'GRANT {role.privilege} ON "{database}" TO "{role.user}"',
        ):
            r = server.query(q)
            if r.status_code != 200 or "error" in r.text:
                raise AssertionError(f"{q!r} failed: {r.status_code} {r.text}")


def as_role(
    server: Influxd, role: Role, method: str, path: str, **kwargs: object
) -> httpx.Response:
    """One HTTP request to InfluxDB with the role's credentials."""
    return httpx.request(
        method,
        f"{server.url}{path}",
        auth=(role.user, role.password),
        timeout=30,
        **kwargs,  # type: ignore[arg-type]  # params/content passed through to httpx
    )
