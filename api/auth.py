"""API keys by role (read, callbacks, downlinks); Bearer or Basic; compared in constant time.

| role       | keys from                                   | may                               |
| ---------- | ------------------------------------------- | --------------------------------- |
| `read`     | TELEMETRY_API_KEYS, TELEMETRY_ADMIN_KEYS    | read `/v1` and `/metrics`         |
| `callback` | TELEMETRY_CALLBACK_KEYS                     | post Sigfox callbacks, nothing else |
| `admin`    | TELEMETRY_ADMIN_KEYS                        | read, and queue/cancel downlinks  |

A key goes as `Authorization: Bearer <key>` or as the password of HTTP Basic (what Sigfox sends
for a callback URL `https://user:<key>@host/...`; the user name is ignored). A wrong or missing
key is a 401 and counts towards the client's throttle (api/authlimit.py); a right key used
where its role does not reach is a 403 and does not count (it is no guess). Keys are never
logged, not even in part.
"""

from __future__ import annotations

import base64
import binascii
import enum
import hmac
import logging
from dataclasses import dataclass

from fastapi import Request
from pydantic import SecretStr

from api.authlimit import FailedAuthLimiter
from api.problems import ApiError
from telemetry.errors import StartupError
from telemetry.settings import Settings

log = logging.getLogger(__name__)


class Role(enum.Enum):
    READ = "read"
    CALLBACK = "callback"
    ADMIN = "admin"


# What a refused key is told it lacks, by the role it was used for.
_NEEDS = {
    Role.READ: "a key from TELEMETRY_API_KEYS or TELEMETRY_ADMIN_KEYS",
    Role.CALLBACK: "a key from TELEMETRY_CALLBACK_KEYS",
    Role.ADMIN: "a key from TELEMETRY_ADMIN_KEYS",
}


@dataclass(frozen=True, slots=True)
class Keys:
    """The configured keys of each role, as bytes."""

    read: tuple[bytes, ...]
    callback: tuple[bytes, ...]
    admin: tuple[bytes, ...]

    def of(self, role: Role) -> tuple[bytes, ...]:
        return {Role.READ: self.read, Role.CALLBACK: self.callback, Role.ADMIN: self.admin}[role]

    @property
    def every(self) -> tuple[bytes, ...]:
        return self.read + self.callback


def keys_from(settings: Settings) -> Keys | None:
    """The keys to accept; None when auth is disabled. No key at all and auth on: refuse."""
    if settings.api_auth == "disabled":
        log.warning("API authentication is disabled (TELEMETRY_API_AUTH=disabled)")
        return None

    def raw(values: list[SecretStr]) -> tuple[bytes, ...]:
        return tuple(v.get_secret_value().encode() for v in values)

    admin = raw(settings.admin_keys)
    keys = Keys(
        read=raw(settings.api_keys) + admin, callback=raw(settings.callback_keys), admin=admin
    )
    if not keys.every:
        raise StartupError(
            "no API keys: set TELEMETRY_API_KEYS=<key>[,<key>...] (and TELEMETRY_CALLBACK_KEYS, "
            "TELEMETRY_ADMIN_KEYS as needed), or TELEMETRY_API_AUTH=disabled for a closed network"
        )
    if not keys.callback:
        log.info("no TELEMETRY_CALLBACK_KEYS: Sigfox callbacks will be refused (401)")
    return keys


def presented_key(authorization: str | None) -> str | None:
    """The key in an `Authorization` header: Bearer, or the password of Basic; else None."""
    if not authorization:
        return None
    scheme, _, value = authorization.partition(" ")
    scheme, value = scheme.lower(), value.strip()
    if scheme == "bearer":
        return value or None
    if scheme == "basic":
        try:
            decoded = base64.b64decode(value, validate=True).decode("utf-8")
        except (binascii.Error, UnicodeDecodeError):
            return None
        _, colon, password = decoded.partition(":")
        return password or None if colon else None
    return None


def matches(given: str, keys: tuple[bytes, ...] | list[bytes]) -> bool:
    """Compare with every key, always all of them, in constant time per key."""
    candidate = given.encode()
    found = False
    for key in keys:
        found |= hmac.compare_digest(candidate, key)
    return found


def authenticate(request: Request, role: Role) -> None:
    """Raise the 401/403/429 problem unless the request carries a key of `role`."""
    keys: Keys | None = request.app.state.keys
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
    given = presented_key(request.headers.get("authorization"))
    if given is not None and matches(given, keys.of(role)):
        return
    if given is not None and matches(given, keys.every):
        raise ApiError(
            403,
            "forbidden",
            "Forbidden",
            f"this key may not do this; it needs {_NEEDS[role]}",
            parameter="Authorization",
        )
    limiter.record_failure(client)
    raise ApiError(
        401,
        "unauthorized",
        "Unauthorized",
        f"send Authorization: Bearer <key> (or Basic with the key as password), {_NEEDS[role]}",
        parameter="Authorization",
        headers={"WWW-Authenticate": 'Bearer realm="telemetry", Basic realm="telemetry"'},
    )
