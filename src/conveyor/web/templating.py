"""Jinja2 rendering: autoescaped templates, the shared page context, formatting filters."""

from __future__ import annotations

import hashlib
from datetime import UTC, datetime
from functools import cache
from pathlib import Path
from typing import Any

import orjson
from fastapi import Request
from jinja2 import Environment, FileSystemLoader, StrictUndefined, select_autoescape
from starlette.responses import HTMLResponse

from conveyor.queues.headers import from_epoch_ms
from conveyor.sessions import Session

HERE = Path(__file__).parent
STATIC_DIR = HERE / "static"
STATIC_PATH = "/admin/static"


@cache
def static_url(name: str) -> str:
    """The URL of a static file, versioned by its content so it can be cached for long."""
    digest = hashlib.sha256((STATIC_DIR / name).read_bytes()).hexdigest()[:12]
    return f"{STATIC_PATH}/{name}?v={digest}"


def when(value: datetime | int | None) -> str:
    """A UTC time as `2026-11-27 14:03:09 UTC` (epoch milliseconds accepted)."""
    if value is None:
        return "—"
    if isinstance(value, int):
        value = from_epoch_ms(value)
    return value.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S UTC")


def ago(value: datetime | None, now: datetime | None = None) -> str:
    if value is None:
        return "never"
    seconds = int(((now or datetime.now(UTC)) - value).total_seconds())
    for unit, size in (("d", 86400), ("h", 3600), ("min", 60)):
        if seconds >= size:
            return f"{seconds // size} {unit} ago"
    return "just now" if seconds < 5 else f"{seconds} s ago"


def pretty_json(body: bytes | str) -> str:
    """A message body indented for reading, or as it is when it is not JSON."""
    try:
        return orjson.dumps(orjson.loads(body), option=orjson.OPT_INDENT_2).decode()
    except orjson.JSONDecodeError:
        return body.decode("utf-8", "replace") if isinstance(body, bytes) else body


def json_text(value: Any, compact: bool = False) -> str:
    """A JSON value as text: indented for reading, or on one line."""
    return orjson.dumps(value, option=0 if compact else orjson.OPT_INDENT_2).decode()


def _parsed(value: str | None) -> datetime | None:
    try:
        return datetime.fromisoformat(value) if value else None
    except ValueError:
        return None


def iso_when(value: str | None) -> str:
    """An ISO 8601 time (as records carry them) like `when` shows times."""
    parsed = _parsed(value)
    return when(parsed) if parsed else (value or "—")


def iso_ago(value: str | None) -> str:
    parsed = _parsed(value)
    return ago(parsed) if parsed else (value or "—")


def count(value: int | None) -> str:
    return "—" if value is None else f"{value:,}"


def number(value: float | int) -> str:
    """30.0 as 30, 0.5 as 0.5: options read as they were typed."""
    return str(int(value)) if float(value).is_integer() else str(value)


def environment() -> Environment:
    env = Environment(
        loader=FileSystemLoader(HERE / "templates"),
        autoescape=select_autoescape(default=True, default_for_string=True),
        undefined=StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
    )
    env.globals["static_url"] = static_url
    env.filters.update(
        when=when,
        ago=ago,
        pretty_json=pretty_json,
        count=count,
        number=number,
        tojson_pretty=json_text,
        iso_when=iso_when,
        iso_ago=iso_ago,
    )
    return env


def render(
    request: Request, template: str, context: dict[str, Any] | None = None, status: int = 200
) -> HTMLResponse:
    """A page (or fragment) with the signed-in user, CSRF token and navigation filled in."""
    session: Session | None = getattr(request.state, "session", None)
    page = {
        "request": request,
        "path": request.url.path,
        "user": session.user if session else None,
        "csrf_token": session.csrf_token if session else "",
        "nav": [
            item
            for item in request.app.state.nav
            if not item.admin_only or (session is not None and session.user.is_admin)
        ],
        "notice": None,
        **(context or {}),
    }
    templates: Environment = request.app.state.templates
    html = templates.get_template(template).render(page)
    return HTMLResponse(html, status_code=status)
