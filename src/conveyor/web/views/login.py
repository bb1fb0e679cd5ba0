"""Signing in and out.

A successful login always starts a brand-new session (any session the browser held
is deleted), so a session id planted before login is worthless afterwards.
"""

from __future__ import annotations

from fastapi import APIRouter, Request
from starlette.responses import HTMLResponse, Response

from conveyor.logins import LoginThrottle
from conveyor.web import auth, csrf
from conveyor.web.forms import read_form
from conveyor.web.pages import SignedIn, platform_of, posted, see_other
from conveyor.web.templating import render

router = APIRouter()
NAV = None
MAX_USERNAME = 150
MAX_PASSWORD = 1024


def _login_page(
    request: Request,
    token: str,
    *,
    next_path: str,
    username: str = "",
    error: str = "",
    status: int = 200,
) -> HTMLResponse:
    notice = "You are signed out." if request.query_params.get("notice") == "signed-out" else None
    context = {
        "login_token": token,
        "next_path": next_path,
        "username": username,
        "error": error,
        "notice": notice,
    }
    response = render(request, "login.html", context, status)
    auth.set_cookie(request, response, csrf.LOGIN_COOKIE, token)
    return response


@router.get("/login", response_class=HTMLResponse)
async def login_form(request: Request) -> Response:
    next_path = auth.safe_next(request.query_params.get("next"))
    session_id = request.cookies.get(auth.COOKIE)
    if session_id and await auth.sessions_of(request).get(session_id):
        return see_other(next_path)
    token = request.cookies.get(csrf.LOGIN_COOKIE) or csrf.new_token()
    return _login_page(request, token, next_path=next_path)


@router.post("/login", response_class=HTMLResponse)
async def login(request: Request) -> Response:
    form = await read_form(request)
    csrf.check(request.cookies.get(csrf.LOGIN_COOKIE), csrf.submitted(request, form))
    username = form.get("username").strip()[:MAX_USERNAME]
    password = form.get("password")
    next_path = auth.safe_next(form.get("next"))
    token = csrf.new_token()
    throttle: LoginThrottle = platform_of(request).logins
    address = auth.client_address(request)
    wait_s = await throttle.attempt(username, address)
    if wait_s:
        error = f"Too many failed sign-ins. Try again in {wait_s} s."
        page = _login_page(
            request, token, next_path=next_path, username=username, error=error, status=429
        )
        page.headers["Retry-After"] = str(wait_s)
        return page
    plausible = username and len(password) <= MAX_PASSWORD
    user = await platform_of(request).users.authenticate(username, password) if plausible else None
    if user is None:
        throttle.failed(username, address)
        error = "Wrong username or password."
        return _login_page(
            request, token, next_path=next_path, username=username, error=error, status=401
        )
    await throttle.succeeded(username, address)
    store = auth.sessions_of(request)
    old = request.cookies.get(auth.COOKIE)
    if old:
        await store.delete(old)
    _, session_id = await store.create(user)
    response = see_other(next_path)
    auth.set_cookie(request, response, auth.COOKIE, session_id)
    auth.clear_cookie(request, response, csrf.LOGIN_COOKIE)
    return response


@router.post("/logout")
async def logout(request: Request, session: SignedIn) -> Response:
    await posted(request, session)
    await auth.sessions_of(request).delete(request.cookies.get(auth.COOKIE, ""))
    response = see_other(f"{auth.LOGIN_PATH}?notice=signed-out")
    auth.clear_cookie(request, response, auth.COOKIE)
    return response
