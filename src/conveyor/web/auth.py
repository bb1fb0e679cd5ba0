"""Who is signed in: the session cookie, its flags, and the page guard.

Only a session cookie opens `/admin`; an `Authorization: Bearer` API key, even an
admin one, is not accepted there (keys are for machines, sessions for people).
"""

from __future__ import annotations

from urllib.parse import quote, urlsplit

from fastapi import Request
from starlette.responses import Response

from conveyor.config import Settings
from conveyor.sessions import Session, SessionStore
from conveyor.web import csrf
from conveyor.web.forms import Form

COOKIE = "conveyor_session"
COOKIE_PATH = "/admin"
LOGIN_PATH = "/admin/login"
HOME_PATH = "/admin/"


class LoginRequired(Exception):
    """No live session: the page guard sends the browser to the login page."""

    def __init__(self, next_path: str) -> None:
        super().__init__(next_path)
        self.next_path = next_path


def settings_of(request: Request) -> Settings:
    settings: Settings = request.app.state.platform.settings
    return settings


def sessions_of(request: Request) -> SessionStore:
    store: SessionStore = request.app.state.platform.sessions
    return store


def is_https(request: Request) -> bool:
    if request.url.scheme == "https":
        return True
    if settings_of(request).trust_proxy_headers:
        proto = request.headers.get("x-forwarded-proto", "").split(",")[0].strip().lower()
        return proto == "https"
    return False


def client_address(request: Request) -> str:
    if settings_of(request).trust_proxy_headers:
        # The proxy appends the address it saw: the last entry is the one it vouches for.
        forwarded = [a.strip() for a in request.headers.get("x-forwarded-for", "").split(",")]
        if forwarded[-1]:
            return forwarded[-1][:64]
    return request.client.host if request.client else "unknown"


def set_cookie(request: Request, response: Response, name: str, value: str) -> None:
    response.set_cookie(
        name,
        value,
        path=COOKIE_PATH,
        httponly=True,
        samesite="lax",
        secure=is_https(request),
    )


def clear_cookie(request: Request, response: Response, name: str) -> None:
    response.delete_cookie(
        name, path=COOKIE_PATH, httponly=True, samesite="lax", secure=is_https(request)
    )


def safe_next(value: str | None) -> str:
    """`value` if it is a path inside the back-office, else the home page (no open redirect)."""
    if not value or len(value) > 2048 or any(c in value for c in "\\\r\n\t") or "//" in value:
        return HOME_PATH
    parts = urlsplit(value)
    if parts.scheme or parts.netloc or not parts.path.startswith("/admin") or ".." in parts.path:
        return HOME_PATH
    if parts.path.startswith(LOGIN_PATH):
        return HOME_PATH
    return value


def login_url(next_path: str) -> str:
    return f"{LOGIN_PATH}?next={quote(next_path, safe='/')}"


async def current_session(request: Request) -> Session:
    """The signed-in session, or LoginRequired (the page dependency)."""
    session_id = request.cookies.get(COOKIE)
    session = await sessions_of(request).get(session_id) if session_id else None
    if session is None:
        path = request.url.path + (f"?{request.url.query}" if request.url.query else "")
        raise LoginRequired(path if request.method == "GET" else HOME_PATH)
    request.state.session = session
    return session


def check_csrf(request: Request, session: Session, form: Form) -> None:
    csrf.check(session.csrf_token, csrf.submitted(request, form))
