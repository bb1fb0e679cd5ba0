"""Generated CRUD pages per table: records list (search, filters, sorting, pages),
create and edit forms built from the field types, detail with its outbox messages,
delete, and the reference picker's options."""

from __future__ import annotations

import math
from typing import Annotated, Any

from fastapi import APIRouter, Path, Request
from starlette.responses import HTMLResponse, Response

from conveyor.exceptions import BadRequest, Conflict, ValidationError
from conveyor.platform import Platform
from conveyor.storage.fields import FieldType
from conveyor.storage.model import TableDef
from conveyor.storage.validate import check
from conveyor.web import record_form, record_list
from conveyor.web.forms import FieldErrors
from conveyor.web.pages import SignedIn, platform_of, posted, see_other
from conveyor.web.submit import field_errors, submit
from conveyor.web.templating import render

router = APIRouter()
NAV = None
RecordId = Annotated[int, Path(ge=1, le=2**63 - 1)]
NOTICES = {
    "created": "Record created.",
    "saved": "Record saved.",
    "deleted": "Record deleted.",
    "retried": "The message is pending again: the relay sends it now.",
}
PICK_LIMIT = 20
OUTBOX_ROWS = 20


async def reference_labels(
    platform: Platform, table: TableDef, records: list[dict[str, Any]]
) -> dict[str, dict[int, str]]:
    """For each reference field: the label of each referenced record on the page
    (one query per reference field)."""
    labels: dict[str, dict[int, str]] = {}
    for f in table.fields:
        if f.type is not FieldType.REFERENCE or f.table is None:
            continue
        ids = sorted({r[f.name] for r in records if r.get(f.name) is not None})
        if not ids:
            continue
        target = await platform.storage.tables.get(f.table)
        shown = record_form.display_field(target)
        params = [("id[in]", ",".join(map(str, ids))), ("limit", str(len(ids)))]
        found, _, _ = await platform.storage.records.query(target.name, params)
        labels[f.name] = {r["id"]: str(r.get(shown.name) or "") if shown else "" for r in found}
    return labels


@router.get("/tables/{table}", response_class=HTMLResponse)
async def list_records(request: Request, table: str, session: SignedIn) -> Response:
    platform = platform_of(request)
    definition = await platform.storage.tables.get(table)
    params = request.query_params.multi_items()
    listing = record_list.read(params)
    if any(name.startswith(("op.", "v.")) for name, _ in params):
        # The filter form's pairs, written back as the records API's syntax.
        return see_other(listing.url(table))
    items: list[dict[str, Any]] = []
    total, error, status = 0, None, 200
    try:
        items, _, found = await platform.storage.records.query(table, listing.query())
        total = found or 0
    except BadRequest as exc:
        error, status = exc.message, 400
    context = {
        "table": definition,
        "listing": listing,
        "items": items,
        "total": total,
        "pages": max(1, math.ceil(total / listing.size)),
        "error": error,
        "columns": record_list.columns(definition),
        "filter_ops": {f.name: record_list.filter_ops(f) for f in definition.fields},
        "form_op": record_list.form_op,
        "labels": await reference_labels(platform, definition, items),
        "page_sizes": record_list.PAGE_SIZES,
        "notice": NOTICES.get(request.query_params.get("notice", "")),
    }
    return render(request, "records/list.html", context, status)


@router.get("/tables/{table}/pick", response_class=HTMLResponse)
async def pick(request: Request, table: str, session: SignedIn) -> HTMLResponse:
    """The reference picker's options: records whose name or id matches `q`."""
    platform = platform_of(request)
    definition = await platform.storage.tables.get(table)
    shown = record_form.display_field(definition)
    term = request.query_params.get("q", "").strip()[:100]
    params = [("limit", str(PICK_LIMIT)), ("sort", "-id")]
    if term.isdigit() and len(term) <= 18:
        params.append(("id", term))
    elif term and shown is not None:
        params.append((f"{shown.name}[icontains]", term))
    items, _, _ = await platform.storage.records.query(table, params)
    context = {"items": items, "shown": shown}
    return render(request, "records/_pick.html", context)


async def _form_context(
    request: Request,
    table: TableDef,
    values: dict[str, Any],
    errors: FieldErrors | None = None,
    record: dict[str, Any] | None = None,
) -> dict[str, Any]:
    # Each reference input shows the record it names (its label, linked), not an id alone.
    ids = {
        f.name: int(values[f.name])
        for f in table.fields
        if f.type is FieldType.REFERENCE and str(values.get(f.name) or "").isdigit()
    }
    labels = await reference_labels(platform_of(request), table, [ids]) if ids else {}
    return {
        "table": table,
        "widgets": record_form.widgets(table),
        "values": values,
        "errors": errors or FieldErrors(),
        "record": record,
        "labels": labels,
    }


async def _with_form_problems(
    table: TableDef, data: dict[str, Any], problems: list[dict[str, Any]]
) -> FieldErrors:
    """The form's own problems, plus every problem the service would find in the rest
    (the same checks a write runs), so that one round trip shows them all."""
    bad = {p["field"] for p in problems}
    _, found = await check(table, {k: v for k, v in data.items() if k not in bad})
    found = [p for p in found if p.get("field") not in bad]
    return FieldErrors.of(
        ValidationError("invalid record", details=problems + found),
        bad | {f.name for f in table.fields},
    )


@router.get("/tables/{table}/records/new", response_class=HTMLResponse)
async def new_record(request: Request, table: str, session: SignedIn) -> HTMLResponse:
    definition = await platform_of(request).storage.tables.get(table)
    values = record_form.values_of_record(definition, None)
    context = await _form_context(request, definition, values)
    return render(request, "records/form.html", context)


@router.post("/tables/{table}/records/new", response_class=HTMLResponse)
async def create_record(request: Request, table: str, session: SignedIn) -> Response:
    form = await posted(request, session)
    storage = platform_of(request).storage
    definition = await storage.tables.get(table)
    data, problems = record_form.record_of(definition, form)
    values = record_form.values_of_form(definition, form)

    async def again(errors: FieldErrors) -> Response:
        context = await _form_context(request, definition, values, errors)
        return render(request, "records/form.html", context, 422)

    if problems:
        return await again(await _with_form_problems(definition, data, problems))
    return await submit(
        storage.records.create(table, data),
        explain=field_errors(f.name for f in definition.fields),
        again=again,
        then=lambda record: see_other(
            f"/admin/tables/{table}/records/{record['id']}?notice=created"
        ),
    )


async def _detail(
    request: Request, table: str, record_id: int, *, error: str | None = None, status: int = 200
) -> HTMLResponse:
    platform = platform_of(request)
    definition = await platform.storage.tables.get(table)
    record = await platform.storage.records.get(table, record_id)
    messages = await platform.outbox.page(
        table_name=table, record_id=str(record_id), limit=OUTBOX_ROWS
    )
    context = {
        "table": definition,
        "record": record,
        "labels": await reference_labels(platform, definition, [record]),
        "messages": messages,
        "queue_names": {q.id: q.name for q in await platform.queues.list()},
        "more_messages": len(messages) == OUTBOX_ROWS,
        "error": error,
        "notice": NOTICES.get(request.query_params.get("notice", "")),
    }
    return render(request, "records/detail.html", context, status)


@router.get("/tables/{table}/records/{record_id}", response_class=HTMLResponse)
async def show_record(
    request: Request, table: str, record_id: RecordId, session: SignedIn
) -> HTMLResponse:
    return await _detail(request, table, record_id)


@router.get("/tables/{table}/records/{record_id}/edit", response_class=HTMLResponse)
async def edit_record(
    request: Request, table: str, record_id: RecordId, session: SignedIn
) -> HTMLResponse:
    storage = platform_of(request).storage
    definition = await storage.tables.get(table)
    record = await storage.records.get(table, record_id)
    values = record_form.values_of_record(definition, record)
    context = await _form_context(request, definition, values, None, record)
    return render(request, "records/form.html", context)


@router.post("/tables/{table}/records/{record_id}/edit", response_class=HTMLResponse)
async def update_record(
    request: Request, table: str, record_id: RecordId, session: SignedIn
) -> Response:
    form = await posted(request, session)
    storage = platform_of(request).storage
    definition = await storage.tables.get(table)
    record = await storage.records.get(table, record_id)
    shown = record_form.values_of_record(definition, record)
    data, problems = record_form.record_of(definition, form, shown)
    values = record_form.values_of_form(definition, form)

    async def again(errors: FieldErrors) -> Response:
        context = await _form_context(request, definition, values, errors, record)
        return render(request, "records/form.html", context, 422)

    if problems:
        whole = {f.name: record.get(f.name) for f in definition.fields} | data
        return await again(await _with_form_problems(definition, whole, problems))
    return await submit(
        storage.records.update(table, record_id, data),
        explain=field_errors(f.name for f in definition.fields),
        again=again,
        then=lambda _: see_other(f"/admin/tables/{table}/records/{record_id}?notice=saved"),
    )


@router.post("/tables/{table}/records/{record_id}/delete", response_class=HTMLResponse)
async def delete_record(
    request: Request, table: str, record_id: RecordId, session: SignedIn
) -> Response:
    await posted(request, session)
    try:
        await platform_of(request).storage.records.delete(table, record_id)
    except Conflict as exc:  # another record refers to it (on delete restrict)
        return await _detail(request, table, record_id, error=exc.message, status=409)
    return see_other(f"/admin/tables/{table}?notice=deleted")
