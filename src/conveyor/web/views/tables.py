"""Tables: the list (with record counts and links), and creating a table.

A new table starts empty; its fields, rules and links are added in the designer
(`designer.py`), its records are browsed in `records.py`.
"""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request
from starlette.responses import HTMLResponse, Response

from conveyor.platform import Platform
from conveyor.storage.model import TableDef
from conveyor.web.forms import FieldErrors, Form
from conveyor.web.pages import NavItem, SignedIn, platform_of, posted, see_other
from conveyor.web.submit import field_errors, submit
from conveyor.web.templating import render

router = APIRouter()
NAV = NavItem(
    "Tables",
    "/admin/tables",
    "Design tables, their validation rules and links to queues; browse and edit records.",
)
FIELDS = ("name", "label", "description")
NOTICES = {"deleted": "Table deleted."}


async def record_count(platform: Platform, table: TableDef) -> int | None:
    """How many records a table holds (through the records query, as the API counts)."""
    _, _, total = await platform.storage.records.query(
        table.name, [("limit", "1"), ("count", "true")]
    )
    return total


async def _page(
    request: Request,
    *,
    values: dict[str, str] | None = None,
    errors: FieldErrors | None = None,
    status: int = 200,
) -> HTMLResponse:
    platform = platform_of(request)
    tables = await platform.storage.tables.list()
    links: dict[str, int] = {}
    for link in await platform.links.all():
        links[link.table_name] = links.get(link.table_name, 0) + 1
    context: dict[str, Any] = {
        "tables": tables,
        "counts": {t.name: await record_count(platform, t) for t in tables},
        "links": links,
        "values": values or {"name": "", "label": "", "description": ""},
        "errors": errors or FieldErrors(),
        "notice": NOTICES.get(request.query_params.get("notice", "")),
    }
    return render(request, "tables/list.html", context, status)


@router.get("/tables", response_class=HTMLResponse)
async def list_tables(request: Request, session: SignedIn) -> HTMLResponse:
    return await _page(request)


def _spec(form: Form) -> dict[str, Any]:
    return {
        "name": form.get("name").strip(),
        "label": form.get("label").strip() or None,
        "description": form.get("description").strip() or None,
    }


@router.post("/tables", response_class=HTMLResponse)
async def create_table(request: Request, session: SignedIn) -> Response:
    form = await posted(request, session)
    values = {name: form.get(name) for name in FIELDS}
    return await submit(
        platform_of(request).storage.tables.create(_spec(form)),
        explain=field_errors(FIELDS, conflict_field="name"),
        again=lambda errors: _page(request, values=values, errors=errors, status=422),
        then=lambda table: see_other(f"/admin/tables/{table.name}/design?notice=created"),
    )
