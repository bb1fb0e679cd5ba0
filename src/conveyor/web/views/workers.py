"""Workers: every worker process with its queues, handlers and counters, refreshed
live; those that stopped beating are marked stale, then dead."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from fastapi import APIRouter, Request
from starlette.responses import HTMLResponse

from conveyor.db.types import utcnow
from conveyor.web.pages import NavItem, SignedIn, platform_of
from conveyor.web.templating import render
from conveyor.workers import WorkerRecord, WorkerState

router = APIRouter()
NAV = NavItem(
    "Workers",
    "/admin/workers",
    "Live workers: their queues and handlers, processed and failed counts, heartbeats.",
)
#: A running worker that missed this many beats is shown as stale (dead at 3).
STALE_BEATS = 1.5
REFRESH_MS = 5000


@dataclass(frozen=True)
class Row:
    worker: WorkerRecord
    #: running | stale | stopped | dead
    status: str
    silent_s: float


def status_of(worker: WorkerRecord, now: datetime) -> Row:
    state = worker.state(now)
    silent_s = (now - worker.last_beat_at).total_seconds()
    status = state.value
    if state is WorkerState.RUNNING and silent_s > STALE_BEATS * worker.info.heartbeat_s:
        status = "stale"
    return Row(worker, status, silent_s)


async def listing(request: Request) -> dict[str, Any]:
    now = utcnow()
    rows = [status_of(w, now) for w in await platform_of(request).workers.list()]
    order = {"running": 0, "stale": 1, "dead": 2, "stopped": 3}
    rows.sort(key=lambda r: order[r.status])
    counts = {status: sum(r.status == status for r in rows) for status in order}
    return {"rows": rows, "counts": counts, "now": now}


@router.get("/workers", response_class=HTMLResponse)
async def workers(request: Request, session: SignedIn) -> HTMLResponse:
    context = await listing(request)
    context["refresh_ms"] = REFRESH_MS
    return render(request, "workers/list.html", context)


@router.get("/workers/rows", response_class=HTMLResponse)
async def worker_rows(request: Request, session: SignedIn) -> HTMLResponse:
    """The list's live part alone: app.js refreshes it every few seconds."""
    return render(request, "workers/_live.html", await listing(request))
