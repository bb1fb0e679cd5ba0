"""The dashboard: counts per area, recent failures, links to everything."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request
from starlette.responses import HTMLResponse

from conveyor.db.types import utcnow
from conveyor.links.rows import Status
from conveyor.platform import Platform
from conveyor.queues import probes
from conveyor.web.pages import NavItem, SignedIn, platform_of
from conveyor.web.templating import render
from conveyor.web.views.workers import status_of

router = APIRouter()
NAV = NavItem("Home", "/admin/")
RECENT_FAILURES = 5


async def _queues(platform: Platform) -> dict[str, Any]:
    queues = await platform.queues.list()
    counts = await probes.counts_of(platform.backends, platform.embedded, queues)
    failing = sorted(
        (q for q in queues if counts[q.id].dead or counts[q.id].error),
        key=lambda q: (counts[q.id].error is None, -counts[q.id].dead, q.name),
    )
    totals = {
        "ready": sum((c.stats.ready or 0) for c in counts.values() if c.stats),
        "in_flight": sum((c.stats.in_flight or 0) for c in counts.values() if c.stats),
        "dead": sum(c.dead for c in counts.values()),
    }
    by_type: dict[str, int] = {}
    for queue in queues:
        by_type[queue.type.value] = by_type.get(queue.type.value, 0) + 1
    return {
        "queues": queues,
        "counts": counts,
        "failing": failing[:10],
        "totals": totals,
        "by_type": by_type,
        "queue_names": {q.id: q.name for q in queues},
    }


async def _workers(platform: Platform) -> dict[str, Any]:
    now = utcnow()
    rows = [status_of(w, now) for w in await platform.workers.list()]
    return {
        "workers_running": sum(r.status in ("running", "stale") for r in rows),
        "dead_workers": [r for r in rows if r.status in ("dead", "stale")],
    }


@router.get("/", response_class=HTMLResponse)
async def home(request: Request, session: SignedIn) -> HTMLResponse:
    platform = platform_of(request)
    context = await _queues(platform) | await _workers(platform)
    context |= {
        "active_keys": await platform.keys.count_active(),
        "tables": len(await platform.storage.tables.list()),
        "outbox": await platform.outbox.counts(),
        "failed_rows": await platform.outbox.page(status=Status.FAILED, limit=RECENT_FAILURES),
    }
    return render(request, "home.html", context)
