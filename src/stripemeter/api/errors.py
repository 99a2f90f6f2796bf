"""Every error the API gives is JSON: `{"error": {"code", "message", "field"}}`.

`ApiError` is what route code raises; the handlers installed by
`install_error_handlers` turn request-validation failures, unknown routes, wrong
methods, oversized bodies, an unreachable database and any unexpected exception into
the same shape, so no input ever yields an HTML page or a traceback.

Every `StripemeterError` a route lets through is answered by one handler
(`_stripemeter_error`), by its class:

    ApiError                its own status, code and field
    InputError              400, its code and field
    ConflictError           409 `conflict`
    DatabaseUnavailable     503 `database_unavailable`
    StripeUnavailable       503 `stripe_unavailable`
    ShuttingDown            503 `shutting_down` (nothing stored; retry on another process)
    any other               500 `internal_error` (logged with its traceback)

Outside the root, driver errors keep their own handlers: `psycopg.DataError` (a value
PostgreSQL refuses: the client's 400) and `psycopg.OperationalError` (a connection lost
mid-request: 503; failing to get one is `DatabaseUnavailable` already).
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import Any

import psycopg
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.requests import ClientDisconnect

from stripemeter.errors import (
    ConflictError,
    DatabaseUnavailable,
    InputError,
    ShuttingDown,
    StripemeterError,
    StripeUnavailable,
)
from stripemeter.jsonio import JsonResponse

log = logging.getLogger("stripemeter.api")

_STATUS_CODES = {
    400: "bad_request",
    401: "unauthorized",
    403: "forbidden",
    404: "not_found",
    405: "method_not_allowed",
    409: "conflict",
    413: "payload_too_large",
    415: "unsupported_media_type",
    422: "invalid_request",
    503: "unavailable",
}


class ApiError(StripemeterError):
    """An answer other than success: HTTP status, stable code, human message, field."""

    def __init__(
        self,
        status: int,
        code: str,
        message: str,
        field: str | None = None,
        *,
        extra: dict[str, Any] | None = None,
    ) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message
        self.field = field
        self.extra = extra or {}

    def body(self) -> dict[str, Any]:
        """The JSON answer for this error."""
        body: dict[str, Any] = {"error": error_object(self.code, self.message, self.field)}
        body.update(self.extra)
        return body


def error_object(code: str, message: str, field: str | None = None) -> dict[str, Any]:
    """The `{"code", "message", "field"}` object used everywhere errors are reported."""
    return {"code": code, "message": message, "field": field}


def error_response(
    status: int, code: str, message: str, field: str | None = None, **headers: str
) -> JsonResponse:
    """A JSON error answer."""
    return JsonResponse(
        {"error": error_object(code, message, field)}, status_code=status, headers=headers or None
    )


def _field_from_loc(loc: Sequence[Any]) -> str | None:
    parts = [str(p) for p in loc if p not in ("body", "query", "path", "header")]
    if not parts:
        return None
    text = parts[0]
    for part in parts[1:]:
        text += f"[{part}]" if part.isdigit() else f".{part}"
    return text


async def _stripemeter_error(request: Request, exc: Exception) -> JsonResponse:
    assert isinstance(exc, StripemeterError)
    if isinstance(exc, ApiError):
        return JsonResponse(exc.body(), status_code=exc.status)
    if isinstance(exc, InputError):
        return error_response(400, exc.code, exc.message, exc.field)
    if isinstance(exc, ConflictError):
        return error_response(409, "conflict", str(exc))
    if isinstance(exc, DatabaseUnavailable):
        return _database_unavailable(exc)
    if isinstance(exc, ShuttingDown):
        return error_response(
            503,
            "shutting_down",
            "this API process is stopping; nothing was stored, retry",
            **{"Retry-After": "1"},
        )
    if isinstance(exc, StripeUnavailable):
        log.warning("Stripe unavailable during %s %s: %s", request.method, request.url.path, exc)
        return error_response(503, "stripe_unavailable", "Stripe cannot be reached; retry later")
    log.error(
        "%s not handled by %s %s",
        type(exc).__name__,
        request.method,
        request.url.path,
        exc_info=exc,
    )
    return error_response(500, "internal_error", "internal error; the request was not applied")


async def _validation_error(_: Request, exc: Exception) -> JsonResponse:
    assert isinstance(exc, RequestValidationError)
    errors = exc.errors()
    first = errors[0] if errors else {"loc": (), "msg": "invalid request", "type": ""}
    field = _field_from_loc(first.get("loc", ()))
    if first.get("type") == "json_invalid":
        return error_response(400, "invalid_json", f"body is not valid JSON: {first['msg']}")
    message = f"{field}: {first['msg']}" if field else str(first["msg"])
    if len(errors) > 1:
        message += f" (and {len(errors) - 1} more problem(s))"
    return error_response(400, "invalid_request", message, field)


async def _http_error(_: Request, exc: Exception) -> JsonResponse:
    assert isinstance(exc, StarletteHTTPException)
    code = _STATUS_CODES.get(exc.status_code, "error")
    if exc.status_code == 404:
        message = "no such route; see /openapi.json"
    elif exc.status_code == 405:
        message = "method not allowed on this route"
    else:
        message = str(exc.detail)
    headers = dict(exc.headers or {})
    return error_response(exc.status_code, code, message, **headers)


def _database_unavailable(exc: Exception) -> JsonResponse:
    log.warning("database unavailable: %s", exc)
    return error_response(
        503, "database_unavailable", "the database is unreachable; retry later", None
    )


async def _connection_lost(_: Request, exc: Exception) -> JsonResponse:
    return _database_unavailable(exc)


async def _refused_by_database(_: Request, exc: Exception) -> JsonResponse:
    # Input that slipped past validation but that PostgreSQL (or the driver) cannot
    # store, e.g. a NUL character: the client's problem, not a server error.
    log.warning("value refused by the database: %s", exc)
    message = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
    return error_response(400, "invalid_value", f"a value was refused by the database: {message}")


async def _client_disconnect(request: Request, exc: Exception) -> JsonResponse:
    # The client went away mid-upload: nothing was applied and nobody reads the answer
    # (status 499, as proxies log it). Its own debug line, not an "unexpected error".
    log.debug("client disconnected during %s %s", request.method, request.url.path)
    return error_response(499, "client_closed_request", "the client closed the connection")


async def _unexpected(_: Request, exc: Exception) -> JsonResponse:
    log.exception("unexpected error", exc_info=exc)
    return error_response(500, "internal_error", "internal error; the request was not applied")


def install_error_handlers(app: FastAPI) -> None:
    """Register the handlers that give every failure the JSON error shape."""
    app.add_exception_handler(StripemeterError, _stripemeter_error)
    app.add_exception_handler(RequestValidationError, _validation_error)
    app.add_exception_handler(StarletteHTTPException, _http_error)
    app.add_exception_handler(ClientDisconnect, _client_disconnect)
    app.add_exception_handler(psycopg.DataError, _refused_by_database)
    app.add_exception_handler(psycopg.OperationalError, _connection_lost)
    app.add_exception_handler(Exception, _unexpected)
