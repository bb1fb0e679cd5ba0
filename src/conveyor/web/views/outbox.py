"""The outbox: counts per status, the rows (newest first, by status or table), and
retrying a failed row."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Path, Request
from starlette.responses import HTMLResponse, Response

from conveyor.links.outbox import SENT_COUNT_CAP
from conveyor.links.rows import Status
from conveyor.web.auth import safe_next
from conveyor.web.pages import NavItem, SignedIn, platform_of, posted, see_other
from conveyor.web.templating import render

router = APIRouter()
NAV = NavItem(
    "Outbox",
    "/admin/outbox",
    "Messages of linked table writes: pending, sent and failed; retry the failed ones.",
)
PAGE_SIZE = 50
NOTICES = {"retried": "The row is pending again: the relay sends it now."}


def _status(request: Request) -> Status | None:
    value = request.query_params.get("status", "")
    return Status(value) if value in {s.value for s in Status} else None


def _after(request: Request) -> int | None:
    value = request.query_params.get("after", "")
    return int(value) if value.isdigit() and len(value) <= 18 else None


@router.get("/outbox", response_class=HTMLResponse)
async def outbox(request: Request, session: SignedIn) -> HTMLResponse:
    platform = platform_of(request)
    status = _status(request)
    table = request.query_params.get("table", "").strip()[:63] or None
    after = _after(request)
    rows = await platform.outbox.page(
        status=status, table_name=table, limit=PAGE_SIZE, after_id=after
    )
    context: dict[str, Any] = {
        "rows": rows,
        "counts": await platform.outbox.counts(),
        "status": status.value if status else "",
        "statuses": [s.value for s in Status],
        "count_cap": SENT_COUNT_CAP,
        "table": table or "",
        "tables": [t.name for t in await platform.storage.tables.list()],
        "queue_names": {q.id: q.name for q in await platform.queues.list()},
        "after": after,
        "next_after": rows[-1].id if len(rows) == PAGE_SIZE else None,
        "notice": NOTICES.get(request.query_params.get("notice", "")),
    }
    return render(request, "outbox/list.html", context)


@router.post("/outbox/{row_id}/retry")
async def retry(
    request: Request, row_id: Annotated[int, Path(ge=1, le=2**63 - 1)], session: SignedIn
) -> Response:
    form = await posted(request, session)
    await platform_of(request).outbox.retry(row_id)
    back = safe_next(form.get("next") or "/admin/outbox")
    separator = "&" if "?" in back else "?"
    return see_other(f"{back}{separator}notice=retried")
