"""A queue's dead letters: payload, last error, attempts; redrive or delete them."""

from __future__ import annotations

from fastapi import APIRouter, Request
from starlette.responses import HTMLResponse, Response

from conveyor.web.pages import SignedIn, platform_of, posted, see_other
from conveyor.web.templating import render

router = APIRouter()
NAV = None
PAGE_SIZE = 50

NOTICES = {
    "redriven": "{count} message(s) sent back to the queue.",
    "deleted": "{count} dead letter(s) deleted.",
}


@router.get("/queues/{queue_id}/dead-letters", response_class=HTMLResponse)
async def dead_letters(request: Request, queue_id: str, session: SignedIn) -> HTMLResponse:
    platform = platform_of(request)
    queue = await platform.queues.get(queue_id)
    cursor = request.query_params.get("after") or None
    backend = await platform.backends.get(queue)
    page = await backend.dead_letters(limit=PAGE_SIZE, cursor=cursor)
    notice = NOTICES.get(request.query_params.get("notice", ""))
    count = request.query_params.get("count", "0")
    context = {
        "queue": queue,
        "page": page,
        "after": cursor,
        "notice": notice.format(count=int(count) if count.isdigit() else 0) if notice else None,
    }
    return render(request, "queues/dead_letters.html", context)


@router.post("/queues/{queue_id}/dead-letters", response_class=HTMLResponse)
async def settle(request: Request, queue_id: str, session: SignedIn) -> Response:
    """One endpoint, several buttons: redrive/delete one, the selected ones, or all."""
    form = await posted(request, session)
    platform = platform_of(request)
    queue = await platform.queues.get(queue_id)
    backend = await platform.backends.get(queue)
    action = form.get("action")
    if form.get("redrive_one"):
        moved, done = await backend.redrive([form.get("redrive_one")]), "redriven"
    elif form.get("delete_one"):
        moved, done = await backend.delete_dead_letters([form.get("delete_one")]), "deleted"
    elif action == "redrive_all":
        moved, done = await backend.redrive(None), "redriven"
    elif action == "redrive_selected":
        moved, done = await backend.redrive(form.getlist("ids")), "redriven"
    elif action == "delete_selected":
        moved, done = await backend.delete_dead_letters(form.getlist("ids")), "deleted"
    else:
        moved, done = 0, "redriven"
    return see_other(f"/admin/queues/{queue_id}/dead-letters?notice={done}&count={moved}")
