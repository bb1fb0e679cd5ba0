"""Errors as pages: the same exception→status table as the API, rendered as HTML."""

from __future__ import annotations

import logging

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from sqlalchemy.exc import InterfaceError, OperationalError
from sqlalchemy.exc import TimeoutError as PoolTimeout
from starlette.exceptions import HTTPException
from starlette.responses import PlainTextResponse, RedirectResponse, Response

from conveyor import exceptions as exc
from conveyor.db import errors as db_errors
from conveyor.web import auth
from conveyor.web.csrf import CsrfFailed
from conveyor.web.pages import wants_partial
from conveyor.web.templating import render

log = logging.getLogger(__name__)

TITLES = {
    400: "Bad request",
    403: "Forbidden",
    404: "Not found",
    405: "Method not allowed",
    409: "Conflict",
    413: "Too large",
    422: "Invalid input",
    500: "Something went wrong",
    503: "Unavailable",
}


def _page(request: Request, status: int, message: str) -> Response:
    context = {"title": TITLES.get(status, "Error"), "message": message, "status": status}
    if wants_partial(request):
        return render(request, "_error.html", context, status)
    return render(request, "error.html", context, status)


async def _login_required(request: Request, error: Exception) -> Response:
    assert isinstance(error, auth.LoginRequired)
    if wants_partial(request):
        # A fragment request from a page whose session ended: app.js reloads the page.
        return PlainTextResponse("sign in again", status_code=401)
    return RedirectResponse(auth.login_url(error.next_path), status_code=303)


async def _csrf_failed(request: Request, error: Exception) -> Response:
    message = "This form has expired or did not come from this site. Reload the page and try again."
    return _page(request, 403, message)


async def _conveyor_error(request: Request, error: Exception) -> Response:
    # Imported here: `conveyor.api` mounts this package, so a top-level import would cycle.
    from conveyor.api.errors import status_for

    assert isinstance(error, exc.ConveyorError)
    return _page(request, status_for(error), error.message)


async def _http_error(request: Request, error: Exception) -> Response:
    assert isinstance(error, HTTPException)
    message = "There is no such page." if error.status_code == 404 else str(error.detail)
    return _page(request, error.status_code, message)


async def _bad_request(request: Request, error: Exception) -> Response:
    return _page(request, 400, "The request is malformed.")


async def _database_unavailable(request: Request, error: Exception) -> Response:
    if db_errors.caused_by_request(error):
        log.info("query refused by the database: %s", db_errors.summary(error))
        return _page(request, 400, "The database refused this query; make it smaller.")
    log.warning("database unavailable: %s", db_errors.summary(error))
    return _page(request, 503, "The database is unavailable; retry in a moment.")


async def _unexpected(request: Request, error: Exception) -> Response:
    if db_errors.caused_by_request(error):
        return await _database_unavailable(request, error)
    log.error("unhandled error in the back-office", exc_info=error)
    return _page(request, 500, "An internal error occurred; the server log has details.")


def install(app: FastAPI) -> None:
    app.add_exception_handler(auth.LoginRequired, _login_required)
    app.add_exception_handler(CsrfFailed, _csrf_failed)
    app.add_exception_handler(exc.ConveyorError, _conveyor_error)
    app.add_exception_handler(HTTPException, _http_error)
    app.add_exception_handler(RequestValidationError, _bad_request)
    for db_error in (OperationalError, InterfaceError, PoolTimeout, ConnectionError):
        app.add_exception_handler(db_error, _database_unavailable)
    app.add_exception_handler(Exception, _unexpected)
