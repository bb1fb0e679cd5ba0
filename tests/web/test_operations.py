"""Workers, the outbox and the dashboard over ASGI."""

from __future__ import annotations

import re
from datetime import timedelta

import httpx
import pytest

from conveyor import workers as worker_store
from conveyor.db.types import utcnow
from conveyor.links.model import LinkSpec
from conveyor.platform import Platform
from conveyor.web.views import home
from conveyor.web.views import workers as workers_view
from conveyor.worker.outcome import Counters
from conveyor.workers import WorkerInfo
from tests.web.helpers import outbox_row, signed_in_token


def _info(worker_id: str, host: str, heartbeat_s: float = 5.0) -> WorkerInfo:
    return WorkerInfo(worker_id, host, 4242, "0.1.0", ["orders"], ["bill", "ship"], 10, heartbeat_s)


def _states(html: str) -> dict[str, str]:
    return dict(re.findall(r'data-worker="([\w-]+)" class="worker-(\w+)"', html))


class Clock:
    """The time as the heartbeats and the pages see it, moved by the test."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch) -> None:
        self.now = utcnow()
        for module in (worker_store, workers_view, home):
            monkeypatch.setattr(module, "utcnow", lambda: self.now)

    def advance(self, seconds: float) -> None:
        self.now += timedelta(seconds=seconds)


async def test_workers_live_list_marks_stale_and_dead_ones(
    platform: Platform, signed_in: httpx.AsyncClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    empty = await signed_in.get("/admin/workers")
    assert empty.status_code == 200 and "No worker has run" in empty.text
    clock = Clock(monkeypatch)
    for worker_id, host in (("w-run", "alpha"), ("w-stale", "beta"), ("w-dead", "gamma")):
        await platform.workers.register(_info(worker_id, host))
    await platform.workers.register(_info("w-stop", "delta"))
    await platform.workers.beat("w-stop", Counters(), stopped=True)
    counters = Counters(acked=1230, retried=4, failed=5, in_flight=3)

    clock.advance(8)  # a beat every 5 s: 8 s of silence is a missed beat
    await platform.workers.beat("w-run", counters)
    page = await signed_in.get("/admin/workers")
    assert _states(page.text) == {
        "w-run": "running",
        "w-stale": "stale",
        "w-dead": "stale",
        "w-stop": "stopped",
    }
    assert 'data-refresh="/admin/workers/rows"' in page.text

    clock.advance(4)
    await platform.workers.beat("w-stale", Counters())
    clock.advance(8)  # w-dead: 20 s, three beats missed
    await platform.workers.beat("w-run", counters)
    rows = await signed_in.get("/admin/workers/rows", headers={"X-Partial": "1"})
    assert "<html" not in rows.text
    assert _states(rows.text) == {
        "w-run": "running",
        "w-stale": "stale",
        "w-dead": "dead",
        "w-stop": "stopped",
    }
    run = rows.text.split('data-worker="w-run"', 1)[1].split("</tr>", 1)[0]
    for text in ("alpha", "4242", "orders", "<code>bill</code>, <code>ship</code>", ">1,234<",
                 ">5<", "3 / 10", "0.1.0", "just now"):  # fmt: skip
        assert text in run, text
    dead = rows.text.split('data-worker="w-dead"', 1)[1].split("</tr>", 1)[0]
    assert "20 s ago" in dead
    assert '1 running, <strong class="warn-text">1 stale</strong>' in rows.text


async def test_outbox_counts_rows_filters_and_retry(
    platform: Platform, signed_in: httpx.AsyncClient
) -> None:
    queue = await platform.queues.create({"name": "events", "type": "embedded"})
    fields = [{"name": "t", "type": "text"}]
    await platform.storage.tables.create({"name": "notes", "fields": fields})
    await platform.storage.tables.create({"name": "tasks"})
    await platform.links.put("notes", queue.id, LinkSpec.parse("notes", {}))
    note = await platform.storage.records.create("notes", {"t": "hello"})
    failed = await outbox_row(platform, queue.id, "notes", note["id"], error="broker said no")
    waiting = await outbox_row(platform, queue.id, "tasks", 7, status="pending", error="timeout")

    page = await signed_in.get("/admin/outbox")
    assert page.status_code == 200
    tiles = re.findall(r'tile-value">([\d,]+)</span>\s*<span class="tile-label">(\w+)', page.text)
    assert {label: value for value, label in tiles} == {"pending": "1", "sent": "1", "failed": "1"}
    assert page.text.count('data-outbox="') == 3
    assert "broker said no" in page.text and 'href="/admin/tables/notes/records/1"' in page.text

    only_failed = await signed_in.get("/admin/outbox", params={"status": "failed"})
    assert re.findall(r'data-outbox="(\d+)"', only_failed.text) == [str(failed)]
    only_tasks = await signed_in.get("/admin/outbox", params={"table": "tasks"})
    assert re.findall(r'data-outbox="(\d+)"', only_tasks.text) == [str(waiting)]
    nonsense = await signed_in.get("/admin/outbox", params={"status": "x", "after": "-1"})
    assert nonsense.status_code == 200 and nonsense.text.count('data-outbox="') == 3

    token = await signed_in_token(signed_in)
    retried = await signed_in.post(f"/admin/outbox/{failed}/retry", data={"csrf_token": token})
    assert retried.status_code == 303
    assert retried.headers["location"] == "/admin/outbox?notice=retried"
    assert (await platform.outbox.get(failed)).status.value in ("pending", "sent")
    sent = (await platform.outbox.page(status=None, table_name="notes"))[-1]
    assert sent.status.value == "sent"
    refused = await signed_in.post(f"/admin/outbox/{sent.id}/retry", data={"csrf_token": token})
    assert refused.status_code == 400 and "was sent already" in refused.text
    missing = await signed_in.post("/admin/outbox/999999/retry", data={"csrf_token": token})
    assert missing.status_code == 404


async def test_dashboard_counts_every_area_and_recent_failures(
    platform: Platform, signed_in: httpx.AsyncClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    queue = await platform.queues.create({"name": "events", "type": "embedded"})
    await platform.storage.tables.create({"name": "notes"})
    await platform.storage.tables.create({"name": "tasks"})
    await outbox_row(platform, queue.id, "notes", 3, error="queue deleted meanwhile")
    clock = Clock(monkeypatch)
    await platform.workers.register(_info("w-live", "alpha"))
    await platform.workers.register(_info("w-gone", "omega"))
    clock.advance(20)
    await platform.workers.beat("w-live", Counters())
    page = await signed_in.get("/admin/")
    assert page.status_code == 200

    def tile(label: str) -> str:
        match = re.search(
            rf'tile-value">([\d,]+)</span>\s*<span class="tile-label">{label}', page.text
        )
        assert match, label
        return match.group(1)

    assert tile("tables") == "2" and tile("outbox failed") == "1" and tile("outbox pending") == "0"
    assert tile("worker running") == "1"
    failures = page.text.split('id="failures"', 1)[1].split("</section>", 1)[0]
    assert "queue deleted meanwhile" in failures and "notes #3" in failures
    assert "omega pid 4242" in failures and "alpha" not in failures
    for area in ("/admin/tables", "/admin/workers", "/admin/outbox"):
        assert f'<a href="{area}">' in page.text  # the menu and the areas list
