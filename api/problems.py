"""Our API errors and the one place that turns every error into RFC 9457 problem details."""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

from api.models import Problem
from influx.errors import InfluxQueryError, InfluxUnavailable

log = logging.getLogger(__name__)

PROBLEM_MEDIA_TYPE = "application/problem+json"
PROBLEM_BASE = "urn:sigfox-telemetry:problem:"
# Seconds a client should wait before retrying while InfluxDB is away: its restart to a /ping
# answer takes under a second here (RELIABILITY.md, fact 10), a busy one a few seconds.
RETRY_AFTER_SECONDS = 5


class ApiError(Exception):
    """An error answer: status, a short stable title, a detail, and the parameter at fault."""

    def __init__(
        self,
        status: int,
        kind: str,
        title: str,
        detail: str,
        *,
        parameter: str | None = None,
        headers: dict[str, str] | None = None,
    ) -> None:
        super().__init__(detail)
        self.status = status
        self.kind = kind
        self.title = title
        self.detail = detail
        self.parameter = parameter
        self.headers = headers or {}


def bad_parameter(parameter: str, detail: str) -> ApiError:
    return ApiError(400, "invalid-parameter", "Invalid parameter", detail, parameter=parameter)


def not_found(detail: str, parameter: str | None = None) -> ApiError:
    return ApiError(404, "not-found", "Not found", detail, parameter=parameter)


def problem_response(
    status: int,
    kind: str,
    title: str,
    detail: str,
    *,
    parameter: str | None = None,
    headers: Mapping[str, str] | None = None,
    extra: dict[str, Any] | None = None,
) -> JSONResponse:
    body: dict[str, Any] = {
        "type": PROBLEM_BASE + kind,
        "title": title,
        "status": status,
        "detail": detail,
    }
    if parameter is not None:
        body["parameter"] = parameter
    body |= extra or {}
    return JSONResponse(body, status, headers=headers, media_type=PROBLEM_MEDIA_TYPE)


async def _api_error(_: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, ApiError)  # noqa: S101  # registered for this class only
    return problem_response(
        exc.status, exc.kind, exc.title, exc.detail, parameter=exc.parameter, headers=exc.headers
    )


def _location_name(loc: Sequence[Any]) -> str:
    # ("query", "limit") -> "limit"; ("path", "device") -> "device"
    names = [str(p) for p in loc[1:]] if len(loc) > 1 else [str(p) for p in loc]
    return ".".join(names) or "request"


async def _validation_error(_: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, RequestValidationError)  # noqa: S101
    errors = exc.errors()
    first = errors[0] if errors else {"loc": ("request",), "msg": "invalid request"}
    parameter = _location_name(first["loc"])
    details = [{"parameter": _location_name(e["loc"]), "detail": e["msg"]} for e in errors]
    return problem_response(
        422,
        "invalid-parameter",
        "Invalid parameter",
        f"{parameter}: {first['msg']}",
        parameter=parameter,
        extra={"errors": details},
    )


async def _http_error(_: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, StarletteHTTPException)  # noqa: S101
    kind = {404: "not-found", 405: "method-not-allowed", 413: "too-large"}.get(
        exc.status_code, "http-error"
    )
    return problem_response(
        exc.status_code, kind, str(exc.detail), str(exc.detail), headers=exc.headers
    )


async def _influx_unavailable(_: Request, exc: Exception) -> JSONResponse:
    log.warning("InfluxDB unavailable: %s", exc)
    return problem_response(
        503,
        "storage-unavailable",
        "Storage unavailable",
        "InfluxDB does not answer; retry later",
        headers={"Retry-After": str(RETRY_AFTER_SECONDS)},
    )


async def _influx_query_error(_: Request, exc: Exception) -> JSONResponse:
    log.error("InfluxDB refused our query: %s", exc)
    return problem_response(
        502, "storage-error", "Storage error", "InfluxDB refused the query (a server bug)"
    )


def install(app: FastAPI) -> None:
    app.add_exception_handler(ApiError, _api_error)
    app.add_exception_handler(RequestValidationError, _validation_error)
    app.add_exception_handler(StarletteHTTPException, _http_error)
    app.add_exception_handler(InfluxUnavailable, _influx_unavailable)
    app.add_exception_handler(InfluxQueryError, _influx_query_error)


def problem_doc(status: int, description: str) -> dict[str, Any]:
    return {
        "model": Problem,
        "description": description,
        "content": {PROBLEM_MEDIA_TYPE: {"schema": {"$ref": "#/components/schemas/Problem"}}},
    }


# OpenAPI `responses=` for every route that reads InfluxDB and needs a key.
COMMON_ERRORS: dict[int | str, dict[str, Any]] = {
    400: problem_doc(400, "A parameter is invalid (named in `parameter`)"),
    401: problem_doc(401, "Missing or wrong `Authorization: Bearer <key>`"),
    413: problem_doc(413, "Request body over 16 KiB"),
    429: problem_doc(429, "Too many wrong keys from this client; see `Retry-After`"),
    422: problem_doc(422, "A parameter has the wrong type or is out of bounds"),
    502: problem_doc(502, "InfluxDB refused the query"),
    503: problem_doc(503, "InfluxDB unavailable; see `Retry-After`"),
}
NOT_FOUND: dict[int | str, dict[str, Any]] = {404: problem_doc(404, "Unknown device")}
