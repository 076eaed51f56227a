"""Typed dependency aliases shared by the routers: settings, catalogue, reader, auth, device."""

from __future__ import annotations

import hmac
from typing import Annotated

from fastapi import Depends, Path, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from api.authlimit import FailedAuthLimiter
from api.params import parse_device
from api.problems import ApiError
from catalogue import Catalogue
from influx.reader import Reader
from telemetry.settings import Settings

# auto_error=False: we answer a missing key ourselves, as problem details with WWW-Authenticate.
_bearer = HTTPBearer(auto_error=False, description="An API key from TELEMETRY_API_KEYS")


def get_settings(request: Request) -> Settings:
    settings: Settings = request.app.state.settings
    return settings


def get_catalogue(request: Request) -> Catalogue:
    catalogue: Catalogue = request.app.state.catalogue
    return catalogue


def get_reader(request: Request) -> Reader:
    reader: Reader = request.app.state.reader
    return reader


SettingsDep = Annotated[Settings, Depends(get_settings)]
CatalogueDep = Annotated[Catalogue, Depends(get_catalogue)]
ReaderDep = Annotated[Reader, Depends(get_reader)]


def key_matches(given: str, keys: list[bytes]) -> bool:
    """Compare with every key, always all of them, in constant time per key."""
    candidate = given.encode()
    found = False
    for key in keys:
        found |= hmac.compare_digest(candidate, key)
    return found


def require_key(
    request: Request,
    credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)],
) -> None:
    """`Authorization: Bearer <key>` with a configured key, unless auth is disabled."""
    keys: list[bytes] | None = request.app.state.api_keys
    if keys is None:  # TELEMETRY_API_AUTH=disabled
        return
    limiter: FailedAuthLimiter = request.app.state.auth_limiter
    client = request.client.host if request.client else "unknown"
    wait = limiter.retry_after(client)
    if wait:
        raise ApiError(
            429,
            "too-many-failed-authentications",
            "Too many failed authentications",
            f"too many requests with a wrong or missing key from this client; retry in {wait} s",
            parameter="Authorization",
            headers={"Retry-After": str(wait)},
        )
    if credentials is None or not key_matches(credentials.credentials, keys):
        limiter.record_failure(client)
        raise ApiError(
            401,
            "unauthorized",
            "Unauthorized",
            "send Authorization: Bearer <key> with a configured API key",
            parameter="Authorization",
            headers={"WWW-Authenticate": 'Bearer realm="telemetry"'},
        )


def device_param(
    device: Annotated[
        str,
        Path(
            description="Sigfox device id: 1 to 8 hex digits, any case",
            max_length=64,
            examples=["1A2B3C"],
        ),
    ],
) -> str:
    return parse_device(device)


DeviceDep = Annotated[str, Depends(device_param)]
AuthDep = Depends(require_key)
