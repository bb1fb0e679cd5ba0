"""The dashboard: counts per area, queues with dead letters, links to everything."""

from __future__ import annotations

from fastapi import APIRouter, Request
from starlette.responses import HTMLResponse

from conveyor.queues import probes
from conveyor.web.pages import NavItem, SignedIn, platform_of
from conveyor.web.templating import render

router = APIRouter()
NAV = NavItem("Home", "/admin/")


@router.get("/", response_class=HTMLResponse)
async def home(request: Request, session: SignedIn) -> HTMLResponse:
    platform = platform_of(request)
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
    context = {
        "queues": queues,
        "counts": counts,
        "failing": failing[:10],
        "totals": totals,
        "by_type": by_type,
        "active_keys": await platform.keys.count_active(),
    }
    return render(request, "home.html", context)
