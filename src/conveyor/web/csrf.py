"""CSRF protection: a synchronizer token on every state-changing request.

Signed-in pages carry their session's token (stored server-side with the session) in
a hidden `csrf_token` field, or in the `X-CSRF-Token` header for requests made by
`app.js`. The login form, which has no session yet, uses a double-submit cookie. A
POST whose token is missing or wrong is refused with 403 before anything happens, and
no GET changes state.
"""

from __future__ import annotations

import hmac
import secrets

from fastapi import Request

from conveyor.web.forms import Form

FIELD = "csrf_token"
HEADER = "x-csrf-token"
LOGIN_COOKIE = "conveyor_login_csrf"


class CsrfFailed(Exception):
    """The form is missing its CSRF token, or carries a wrong one."""


def new_token() -> str:
    return secrets.token_urlsafe(32)


def submitted(request: Request, form: Form) -> str:
    return form.get(FIELD) or request.headers.get(HEADER, "")


def check(expected: str | None, given: str) -> None:
    """Raise CsrfFailed unless `given` is the expected token (constant-time compare)."""
    if not expected or not given or not hmac.compare_digest(expected.encode(), given.encode()):
        raise CsrfFailed()
