"""The designer's field forms: add, edit (rename, retype, options) and delete a field.

Changes go through the storage service, which refuses (409) a change that stored
records would break and says why; the form shows that above the fields.
"""

from __future__ import annotations

import re
from collections.abc import Awaitable
from typing import Any

from fastapi import APIRouter, Request
from starlette.responses import HTMLResponse, Response

from conveyor.exceptions import Conflict, ValidationError
from conveyor.storage.fields import Field
from conveyor.storage.model import TableDef
from conveyor.web import field_form
from conveyor.web.forms import FieldErrors, Form
from conveyor.web.pages import SignedIn, platform_of, posted, see_other
from conveyor.web.submit import submit
from conveyor.web.templating import render
from conveyor.web.views.designer import design_page, forced

router = APIRouter()
NAV = None


async def _form_page(
    request: Request,
    table: TableDef,
    field: Field | None,
    values: dict[str, Any],
    errors: FieldErrors | None = None,
    status: int = 200,
) -> HTMLResponse:
    tables = await platform_of(request).storage.tables.list()
    context = {
        "table": table,
        "field": field,
        "values": values,
        "errors": errors or FieldErrors(),
        "types": [t.value for t in field_form.ALL_TYPES],
        "options": field_form.OPTIONS,
        "tables": [t.name for t in tables],
        "on_delete": field_form.ON_DELETE_CHOICES,
    }
    return render(request, "tables/field_form.html", context, status)


def _errors_of(error: ValidationError | Conflict) -> FieldErrors:
    if isinstance(error, Conflict):
        errors = FieldErrors()
        if "already has a field named" in error.message:
            errors.add("name", error.message)
        else:
            errors.general.append(error.message)
        return errors
    # A missing reference target is reported as `fields[0].table`, the path it has in
    # a table's definition: the form knows it as `table`.
    details = [
        d | {"field": re.sub(r"^fields\[\d+\]\.", "", str(d.get("field") or ""))}
        for d in error.details or []
    ]
    return FieldErrors.of(ValidationError(error.message, details=details), field_form.FIELDS)


def _json_default(form: Form) -> FieldErrors:
    errors = FieldErrors()
    if (problem := field_form.json_default_problem(form)) is not None:
        errors.add("default", problem)
    return errors


@router.get("/tables/{table}/fields/new", response_class=HTMLResponse)
async def new_field(request: Request, table: str, session: SignedIn) -> HTMLResponse:
    definition = await platform_of(request).storage.tables.get(table)
    return await _form_page(request, definition, None, field_form.values_of_field(None))


@router.post("/tables/{table}/fields/new", response_class=HTMLResponse)
async def add_field(request: Request, table: str, session: SignedIn) -> Response:
    form = await posted(request, session)
    storage = platform_of(request).storage
    definition = await storage.tables.get(table)
    values = field_form.values_of_form(form)

    def again(errors: FieldErrors) -> Awaitable[Response]:
        return _form_page(request, definition, None, values, errors, 422)

    if errors := _json_default(form):
        return await again(errors)
    return await submit(
        storage.fields.add(table, field_form.creation_spec(form)),
        explain=_errors_of,
        again=again,
        then=lambda _: see_other(f"/admin/tables/{table}/design?notice=field-added#fields"),
    )


@router.get("/tables/{table}/fields/{field}/edit", response_class=HTMLResponse)
async def edit_field(request: Request, table: str, field: str, session: SignedIn) -> HTMLResponse:
    definition = await platform_of(request).storage.tables.get(table)
    current = definition.field(field)
    return await _form_page(request, definition, current, field_form.values_of_field(current))


@router.post("/tables/{table}/fields/{field}/edit", response_class=HTMLResponse)
async def update_field(request: Request, table: str, field: str, session: SignedIn) -> Response:
    form = await posted(request, session)
    storage = platform_of(request).storage
    definition = await storage.tables.get(table)
    current = definition.field(field)
    values = field_form.values_of_form(form)

    def again(errors: FieldErrors) -> Awaitable[Response]:
        return _form_page(request, definition, current, values, errors, 422)

    if errors := _json_default(form):
        return await again(errors)
    return await submit(
        storage.fields.update(table, field, field_form.spec_of(form)),
        explain=_errors_of,
        again=again,
        then=lambda _: see_other(f"/admin/tables/{table}/design?notice=field-saved#fields"),
    )


@router.post("/tables/{table}/fields/{field}/delete", response_class=HTMLResponse)
async def delete_field(request: Request, table: str, field: str, session: SignedIn) -> Response:
    form = await posted(request, session)
    try:
        await platform_of(request).storage.fields.delete(table, field, force=form.has("force"))
    except Conflict as exc:
        message = forced(exc.message, "with its values")
        return await design_page(request, table, status=409, error=message)
    return see_other(f"/admin/tables/{table}/design?notice=field-deleted#fields")
