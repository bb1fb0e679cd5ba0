"""The one table from exceptions to HTTP statuses, and the handlers that apply it."""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from sqlalchemy.exc import InterfaceError, OperationalError
from sqlalchemy.exc import TimeoutError as PoolTimeout
from starlette.exceptions import HTTPException
from starlette.requests import ClientDisconnect
from starlette.responses import Response

from conveyor import exceptions as exc
from conveyor.api.responses import error_response
from conveyor.db import errors as db_errors

log = logging.getLogger(__name__)

#: Most specific first: the first class that matches decides.
STATUS: list[tuple[type[exc.ConveyorError], int]] = [
    (exc.PayloadTooLarge, 413),
    (exc.UnsupportedMediaType, 415),
    (exc.BadRequest, 400),
    (exc.Unauthenticated, 401),
    (exc.Forbidden, 403),
    (exc.NotFound, 404),
    (exc.Conflict, 409),
    (exc.ValidationError, 422),
    (exc.BackendError, 503),
    (exc.ConfigurationError, 500),
]

_HTTP_CODES = {
    400: "bad_request",
    401: "unauthenticated",
    403: "forbidden",
    404: "not_found",
    405: "method_not_allowed",
    413: "payload_too_large",
    415: "unsupported_media_type",
    431: "headers_too_large",
}


def status_for(error: exc.ConveyorError) -> int:
    return next((status for cls, status in STATUS if isinstance(error, cls)), 500)


async def _conveyor_error(_: Request, error: Exception) -> Response:
    assert isinstance(error, exc.ConveyorError)
    status = status_for(error)
    headers = {"WWW-Authenticate": "Bearer"} if status == 401 else None
    return error_response(status, error.code, error.message, error.details, headers)


def _location(loc: tuple[Any, ...]) -> str:
    parts = [str(p) for p in loc if p not in ("body", "query", "path", "header")]
    return ".".join(parts) or str(loc[0] if loc else "body")


async def _validation_error(_: Request, error: Exception) -> Response:
    assert isinstance(error, RequestValidationError)
    problems = list(error.errors())
    if any(p.get("type") == "json_invalid" for p in problems):
        return error_response(400, "invalid_json", "the request body is not valid JSON")
    if any(p.get("type") == "missing" and tuple(p.get("loc", ())) == ("body",) for p in problems):
        return error_response(400, "missing_body", "a JSON request body is required")
    details = [{"field": _location(tuple(p.get("loc", ()))), "message": p["msg"]} for p in problems]
    summary = "; ".join(f"{d['field']}: {d['message']}" for d in details)
    return error_response(422, "validation_failed", summary, details)


async def _http_error(_: Request, error: Exception) -> Response:
    assert isinstance(error, HTTPException)
    code = _HTTP_CODES.get(error.status_code, "error")
    return error_response(error.status_code, code, str(error.detail), headers=error.headers)


async def _database_unavailable(_: Request, error: Exception) -> Response:
    if db_errors.caused_by_request(error):
        log.info("query refused by the database: %s", db_errors.summary(error))
        return error_response(
            400, "query_too_large", "the database refused this query; make it smaller or simpler"
        )
    log.warning("database unavailable: %s", db_errors.summary(error))
    return error_response(503, "database_unavailable", "the database is unavailable; retry later")


async def _client_gone(_: Request, error: Exception) -> Response:
    # Nobody is left to read this answer; it only keeps the disconnect out of the error log.
    return error_response(400, "client_disconnected", "the client went away mid-request")


async def _unexpected(request: Request, error: Exception) -> Response:
    if db_errors.caused_by_request(error):
        return await _database_unavailable(request, error)
    log.error("unhandled error", exc_info=error)
    return error_response(500, "internal_error", "internal error; the server log has details")


Handler = Callable[[Request, Exception], Awaitable[Response]]

#: Each exception class with its handler; the handler of the nearest class in an
#: error's MRO applies (as in Starlette's exception middleware).
HANDLERS: dict[type[Exception], Handler] = {
    exc.ConveyorError: _conveyor_error,
    RequestValidationError: _validation_error,
    HTTPException: _http_error,
    OperationalError: _database_unavailable,
    InterfaceError: _database_unavailable,
    PoolTimeout: _database_unavailable,
    ConnectionError: _database_unavailable,
    ClientDisconnect: _client_gone,
    Exception: _unexpected,
}


def install(app: FastAPI) -> None:
    for error_class, handler in HANDLERS.items():
        app.add_exception_handler(error_class, handler)


async def respond(request: Request, error: Exception) -> Response:
    """The answer to `error` raised by an endpoint, for callers outside FastAPI."""
    handler = next(HANDLERS[c] for c in type(error).__mro__ if c in HANDLERS)
    return await handler(request, error)
