"""Queue Administration: list with live counts, details, create/edit/delete, test
connection and test publish. Dead letters live in `dead_letters.py`."""

from __future__ import annotations

import asyncio
from typing import Any

from fastapi import APIRouter, Request
from starlette.responses import HTMLResponse, Response

from conveyor.db.types import utcnow
from conveyor.exceptions import (
    BackendError,
    BadRequest,
    ConfigurationError,
    Conflict,
)
from conveyor.queues import probes
from conveyor.queues.model import Queue, QueueType
from conveyor.web import queue_form
from conveyor.web.forms import FieldErrors
from conveyor.web.pages import NavItem, SignedIn, platform_of, posted, see_other, wants_partial
from conveyor.web.submit import field_errors, submit
from conveyor.web.templating import render
from conveyor.workers import WorkerState

router = APIRouter()
NAV = NavItem(
    "Queues",
    "/admin/queues",
    "Register queues, watch live counts, test connections, publish test messages, "
    "handle dead letters.",
)

NOTICES = {
    "created": "Queue created.",
    "saved": "Queue saved.",
    "deleted": "Queue deleted.",
}
PUBLISH_TIMEOUT_S = 15.0
SAMPLE_MESSAGE = '{{\n  "handler": "{handler}",\n  "hello": "world"\n}}'


def _type_filter(request: Request) -> QueueType | None:
    value = request.query_params.get("type", "")
    return QueueType(value) if value in {t.value for t in QueueType} else None


async def _listing(request: Request) -> dict[str, Any]:
    platform = platform_of(request)
    queue_type = _type_filter(request)
    queues = await platform.queues.list(queue_type)
    return {
        "queues": queues,
        "counts": await probes.counts_of(platform.backends, platform.embedded, queues),
        "type": queue_type.value if queue_type else "",
        "types": [t.value for t in QueueType],
    }


@router.get("/queues", response_class=HTMLResponse)
async def list_queues(request: Request, session: SignedIn) -> HTMLResponse:
    context = await _listing(request)
    context["notice"] = NOTICES.get(request.query_params.get("notice", ""))
    return render(request, "queues/list.html", context)


@router.get("/queues/rows", response_class=HTMLResponse)
async def queue_rows(request: Request, session: SignedIn) -> HTMLResponse:
    """The list's table body alone: app.js refreshes the live counts with it."""
    return render(request, "queues/_rows.html", await _listing(request))


def _form_page(
    request: Request,
    queue: Queue | None,
    values: dict[str, Any],
    errors: FieldErrors | None = None,
    status: int = 200,
) -> HTMLResponse:
    context = {
        "queue": queue,
        "values": values,
        "errors": errors or FieldErrors(),
        "options": queue_form.OPTIONS,
        "types": [t.value for t in QueueType],
        "used_by": {k: " ".join(t.value for t in v) for k, v in queue_form.USED_BY.items()},
    }
    return render(request, "queues/form.html", context, status)


#: A conflict on saving a queue is its name, taken.
_explain = field_errors(queue_form.FIELDS, conflict_field="name")


@router.get("/queues/new", response_class=HTMLResponse)
async def new_queue(request: Request, session: SignedIn) -> HTMLResponse:
    return _form_page(request, None, queue_form.values_of_queue(None))


@router.post("/queues/new", response_class=HTMLResponse)
async def create_queue(request: Request, session: SignedIn) -> Response:
    form = await posted(request, session)
    return await submit(
        platform_of(request).queues.create(queue_form.creation_spec(form)),
        explain=_explain,
        again=lambda errors: _form_page(
            request, None, queue_form.values_of_form(form), errors, status=422
        ),
        then=lambda queue: see_other(f"/admin/queues/{queue.id}?notice=created"),
    )


async def known_handlers(request: Request, queue: Queue) -> list[str]:
    """The handlers of the running workers of this queue."""
    now = utcnow()
    workers = await platform_of(request).workers.list(recent_s=3600)
    return sorted(
        {
            name
            for w in workers
            if w.state(now) is WorkerState.RUNNING and queue.name in w.info.queues
            for name in w.info.handlers
        }
    )


async def _detail(request: Request, queue: Queue, **extra: Any) -> dict[str, Any]:
    handlers = await known_handlers(request, queue)
    context: dict[str, Any] = {
        "queue": queue,
        "counts": await probes.counts(platform_of(request).backends, queue),
        "options": queue_form.OPTIONS,
        # A sample a worker of this queue can run: a handler it lacks is dead-lettered.
        "message": SAMPLE_MESSAGE.format(handler=handlers[0] if handlers else "test"),
        "handlers": handlers,
        "check": None,
        "published": None,
        "publish_error": None,
        "delete_error": None,
        "notice": NOTICES.get(request.query_params.get("notice", "")),
    }
    return context | extra


@router.get("/queues/{queue_id}", response_class=HTMLResponse)
async def show_queue(request: Request, queue_id: str, session: SignedIn) -> HTMLResponse:
    queue = await platform_of(request).queues.get(queue_id)
    return render(request, "queues/detail.html", await _detail(request, queue))


@router.get("/queues/{queue_id}/counts", response_class=HTMLResponse)
async def queue_counts(request: Request, queue_id: str, session: SignedIn) -> HTMLResponse:
    platform = platform_of(request)
    queue = await platform.queues.get(queue_id)
    context = {"queue": queue, "counts": await probes.counts(platform.backends, queue)}
    return render(request, "queues/_counts.html", context)


@router.get("/queues/{queue_id}/edit", response_class=HTMLResponse)
async def edit_queue(request: Request, queue_id: str, session: SignedIn) -> HTMLResponse:
    queue = await platform_of(request).queues.get(queue_id)
    return _form_page(request, queue, queue_form.values_of_queue(queue))


@router.post("/queues/{queue_id}/edit", response_class=HTMLResponse)
async def update_queue(request: Request, queue_id: str, session: SignedIn) -> Response:
    form = await posted(request, session)
    platform = platform_of(request)
    queue = await platform.queues.get(queue_id)
    return await submit(
        platform.queues.update(queue_id, queue_form.spec_of(form)),
        explain=_explain,
        again=lambda errors: _form_page(
            request, queue, queue_form.values_of_form(form), errors, status=422
        ),
        then=lambda _: see_other(f"/admin/queues/{queue_id}?notice=saved"),
    )


@router.post("/queues/{queue_id}/delete", response_class=HTMLResponse)
async def delete_queue(request: Request, queue_id: str, session: SignedIn) -> Response:
    form = await posted(request, session)
    platform = platform_of(request)
    queue = await platform.queues.get(queue_id)
    try:
        await platform.queues.delete(queue_id, force=form.has("force"))
    except Conflict as exc:
        context = await _detail(request, queue, delete_error=exc.message)
        return render(request, "queues/detail.html", context, status=409)
    return see_other("/admin/queues?notice=deleted")


@router.post("/queues/{queue_id}/check", response_class=HTMLResponse)
async def check_queue(request: Request, queue_id: str, session: SignedIn) -> HTMLResponse:
    await posted(request, session)
    platform = platform_of(request)
    queue = await platform.queues.get(queue_id)
    result = await probes.check(platform.backends, queue)
    if wants_partial(request):
        return render(request, "queues/_check.html", {"check": result})
    return render(request, "queues/detail.html", await _detail(request, queue, check=result))


@router.post("/queues/{queue_id}/publish", response_class=HTMLResponse)
async def publish(request: Request, queue_id: str, session: SignedIn) -> HTMLResponse:
    form = await posted(request, session)
    platform = platform_of(request)
    queue = await platform.queues.get(queue_id)
    message = form.get("message")
    published: dict[str, Any] | None = None
    error: str | None = None
    status = 200
    try:
        async with asyncio.timeout(PUBLISH_TIMEOUT_S):
            published = await platform.publisher.publish(queue, message.encode())
    except TimeoutError:
        error, status = f"The backend did not answer within {PUBLISH_TIMEOUT_S:g} s.", 503
    except BadRequest as exc:  # also PayloadTooLarge: the message is at fault
        error, status = exc.message, 422
    except (BackendError, ConfigurationError) as exc:  # down, or its driver not installed
        error, status = f"The backend did not accept the message: {exc.message}", 503
    context = {"published": published, "publish_error": error, "message": message}
    if wants_partial(request):
        return render(request, "queues/_publish.html", context, status)
    page = await _detail(request, queue, **context)
    return render(request, "queues/detail.html", page, status)
