"""Custom table pages (scope `admin`): JSON definitions that can be versioned and
copied between environments (GET one, POST or PUT it elsewhere)."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import Path, Request
from starlette.responses import Response

from conveyor.api.auth import platform_of
from conveyor.api.responses import Json
from conveyor.api.routes.storage import BODY, Admin, json_body
from conveyor.api.routing import Router
from conveyor.storage.page_check import resolve
from conveyor.storage.page_store import PageStore, StoredPage

router = Router(prefix="/api/v1/zstorage", tags=["pages"], default_response_class=Json)
Slug = Annotated[str, Path(max_length=63)]
PAGES = "/tables/{table}/pages"


def pages(request: Request) -> PageStore:
    return platform_of(request).storage.pages


async def _json(request: Request, stored: StoredPage) -> dict[str, Any]:
    """A page as the API returns it, with what it names that the table no longer has."""
    table = await platform_of(request).storage.tables.get(stored.table)
    return stored.to_json(resolve(stored.page, table).problems)


@router.get(PAGES, summary="List a table's pages")
async def list_pages(request: Request, table: str, _: Admin) -> Json:
    items = [await _json(request, p) for p in await pages(request).all(table)]
    return Json({"items": items})


@router.post(PAGES, status_code=201, summary="Create a page", openapi_extra=BODY)
async def create_page(request: Request, table: str, _: Admin) -> Json:
    stored = await pages(request).create(table, await json_body(request))
    return Json(await _json(request, stored), status_code=201)


@router.get(PAGES + "/{slug}", summary="A page's definition")
async def get_page(request: Request, table: str, slug: Slug, _: Admin) -> Json:
    return Json(await _json(request, await pages(request).get(table, slug)))


@router.put(PAGES + "/{slug}", summary="Replace (or create) a page", openapi_extra=BODY)
async def put_page(request: Request, table: str, slug: Slug, _: Admin) -> Json:
    stored, created = await pages(request).put(table, slug, await json_body(request))
    return Json(await _json(request, stored), status_code=201 if created else 200)


@router.delete(PAGES + "/{slug}", status_code=204, summary="Delete a page")
async def delete_page(request: Request, table: str, slug: Slug, _: Admin) -> Response:
    await pages(request).delete(table, slug)
    return Response(status_code=204)
