"""API keys: create (the key is shown once), list, revoke."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request
from starlette.responses import HTMLResponse, Response

from conveyor.exceptions import ValidationError
from conveyor.keys import Scope
from conveyor.web.forms import FieldErrors, Form, lines
from conveyor.web.pages import AdminOnly, NavItem, platform_of, posted, see_other
from conveyor.web.submit import field_errors, submit
from conveyor.web.templating import render

router = APIRouter()
NAV = NavItem(
    "API keys",
    "/admin/keys",
    "Create keys for services, see when they were last used, revoke them.",
    admin_only=True,
)
FIELDS = ("name", "scopes", "queues")
NOTICES = {"revoked": "API key revoked: it stops working within seconds everywhere."}


async def _page(
    request: Request,
    *,
    values: dict[str, Any] | None = None,
    errors: FieldErrors | None = None,
    created: dict[str, Any] | None = None,
    status: int = 200,
) -> HTMLResponse:
    context = {
        "keys": list(reversed(await platform_of(request).keys.list())),
        "scopes": [s.value for s in Scope],
        "values": values or {"name": "", "scopes": [], "queues": ""},
        "errors": errors or FieldErrors(),
        "created": created,
        "notice": NOTICES.get(request.query_params.get("notice", "")),
    }
    return render(request, "keys/list.html", context, status)


@router.get("/keys", response_class=HTMLResponse)
async def list_keys(request: Request, session: AdminOnly) -> HTMLResponse:
    return await _page(request)


def _values(form: Form) -> dict[str, Any]:
    return {
        "name": form.get("name"),
        "scopes": form.getlist("scopes"),
        "queues": form.get("queues"),
    }


@router.post("/keys", response_class=HTMLResponse)
async def create_key(request: Request, session: AdminOnly) -> Response:
    form = await posted(request, session)
    queues = lines(form.get("queues")) or None
    # The store stops at the first problem; the form shows every missing field at once.
    missing = FieldErrors()
    if not form.get("name").strip():
        missing.add("name", "give a name of 1 to 200 characters")
    if not form.getlist("scopes"):
        missing.add("scopes", "give at least one scope")
    if missing:
        return await _page(request, values=_values(form), errors=missing, status=422)
    return await submit(
        platform_of(request).keys.create(form.get("name"), form.getlist("scopes"), queues),
        explain=field_errors(FIELDS),
        again=lambda errors: _page(request, values=_values(form), errors=errors, status=422),
        then=lambda created: _page(
            request, created={"key": created[0], "token": created[1]}, status=201
        ),
        refusals=(ValidationError,),
    )


@router.post("/keys/{keyid}/revoke")
async def revoke_key(request: Request, keyid: str, session: AdminOnly) -> Response:
    await posted(request, session)
    await platform_of(request).keys.revoke(keyid)
    return see_other("/admin/keys?notice=revoked")
