"""Errors as pages: the back-office's rendering of the shared error boundary
(`conveyor.problems`), and the answers of its own two errors (signed out, forged form)."""

from __future__ import annotations

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from starlette.responses import PlainTextResponse, RedirectResponse, Response

from conveyor import problems
from conveyor.problems import Problem
from conveyor.web import auth
from conveyor.web.csrf import CsrfFailed
from conveyor.web.pages import wants_partial
from conveyor.web.templating import render

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

#: What a page says for the problems whose API message speaks to programs.
MESSAGES = {
    "not_found": "There is no such page.",
    "query_too_large": "The database refused this query; make it smaller.",
    "database_unavailable": "The database is unavailable; retry in a moment.",
    "internal_error": "An internal error occurred; the server log has details.",
}


def _page(request: Request, status: int, message: str) -> Response:
    context = {"title": TITLES.get(status, "Error"), "message": message, "status": status}
    if wants_partial(request):
        return render(request, "_error.html", context, status)
    return render(request, "error.html", context, status)


def page(request: Request, problem: Problem) -> Response:
    return _page(request, problem.status, MESSAGES.get(problem.code, problem.message))


async def _login_required(request: Request, error: Exception) -> Response:
    assert isinstance(error, auth.LoginRequired)
    if wants_partial(request):
        # A fragment request from a page whose session ended: app.js reloads the page.
        return PlainTextResponse("sign in again", status_code=401)
    return RedirectResponse(auth.login_url(error.next_path), status_code=303)


async def _csrf_failed(request: Request, error: Exception) -> Response:
    message = "This form has expired or did not come from this site. Reload the page and try again."
    return _page(request, 403, message)


async def _bad_request(request: Request, error: Exception) -> Response:
    # A form the browser sent that does not fit its route: no field list for people.
    return _page(request, 400, "The request is malformed.")


def install(app: FastAPI) -> None:
    problems.install(app, page)
    app.add_exception_handler(auth.LoginRequired, _login_required)
    app.add_exception_handler(CsrfFailed, _csrf_failed)
    app.add_exception_handler(RequestValidationError, _bad_request)
