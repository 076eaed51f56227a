"""Typed dependency aliases shared by the routers: settings, catalogue, reader, auth, device."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Path, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from api.auth import Role, authenticate
from api.params import parse_device
from catalogue import Catalogue
from influx.client import InfluxClient
from telemetry.settings import Settings

# auto_error=False: we answer a missing key ourselves, as problem details with WWW-Authenticate.
_bearer = HTTPBearer(
    auto_error=False,
    description="A key of the route's role (api/auth.py); or HTTP Basic, the key as password",
)


def get_settings(request: Request) -> Settings:
    settings: Settings = request.app.state.settings
    return settings


def get_catalogue(request: Request) -> Catalogue:
    catalogue: Catalogue = request.app.state.catalogue
    return catalogue


def get_reader(request: Request) -> InfluxClient:
    reader: InfluxClient = request.app.state.reader
    return reader


SettingsDep = Annotated[Settings, Depends(get_settings)]
CatalogueDep = Annotated[Catalogue, Depends(get_catalogue)]
ReaderDep = Annotated[InfluxClient, Depends(get_reader)]


def require_key(
    request: Request,
    _: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)],
) -> None:
    """A read key (TELEMETRY_API_KEYS or TELEMETRY_ADMIN_KEYS), Bearer or Basic; see api/auth.py."""
    authenticate(request, Role.READ)


def require_callback_key(
    request: Request,
    _: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)],
) -> None:
    """A key from TELEMETRY_CALLBACK_KEYS."""
    authenticate(request, Role.CALLBACK)


def require_admin_key(
    request: Request,
    _: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)],
) -> None:
    """A key from TELEMETRY_ADMIN_KEYS."""
    authenticate(request, Role.ADMIN)


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
CallbackAuthDep = Depends(require_callback_key)
AdminAuthDep = Depends(require_admin_key)
