"""Custom table pages in use: the list (columns, sort, fixed and user filters, search,
page size), the form (sections, read-only, hidden values, help), the record, the
actions the page allows, and its CSV export. Designed in `page_designer.py`."""

from __future__ import annotations

import math
from typing import Annotated, Any

from fastapi import APIRouter, Path, Request
from starlette.responses import HTMLResponse, Response, StreamingResponse

from conveyor.exceptions import BadRequest, Conflict, Forbidden, RecordNotFound, ValidationError
from conveyor.platform import Platform
from conveyor.storage.page_check import Resolved
from conveyor.web import page_export, page_form, record_form, record_list
from conveyor.web.forms import FieldErrors
from conveyor.web.pages import SignedIn, platform_of, posted, see_other
from conveyor.web.templating import render
from conveyor.web.views.records import reference_labels

router = APIRouter()
NAV = None
RecordId = Annotated[int, Path(ge=1, le=2**63 - 1)]
PAGE = "/tables/{table}/pages/{slug}"
NOTICES = {
    "created": "Record created.",
    "saved": "Record saved.",
    "deleted": "Record deleted.",
    "elsewhere": "Saved. The record is not on this page: it does not match its filters.",
}


def base(page: Resolved) -> str:
    return f"/admin/tables/{page.table.name}/pages/{page.page.slug}"


async def _page(request: Request, table: str, slug: str) -> Resolved:
    return await platform_of(request).storage.pages.resolved(table, slug)


def _allow(page: Resolved, action: str) -> None:
    if not page.can(action):
        raise Forbidden(f"the page {page.page.title!r} does not allow {action}")


async def _on_page(platform: Platform, page: Resolved, record_id: int) -> bool:
    """Whether the record is one the page shows (it matches the page's fixed filters)."""
    params = [("id", str(record_id)), ("limit", "1")]
    items, _, _ = await platform.storage.records.query(
        page.table.name, params, fixed=page.page.filters
    )
    return bool(items)


async def _record(platform: Platform, page: Resolved, record_id: int) -> dict[str, Any]:
    record = await platform.storage.records.get(page.table.name, record_id)
    if not await _on_page(platform, page, record_id):
        raise RecordNotFound(f"record {record_id} is not on the page {page.page.title!r}")
    return record


@router.get(PAGE, response_class=HTMLResponse)
async def show_page(request: Request, table: str, slug: str, session: SignedIn) -> Response:
    platform = platform_of(request)
    page = await _page(request, table, slug)
    params = request.query_params.multi_items()
    listing = page_form.listing(page, base(page), params)
    if any(name.startswith(("op.", "v.")) for name, _ in params):
        return see_other(listing.url(table))
    items: list[dict[str, Any]] = []
    total, error, status = 0, None, 200
    foreign = page_form.foreign_filters(page, listing)
    try:
        if foreign:
            raise BadRequest(f"this page offers no filter on {', '.join(foreign)}")
        items, _, found = await platform.storage.records.query(
            table, listing.query(), fixed=page.page.filters
        )
        total = found or 0
    except BadRequest as exc:
        error, status = exc.message, 400
    context = {
        "page": page,
        "table": page.table,
        "base": base(page),
        "listing": listing,
        "items": items,
        "total": total,
        "pages": max(1, math.ceil(total / listing.size)),
        "error": error,
        "filter_ops": {f.name: record_list.filter_ops(f) for f in page.user_filters},
        "form_op": record_list.form_op,
        "labels": await reference_labels(platform, page.table, items),
        "page_sizes": page_form.page_sizes(page),
        "export_url": listing.url(table).replace(base(page), base(page) + "/export.csv", 1),
        "notice": NOTICES.get(request.query_params.get("notice", "")),
    }
    return render(request, "pages/list.html", context, status)


@router.get(PAGE + "/export.csv")
async def export(request: Request, table: str, slug: str, session: SignedIn) -> Response:
    platform = platform_of(request)
    page = await _page(request, table, slug)
    _allow(page, "export")
    listing = page_form.listing(page, base(page), request.query_params.multi_items())
    if foreign := page_form.foreign_filters(page, listing):
        raise BadRequest(f"this page offers no filter on {', '.join(foreign)}")
    # Counted (and the query checked) before the first byte, so a bad one is a 400.
    counting = [*page_export.params(listing), ("limit", "1"), ("count", "true")]
    _, _, total = await platform.storage.records.query(table, counting, fixed=page.page.filters)
    name = f"{table}-{slug}.csv"
    headers = {
        "Content-Disposition": f'attachment; filename="{name}"',
        "X-Total-Count": str(total or 0),
        "Cache-Control": "no-store",
    }
    body = page_export.rows(platform, page, listing, reference_labels)
    return StreamingResponse(body, media_type="text/csv; charset=utf-8", headers=headers)


def _form_context(
    page: Resolved,
    values: dict[str, Any],
    errors: FieldErrors | None = None,
    record: dict[str, Any] | None = None,
    labels: dict[str, dict[int, str]] | None = None,
) -> dict[str, Any]:
    return {
        "page": page,
        "table": page.table,
        "base": base(page),
        "sections": page_form.sections(page),
        "values": values,
        "errors": errors or FieldErrors(),
        "record": record,
        "labels": labels or {},
        "error": None,
    }


def _form_problems(problems: list[dict[str, Any]]) -> FieldErrors | None:
    """Problems the form itself found (JSON that does not parse), by field."""
    if not problems:
        return None
    invalid = ValidationError("invalid record", details=problems)
    return FieldErrors.of(invalid, [str(p["field"]) for p in problems])


def _errors(page: Resolved, error: ValidationError | Conflict) -> FieldErrors:
    shown = [w.field.name for w in page_form.editable(page)]
    if isinstance(error, ValidationError):
        return FieldErrors.of(error, shown)
    errors = FieldErrors()
    named = [d.get("field") for d in error.details or [] if isinstance(d, dict)]
    if named and named[0] in shown:
        errors.add(str(named[0]), error.message)
    else:
        errors.general.append(error.message)
    return errors


@router.get(PAGE + "/new", response_class=HTMLResponse)
async def new_record(request: Request, table: str, slug: str, session: SignedIn) -> Response:
    page = await _page(request, table, slug)
    _allow(page, "create")
    values = record_form.values_of_record(page.table, None)
    return render(request, "pages/form.html", _form_context(page, values))


@router.post(PAGE + "/new", response_class=HTMLResponse)
async def create_record(request: Request, table: str, slug: str, session: SignedIn) -> Response:
    form = await posted(request, session)
    platform = platform_of(request)
    page = await _page(request, table, slug)
    _allow(page, "create")
    data, problems = page_form.record_of(page, form)
    errors = _form_problems(problems)
    if errors is None:
        try:
            record = await platform.storage.records.create(table, data)
        except (ValidationError, Conflict) as exc:
            errors = _errors(page, exc)
        else:
            return see_other(await _after_write(platform, page, record["id"], "created"))
    values = record_form.values_of_form(page.table, form)
    return render(request, "pages/form.html", _form_context(page, values, errors), 422)


async def _after_write(platform: Platform, page: Resolved, record_id: int, notice: str) -> str:
    if await _on_page(platform, page, record_id):
        return f"{base(page)}/records/{record_id}?notice={notice}"
    return f"{base(page)}?notice=elsewhere"


@router.get(PAGE + "/records/{record_id}", response_class=HTMLResponse)
async def show_record(
    request: Request, table: str, slug: str, record_id: RecordId, session: SignedIn
) -> Response:
    platform = platform_of(request)
    page = await _page(request, table, slug)
    record = await _record(platform, page, record_id)
    context = _form_context(page, {}, record=record)
    context["labels"] = await reference_labels(platform, page.table, [record])
    context["notice"] = NOTICES.get(request.query_params.get("notice", ""))
    return render(request, "pages/detail.html", context)


@router.get(PAGE + "/records/{record_id}/edit", response_class=HTMLResponse)
async def edit_record(
    request: Request, table: str, slug: str, record_id: RecordId, session: SignedIn
) -> Response:
    platform = platform_of(request)
    page = await _page(request, table, slug)
    _allow(page, "edit")
    record = await _record(platform, page, record_id)
    values = record_form.values_of_record(page.table, record)
    labels = await reference_labels(platform, page.table, [record])
    return render(request, "pages/form.html", _form_context(page, values, None, record, labels))


@router.post(PAGE + "/records/{record_id}/edit", response_class=HTMLResponse)
async def update_record(
    request: Request, table: str, slug: str, record_id: RecordId, session: SignedIn
) -> Response:
    form = await posted(request, session)
    platform = platform_of(request)
    page = await _page(request, table, slug)
    _allow(page, "edit")
    record = await _record(platform, page, record_id)
    shown = record_form.values_of_record(page.table, record)
    data, problems = page_form.record_of(page, form, shown)
    errors = _form_problems(problems)
    if errors is None:
        try:
            await platform.storage.records.update(table, record_id, data)
        except (ValidationError, Conflict) as exc:
            errors = _errors(page, exc)
        else:
            return see_other(await _after_write(platform, page, record_id, "saved"))
    values = record_form.values_of_form(page.table, form)
    labels = await reference_labels(platform, page.table, [record])
    context = _form_context(page, values, errors, record, labels)
    return render(request, "pages/form.html", context, 422)


@router.post(PAGE + "/records/{record_id}/delete", response_class=HTMLResponse)
async def delete_record(
    request: Request, table: str, slug: str, record_id: RecordId, session: SignedIn
) -> Response:
    await posted(request, session)
    platform = platform_of(request)
    page = await _page(request, table, slug)
    _allow(page, "delete")
    await _record(platform, page, record_id)
    try:
        await platform.storage.records.delete(table, record_id)
    except Conflict as exc:
        context = _form_context(page, {}, record=await _record(platform, page, record_id))
        context["error"] = exc.message
        return render(request, "pages/detail.html", context, 409)
    return see_other(f"{base(page)}?notice=deleted")
