"""The table designer: settings, fields (forms in `fields.py`), validation rules with a
live "check expression", links to queues, and deleting the table."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request
from starlette.responses import HTMLResponse, Response

from conveyor.exceptions import Conflict, QueueNotFound, ValidationError
from conveyor.links.model import EVENTS, LinkMode, LinkSpec
from conveyor.storage.model import TableDef
from conveyor.web import field_form, rule_check
from conveyor.web.forms import FieldErrors, Form
from conveyor.web.pages import SignedIn, platform_of, posted, see_other, wants_partial
from conveyor.web.submit import field_errors, submit
from conveyor.web.templating import render

router = APIRouter()
NAV = None
NOTICES = {
    "created": "Table created. Add its fields below.",
    "saved": "Table saved.",
    "field-added": "Field added.",
    "field-saved": "Field saved.",
    "field-deleted": "Field deleted.",
    "rule-added": "Rule added: every new write is checked against it.",
    "rule-deleted": "Rule deleted.",
    "linked": "Link saved: writes now publish messages to the queue.",
    "unlinked": "Link removed.",
}
RULE_FIELDS = ("name", "expression", "message")
LINK_FIELDS = ("queue", "events", "handler", "mode")


def forced(message: str, checkbox: str) -> str:
    """A service's "delete with ?force=true" advice, in the form's words."""
    head, found, _ = message.partition("; delete with ?force=true")
    return f"{head}. To delete anyway, tick “{checkbox}”." if found else message


def _rule_values(form: Form | None = None) -> dict[str, str]:
    return {k: form.get(k) if form else "" for k in (*RULE_FIELDS, "sample")}


def _link_values(table: TableDef, form: Form | None = None) -> dict[str, Any]:
    if form is None:
        return {
            "queue": "",
            "events": ["create", "update"],
            "handler": f"{table.name}_changed",
            "mode": LinkMode.OUTBOX.value,
        }
    return {
        "queue": form.get("queue"),
        "events": form.getlist("events"),
        "handler": form.get("handler"),
        "mode": form.get("mode"),
    }


async def design_page(
    request: Request, table_name: str, *, status: int = 200, **extra: Any
) -> HTMLResponse:
    """The designer, with whatever a form just left to show (errors, typed values)."""
    platform = platform_of(request)
    table = await platform.storage.tables.get(table_name)
    queues = await platform.queues.list()
    rule = extra.pop("rule", None) or _rule_values()
    if not rule["sample"]:
        items, _, _ = await platform.storage.records.query(
            table.name, [("limit", "1"), ("sort", "-id")]
        )
        rule["sample"] = rule_check.sample_of(table, items[0] if items else None)
    context: dict[str, Any] = {
        "table": table,
        "summaries": {f.name: field_form.summary(f) for f in table.fields},
        "links": await platform.links.all(table.name),
        "queues": queues,
        "queue_names": {q.id: q.name for q in queues},
        "settings": {"label": table.label, "description": table.description or ""},
        "settings_errors": FieldErrors(),
        "rule": rule,
        "rule_errors": FieldErrors(),
        "check": None,
        "link": _link_values(table),
        "link_errors": FieldErrors(),
        "events": EVENTS,
        "modes": [m.value for m in LinkMode],
        "error": None,
        "notice": NOTICES.get(request.query_params.get("notice", "")),
    }
    return render(request, "tables/design.html", context | extra, status)


@router.get("/tables/{table}/design", response_class=HTMLResponse)
async def design(request: Request, table: str, session: SignedIn) -> HTMLResponse:
    return await design_page(request, table)


@router.post("/tables/{table}/design", response_class=HTMLResponse)
async def save_settings(request: Request, table: str, session: SignedIn) -> Response:
    form = await posted(request, session)
    spec = {
        "label": form.get("label").strip() or None,
        "description": form.get("description").strip() or None,
    }
    settings = {"label": form.get("label"), "description": form.get("description")}
    return await submit(
        platform_of(request).storage.tables.update(table, spec),
        explain=field_errors(settings),
        again=lambda errors: design_page(
            request, table, status=422, settings=settings, settings_errors=errors
        ),
        then=lambda _: see_other(f"/admin/tables/{table}/design?notice=saved"),
        refusals=(ValidationError,),
    )


@router.post("/tables/{table}/delete", response_class=HTMLResponse)
async def delete_table(request: Request, table: str, session: SignedIn) -> Response:
    form = await posted(request, session)
    platform = platform_of(request)
    try:
        await platform.storage.tables.delete(table, force=form.has("force"))
    except Conflict as exc:
        message = forced(exc.message, "also delete the records it holds")
        return await design_page(request, table, status=409, error=message)
    return see_other("/admin/tables?notice=deleted")


@router.post("/tables/{table}/rules", response_class=HTMLResponse)
async def add_rule(request: Request, table: str, session: SignedIn) -> Response:
    form = await posted(request, session)
    spec = {k: form.get(k).strip() for k in RULE_FIELDS}
    spec["message"] = spec["message"] or None  # type: ignore[assignment]
    return await submit(
        platform_of(request).storage.tables.add_rule(table, spec),
        explain=field_errors(RULE_FIELDS, conflict_field="name"),
        again=lambda errors: design_page(
            request, table, status=422, rule=_rule_values(form), rule_errors=errors
        ),
        then=lambda _: see_other(f"/admin/tables/{table}/design?notice=rule-added#rules"),
    )


@router.post("/tables/{table}/rules/check", response_class=HTMLResponse)
async def check_rule(request: Request, table: str, session: SignedIn) -> HTMLResponse:
    """Compile the expression and run it on the sample record; nothing is saved."""
    form = await posted(request, session)
    definition = await platform_of(request).storage.tables.get(table)
    result = await rule_check.check_rule(
        definition, form.get("expression"), form.get("message"), form.get("sample")
    )
    if wants_partial(request):
        return render(request, "tables/_rule_check.html", {"check": result})
    return await design_page(request, table, rule=_rule_values(form), check=result)


@router.post("/tables/{table}/rules/{rule}/delete", response_class=HTMLResponse)
async def delete_rule(request: Request, table: str, rule: str, session: SignedIn) -> Response:
    await posted(request, session)
    await platform_of(request).storage.tables.delete_rule(table, rule)
    return see_other(f"/admin/tables/{table}/design?notice=rule-deleted#rules")


@router.post("/tables/{table}/links", response_class=HTMLResponse)
async def save_link(request: Request, table: str, session: SignedIn) -> Response:
    form = await posted(request, session)
    platform = platform_of(request)
    await platform.storage.tables.get(table)  # 404 before anything else
    body = {
        "events": form.getlist("events"),
        "handler": form.get("handler").strip(),
        "mode": form.get("mode"),
    }
    errors = FieldErrors()
    try:
        queue = await platform.queues.get(form.get("queue"))
        await platform.links.put(table, queue.id, LinkSpec.parse(table, body))
    except QueueNotFound:
        errors.add("queue", "choose a queue")
    except ValidationError as exc:
        errors = FieldErrors.of(exc, LINK_FIELDS)
    if errors:
        definition = await platform.storage.tables.get(table)
        values = _link_values(definition, form)
        return await design_page(request, table, status=422, link=values, link_errors=errors)
    return see_other(f"/admin/tables/{table}/design?notice=linked#links")


@router.post("/tables/{table}/links/{queue_id}/delete", response_class=HTMLResponse)
async def delete_link(request: Request, table: str, queue_id: str, session: SignedIn) -> Response:
    await posted(request, session)
    await platform_of(request).links.delete(table, queue_id)
    return see_other(f"/admin/tables/{table}/design?notice=unlinked#links")
