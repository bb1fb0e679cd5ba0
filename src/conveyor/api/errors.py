"""Errors as JSON: the API's rendering of the shared error boundary (`conveyor.problems`)."""

from __future__ import annotations

from fastapi import FastAPI, Request
from starlette.responses import Response

from conveyor import problems
from conveyor.api.responses import error_response
from conveyor.problems import Problem


def render(_: Request, problem: Problem) -> Response:
    """`{"error": {"code", "message", "details"}}` with the problem's status."""
    return error_response(
        problem.status, problem.code, problem.message, problem.details, problem.headers
    )


def install(app: FastAPI) -> None:
    problems.install(app, render)


async def respond(request: Request, error: Exception) -> Response:
    """The answer to `error` raised by an endpoint, for callers outside FastAPI."""
    return render(request, problems.problem(error))
