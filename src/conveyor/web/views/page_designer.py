"""The page designer, beside the table designer: build a custom page of a table from
its fields (no JSON), preview it, save it; the index of pages, grouped by table; and
each table's display field (how its records are named in references)."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request
from starlette.responses import HTMLResponse, Response

from conveyor.exceptions import Conflict, ValidationError
from conveyor.storage import page_spec
from conveyor.storage.model import TableDef
from conveyor.storage.page_check import resolve
from conveyor.storage.tables import DISPLAY_EXCLUDED
from conveyor.web import page_designer_form as designer
from conveyor.web import record_form
from conveyor.web.forms import FieldErrors
from conveyor.web.pages import NavItem, SignedIn, platform_of, posted, see_other, wants_partial
from conveyor.web.templating import render
from conveyor.web.views.records import reference_labels

router = APIRouter()
NAV = NavItem("Pages", "/admin/pages", "The pages designed for tables, grouped by table.")
SETTINGS = ("title", "slug", "description", "page_size", "sort")
PREVIEW_ROWS = 5
NOTICES = {
    "saved": "Page saved.",
    "deleted": "Page deleted.",
    "display": "Display field saved.",
}


@router.get("/pages", response_class=HTMLResponse)
async def index(request: Request, session: SignedIn) -> HTMLResponse:
    platform = platform_of(request)
    links = await platform.storage.pages.links()
    groups: dict[str, list[Any]] = {}
    for link in links:
        groups.setdefault(link.table, []).append(link)
    context = {
        "tables": await platform.storage.tables.list(),
        "groups": groups,
        "notice": NOTICES.get(request.query_params.get("notice", "")),
    }
    return render(request, "pages/index.html", context)


def _display_choices(table: TableDef) -> list[str]:
    return [f.name for f in table.fields if f.type not in DISPLAY_EXCLUDED]


async def _designer(
    request: Request,
    table: TableDef,
    design: designer.Design,
    *,
    slug: str | None = None,
    errors: FieldErrors | None = None,
    problems: list[dict[str, Any]] | None = None,
    preview: dict[str, Any] | None = None,
    status: int = 200,
) -> HTMLResponse:
    tables = await platform_of(request).storage.tables.list()
    referenced = {f.table for f in table.fields if f.table} | {table.name}
    context = {
        "table": table,
        "design": design,
        "slug": slug,
        "roles": designer.ROLES,
        "ops": designer.filter_ops(table),
        "errors": errors or FieldErrors(),
        "problems": problems or [],
        "preview": preview,
        "displays": [(t, _display_choices(t)) for t in tables if t.name in referenced],
        "shown": {t.name: record_form.display_field(t) for t in tables},
        "notice": NOTICES.get(request.query_params.get("notice", "")),
    }
    return render(request, "pages/design.html", context, status)


def _errors(error: ValidationError | Conflict) -> FieldErrors:
    if isinstance(error, Conflict):
        errors = FieldErrors()
        errors.add("slug", error.message)
        return errors
    return FieldErrors.of(error, SETTINGS)


@router.get("/tables/{table}/page-designer", response_class=HTMLResponse)
async def new_page(request: Request, table: str, session: SignedIn) -> HTMLResponse:
    definition = await platform_of(request).storage.tables.get(table)
    return await _designer(request, definition, designer.generated(definition))


@router.post("/tables/{table}/page-designer", response_class=HTMLResponse)
async def create_page(request: Request, table: str, session: SignedIn) -> Response:
    form = await posted(request, session)
    storage = platform_of(request).storage
    definition = await storage.tables.get(table)
    design = designer.of_form(form, definition)
    try:
        stored = await storage.pages.create(table, designer.spec_of(design, definition))
    except (ValidationError, Conflict) as exc:
        return await _designer(request, definition, design, errors=_errors(exc), status=422)
    return see_other(f"/admin/tables/{table}/pages/{stored.page.slug}/design?notice=saved")


@router.get("/tables/{table}/pages/{slug}/design", response_class=HTMLResponse)
async def edit_page(request: Request, table: str, slug: str, session: SignedIn) -> HTMLResponse:
    storage = platform_of(request).storage
    definition = await storage.tables.get(table)
    stored = await storage.pages.get(table, slug)
    problems = resolve(stored.page, definition).problems
    design = designer.of_page(stored.page, definition)
    return await _designer(request, definition, design, slug=slug, problems=problems)


@router.post("/tables/{table}/pages/{slug}/design", response_class=HTMLResponse)
async def save_page(request: Request, table: str, slug: str, session: SignedIn) -> Response:
    form = await posted(request, session)
    storage = platform_of(request).storage
    definition = await storage.tables.get(table)
    await storage.pages.get(table, slug)  # 404 before anything else
    design = designer.of_form(form, definition)
    try:
        stored, _ = await storage.pages.put(table, slug, designer.spec_of(design, definition))
    except (ValidationError, Conflict) as exc:
        errors = _errors(exc)
        return await _designer(request, definition, design, slug=slug, errors=errors, status=422)
    return see_other(f"/admin/tables/{table}/pages/{stored.page.slug}/design?notice=saved")


@router.post("/tables/{table}/pages/{slug}/delete-page", response_class=HTMLResponse)
async def delete_page(request: Request, table: str, slug: str, session: SignedIn) -> Response:
    await posted(request, session)
    await platform_of(request).storage.pages.delete(table, slug)
    return see_other("/admin/pages?notice=deleted")


@router.post("/tables/{table}/page-designer/preview", response_class=HTMLResponse)
async def preview(request: Request, table: str, session: SignedIn) -> HTMLResponse:
    """The page as designed so far, on the table's newest records; nothing is saved."""
    form = await posted(request, session)
    platform = platform_of(request)
    definition = await platform.storage.tables.get(table)
    design = designer.of_form(form, definition)
    spec = designer.spec_of(design, definition)
    if not spec["slug"]:
        spec["slug"] = "preview"
    page, problems = page_spec.parse(spec)
    context: dict[str, Any] = {"problems": problems, "resolved": None, "items": [], "labels": {}}
    if page is not None:
        resolved = resolve(page, definition)
        params = [("limit", str(PREVIEW_ROWS))] + (
            [("sort", resolved.sort)] if resolved.sort else []
        )
        items, _, _ = await platform.storage.records.query(table, params, fixed=page.filters)
        context |= {
            "problems": resolved.problems,
            "resolved": resolved,
            "items": items,
            "labels": await reference_labels(platform, definition, items),
        }
    if wants_partial(request):
        return render(request, "pages/_preview.html", context)
    slug = request.query_params.get("slug") or None
    return await _designer(request, definition, design, slug=slug, preview=context)


@router.post("/tables/{table}/display-field", response_class=HTMLResponse)
async def save_display_field(request: Request, table: str, session: SignedIn) -> Response:
    form = await posted(request, session)
    chosen = form.get("display_field") or None
    await platform_of(request).storage.tables.update(table, {"display_field": chosen})
    back = form.get("next")
    if not back.startswith("/admin/") or back.startswith("//"):
        back = "/admin/pages"
    separator = "&" if "?" in back else "?"
    return see_other(f"{back}{separator}notice=display")
