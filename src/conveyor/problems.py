"""The one error boundary of the HTTP tier: what any exception means over HTTP.

An exception raised behind the API or the back-office becomes a `Problem` here (status,
code, message, details), in one place; each front-end only renders it, the API as
JSON and the back-office as a page. The statuses of Conveyor's own errors are their
classes' `status` (`conveyor.exceptions`); this module adds those of the web framework
and the database driver.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from sqlalchemy.exc import InterfaceError, OperationalError
from sqlalchemy.exc import TimeoutError as PoolTimeout
from starlette.exceptions import HTTPException
from starlette.requests import ClientDisconnect
from starlette.responses import Response

from conveyor import exceptions as exc
from conveyor.db import errors as db_errors

log = logging.getLogger(__name__)

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


@dataclass(frozen=True)
class Problem:
    """An error as an HTTP answer says it."""

    status: int
    code: str
    message: str
    details: Any = None
    headers: Mapping[str, str] | None = None


def _conveyor_error(error: Exception) -> Problem:
    assert isinstance(error, exc.ConveyorError)
    headers = {"WWW-Authenticate": "Bearer"} if error.status == 401 else None
    return Problem(error.status, error.code, error.message, error.details, headers)


def _location(loc: tuple[Any, ...]) -> str:
    parts = [str(p) for p in loc if p not in ("body", "query", "path", "header")]
    return ".".join(parts) or str(loc[0] if loc else "body")


def _validation_error(error: Exception) -> Problem:
    assert isinstance(error, RequestValidationError)
    problems = list(error.errors())
    if any(p.get("type") == "json_invalid" for p in problems):
        return Problem(400, "invalid_json", "the request body is not valid JSON")
    if any(p.get("type") == "missing" and tuple(p.get("loc", ())) == ("body",) for p in problems):
        return Problem(400, "missing_body", "a JSON request body is required")
    details = [{"field": _location(tuple(p.get("loc", ()))), "message": p["msg"]} for p in problems]
    summary = "; ".join(f"{d['field']}: {d['message']}" for d in details)
    return Problem(422, "validation_failed", summary, details)


def _http_error(error: Exception) -> Problem:
    assert isinstance(error, HTTPException)
    code = _HTTP_CODES.get(error.status_code, "error")
    return Problem(error.status_code, code, str(error.detail), headers=error.headers)


def _database_unavailable(error: Exception) -> Problem:
    if db_errors.caused_by_request(error):
        log.info("query refused by the database: %s", db_errors.summary(error))
        message = "the database refused this query; make it smaller or simpler"
        return Problem(400, "query_too_large", message)
    log.warning("database unavailable: %s", db_errors.summary(error))
    return Problem(503, "database_unavailable", "the database is unavailable; retry later")


def _client_gone(error: Exception) -> Problem:
    # Nobody is left to read this answer; it only keeps the disconnect out of the error log.
    return Problem(400, "client_disconnected", "the client went away mid-request")


def _unexpected(error: Exception) -> Problem:
    if db_errors.caused_by_request(error):
        return _database_unavailable(error)
    log.error("unhandled error", exc_info=error)
    return Problem(500, "internal_error", "internal error; the server log has details")


#: Each exception class with what makes it a problem; the nearest class in an error's
#: MRO applies (as in Starlette's exception middleware).
_PROBLEMS: dict[type[Exception], Callable[[Exception], Problem]] = {
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


def problem(error: Exception) -> Problem:
    """What `error` means over HTTP (logging those the operator must hear of)."""
    return next(_PROBLEMS[c] for c in type(error).__mro__ if c in _PROBLEMS)(error)


Render = Callable[[Request, Problem], Response]


def handler(render: Render) -> Callable[[Request, Exception], Awaitable[Response]]:
    """An exception handler that answers every error with `render` of its problem."""

    async def handle(request: Request, error: Exception) -> Response:
        return render(request, problem(error))

    return handle


def install(app: FastAPI, render: Render) -> None:
    """Answer every error raised in `app` with `render` of its problem."""
    handle = handler(render)
    for error_class in _PROBLEMS:
        app.add_exception_handler(error_class, handle)
