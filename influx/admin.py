"""Database set-up at start: create it when the server allows, else say exactly what to create."""

from __future__ import annotations

import logging

import httpx

log = logging.getLogger(__name__)


async def ensure_database(client: httpx.AsyncClient, database: str) -> bool:
    """True when the database exists or was created; False (with one clear log line) otherwise."""
    try:
        r = await client.post("/query", params={"q": f'CREATE DATABASE "{database}"'})
    except httpx.HTTPError as exc:
        log.warning(
            "InfluxDB unreachable at start (%s); spooling to disk until it answers",
            type(exc).__name__,
        )
        return False
    if r.status_code == 200 and '"error"' not in r.text:
        return True
    log.error(
        "cannot create database %r (HTTP %d: %r); create it yourself: on InfluxDB 1.x "
        "'CREATE DATABASE \"%s\"', on 2.x a bucket with a DBRP mapping for it",
        database,
        r.status_code,
        r.text[:200],
        database,
    )
    return False
