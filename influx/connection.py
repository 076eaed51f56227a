"""How to reach InfluxDB's 1.x-compatible HTTP API: base URL, auth, timeouts, from the settings."""

from __future__ import annotations

from typing import TYPE_CHECKING

import httpx

if TYPE_CHECKING:  # only a type here: influx/ needs nothing of telemetry/ at run time
    from telemetry.settings import Settings

USER_AGENT = "sigfox-telemetry"


def auth_headers(settings: Settings) -> dict[str, str]:
    """`Authorization: Token …` (2.x, 3.x) or nothing; user/password goes as basic auth."""
    if settings.influx_token is not None:
        return {"Authorization": f"Token {settings.influx_token.get_secret_value()}"}
    return {}


def basic_auth(settings: Settings) -> httpx.BasicAuth | None:
    if settings.influx_token is None and settings.influx_username:
        password = settings.influx_password.get_secret_value() if settings.influx_password else ""
        return httpx.BasicAuth(settings.influx_username, password)
    return None


def async_client(settings: Settings, **kwargs: object) -> httpx.AsyncClient:
    """One keep-alive client for the life of a process; callers own and close it."""
    return httpx.AsyncClient(
        base_url=str(settings.influx_url).rstrip("/"),
        headers={"User-Agent": USER_AGENT} | auth_headers(settings),
        auth=basic_auth(settings),
        timeout=httpx.Timeout(settings.influx_timeout, connect=min(5.0, settings.influx_timeout)),
        **kwargs,  # type: ignore[arg-type]  # passed through to httpx as given
    )
