"""ZStorage: tables, fields and rules (scope `admin`); records (`storage:read`/`storage:write`)."""

from __future__ import annotations

from typing import Annotated, Any

import orjson
from fastapi import Depends, Path, Query, Request
from starlette.responses import Response

from conveyor.api.auth import platform_of, require
from conveyor.api.bodies import read_body
from conveyor.api.responses import Json
from conveyor.api.routing import Router
from conveyor.exceptions import InvalidJson, UnsupportedMediaType, ValidationError
from conveyor.json_bodies import parse_items
from conveyor.keys import ApiKey, Scope
from conveyor.links import table_links
from conveyor.platform import Platform
from conveyor.storage import Storage
from conveyor.storage.model import TableDef
from conveyor.storage.records import MAX_BULK

router = Router(prefix="/api/v1/zstorage", tags=["zstorage"], default_response_class=Json)
Admin = Annotated[ApiKey, Depends(require(Scope.ADMIN))]
Reader = Annotated[ApiKey, Depends(require(Scope.STORAGE_READ))]
Writer = Annotated[ApiKey, Depends(require(Scope.STORAGE_WRITE))]
Force = Annotated[bool, Query(description="Also drop the data the deletion would lose.")]
RecordId = Annotated[int, Path(ge=1, le=2**63 - 1)]


def storage(request: Request) -> Storage:
    return platform_of(request).storage


def _require_json(request: Request) -> None:
    # A missing Content-Type is refused too, as on the publish API.
    media = request.headers.get("content-type", "").split(";")[0].strip()
    if media.lower() != "application/json" and not media.lower().endswith("+json"):
        raise UnsupportedMediaType()


async def json_body(request: Request) -> Any:
    """The body, parsed strictly (no NaN, no lone surrogates, nothing a response could
    not carry back), and no larger than `max_record_bytes`."""
    _require_json(request)
    limit = platform_of(request).settings.max_record_bytes
    raw = await read_body(request, limit, accepts="this endpoint")
    if not raw:
        raise InvalidJson("a JSON request body is required")
    try:
        return orjson.loads(raw)
    except orjson.JSONDecodeError as exc:
        raise InvalidJson(f"the request body is not valid JSON: {exc}") from None


async def json_object(body: Annotated[Any, Depends(json_body)]) -> dict[str, Any]:
    if not isinstance(body, dict):
        raise ValidationError(
            "the request body must be a JSON object",
            details=[{"field": None, "rule": None, "message": "must be a JSON object"}],
        )
    return body


JsonObject = Annotated[dict[str, Any], Depends(json_object)]
#: The body is read by the dependencies above; this documents it in the OpenAPI schema.
BODY = {
    "requestBody": {
        "required": True,
        "content": {"application/json": {"schema": {"type": "object"}}},
    }
}


async def with_links(platform: Platform, table: TableDef) -> dict[str, Any]:
    """The table's definition plus its links to queues."""
    body = table.to_json()
    body["links"] = [
        {
            "queue": link.queue_id,
            "events": sorted(link.events, key=["create", "update", "delete"].index),
            "handler": link.handler,
            "mode": link.mode.value,
        }
        for link in await platform.links.all(table.name)
    ]
    return body


@router.get("/tables", summary="List tables")
async def list_tables(request: Request, _: Admin) -> Json:
    tables = await storage(request).tables.list()
    return Json({"items": [t.to_json() for t in tables]})


@router.post("/tables", status_code=201, summary="Create a table", openapi_extra=BODY)
async def create_table(request: Request, body: JsonObject, _: Admin) -> Json:
    platform = platform_of(request)
    links = body.pop("links", None)
    parsed = await table_links.parse(platform.queues, str(body.get("name")), links or [])
    table = await platform.storage.tables.create(body)
    await table_links.apply(platform.links, table.name, parsed, replace=False)
    return Json(await with_links(platform, table), status_code=201)


@router.get("/tables/{table}", summary="A table's definition")
async def get_table(request: Request, table: str, _: Admin) -> Json:
    platform = platform_of(request)
    return Json(await with_links(platform, await platform.storage.tables.get(table)))


@router.patch(
    "/tables/{table}", summary="Change a table's label or description", openapi_extra=BODY
)
async def update_table(request: Request, table: str, body: JsonObject, _: Admin) -> Json:
    platform = platform_of(request)
    links = body.pop("links", None)
    parsed = await table_links.parse(platform.queues, table, links) if links is not None else None
    updated = await platform.storage.tables.update(table, body) if body else None
    if parsed is not None:
        await platform.storage.tables.get(table)
        await table_links.apply(platform.links, table, parsed, replace=True)
    return Json(await with_links(platform, updated or await platform.storage.tables.get(table)))


@router.delete("/tables/{table}", status_code=204, summary="Delete a table and its records")
async def delete_table(request: Request, table: str, _: Admin, force: Force = False) -> Response:
    platform = platform_of(request)
    await platform.storage.tables.delete(table, force=force)
    return Response(status_code=204)


@router.post("/tables/{table}/fields", status_code=201, summary="Add a field", openapi_extra=BODY)
async def add_field(request: Request, table: str, body: JsonObject, _: Admin) -> Json:
    return Json((await storage(request).fields.add(table, body)).to_json(), status_code=201)


@router.patch("/tables/{table}/fields/{field}", summary="Change a field", openapi_extra=BODY)
async def update_field(
    request: Request, table: str, field: str, body: JsonObject, _: Admin
) -> Json:
    return Json((await storage(request).fields.update(table, field, body)).to_json())


@router.delete("/tables/{table}/fields/{field}", summary="Delete a field")
async def delete_field(
    request: Request, table: str, field: str, _: Admin, force: Force = False
) -> Json:
    return Json((await storage(request).fields.delete(table, field, force=force)).to_json())


@router.post(
    "/tables/{table}/rules", status_code=201, summary="Add a validation rule", openapi_extra=BODY
)
async def add_rule(request: Request, table: str, body: JsonObject, _: Admin) -> Json:
    return Json((await storage(request).tables.add_rule(table, body)).to_json(), status_code=201)


@router.delete("/tables/{table}/rules/{rule}", summary="Delete a validation rule")
async def delete_rule(request: Request, table: str, rule: str, _: Admin) -> Json:
    return Json((await storage(request).tables.delete_rule(table, rule)).to_json())


@router.get("/tables/{table}/records", summary="Query records")
async def list_records(request: Request, table: str, _: Reader) -> Json:
    params = request.query_params.multi_items()
    items, cursor, total = await storage(request).records.query(table, params)
    body: dict[str, Any] = {"items": items, "next_cursor": cursor}
    if total is not None:
        body["total"] = total
    return Json(body)


@router.post(
    "/tables/{table}/records", status_code=201, summary="Create a record", openapi_extra=BODY
)
async def create_record(request: Request, table: str) -> Json:
    # No dependencies: the express lane (`conveyor.api.lane`) calls this directly.
    await require(Scope.STORAGE_WRITE)(request)
    body = await json_object(await json_body(request))
    return Json(await storage(request).records.create(table, body), status_code=201)


@router.post(
    "/tables/{table}/records:bulk",
    status_code=201,
    summary="Create up to 1000 records at once",
    openapi_extra=BODY,
)
async def create_records(request: Request, table: str, _: Writer) -> Json:
    _require_json(request)
    settings = platform_of(request).settings
    raw = await read_body(request, settings.max_bulk_bytes, accepts="a bulk write")
    # Parsed a record at a time, so that megabytes of records never hold up other requests.
    items = await parse_items(
        raw,
        key="records" if raw.lstrip().startswith(b"{") else None,
        max_items=MAX_BULK,
        max_item_bytes=settings.max_record_bytes,
        what="bulk write",
        shape='a bulk write is [record, …] or {"records": [record, …]}',
        turns=platform_of(request).parse_turns,
    )
    records = await storage(request).records.create_many(table, [i.value for i in items])
    return Json({"items": records}, status_code=201)


@router.get("/tables/{table}/records/{record_id}", summary="Read a record")
async def get_record(request: Request, table: str, record_id: RecordId, _: Reader) -> Json:
    return Json(await storage(request).records.get(table, record_id))


@router.patch(
    "/tables/{table}/records/{record_id}",
    summary="Change some fields of a record",
    openapi_extra=BODY,
)
async def update_record(
    request: Request, table: str, record_id: RecordId, body: JsonObject, _: Writer
) -> Json:
    return Json(await storage(request).records.update(table, record_id, body))


@router.delete("/tables/{table}/records/{record_id}", status_code=204, summary="Delete a record")
async def delete_record(request: Request, table: str, record_id: RecordId, _: Writer) -> Response:
    await storage(request).records.delete(table, record_id)
    return Response(status_code=204)
