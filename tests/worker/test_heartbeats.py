"""Workers register themselves and beat; the API lists live and recently gone ones."""

from __future__ import annotations

import os
import socket
from collections.abc import Awaitable
from datetime import timedelta

import httpx

from conveyor import Context, handler
from conveyor.db.types import utcnow
from conveyor.platform import Platform
from conveyor.worker.handlers import HandlerRegistry
from conveyor.worker.outcome import Counters
from conveyor.workers import WorkerInfo, WorkerState
from tests.conftest import bearer
from tests.worker.conftest import NewQueue
from tests.worker.helpers import drained, eventually, running

WORKERS = "/api/v1/zstorage/workers"


async def test_a_running_worker_is_listed_with_its_counts_then_as_stopped(
    platform: Platform, client: httpx.AsyncClient, admin: dict[str, str], worker_queue: NewQueue
) -> None:
    queue = await worker_queue(max_attempts=1)

    @handler("ok", auto_ack=True)
    async def ok(context: Context) -> None:
        pass

    @handler("bad")
    async def bad(context: Context) -> None:
        raise RuntimeError("no")

    for name in ("ok", "ok", "bad"):
        await platform.publisher.publish_object(queue, {"handler": name})
    async with running(platform, queue, HandlerRegistry([ok, bad]), heartbeat_s=0.2) as worker:
        await eventually(lambda: drained(platform, queue, dead=1), what="all settled")

        async def counted() -> bool:
            items = (await client.get(WORKERS, headers=admin)).json()["items"]
            return bool(items) and items[0]["processed"] == 3

        await eventually(counted, what="a heartbeat with the counts")
        (listed,) = (await client.get(WORKERS, headers=admin)).json()["items"]
        assert listed["id"] == worker.id
        assert listed["state"] == "running"
        assert (listed["host"], listed["pid"]) == (socket.gethostname(), os.getpid())
        assert listed["queues"] == [queue.name]
        assert listed["handlers"] == ["bad", "ok"]
        assert (listed["processed"], listed["failed"], listed["in_flight"]) == (3, 1, 0)
        assert listed["concurrency"] == 10 and listed["stopped_at"] is None
    (stopped,) = (await client.get(WORKERS, headers=admin)).json()["items"]
    assert stopped["state"] == "stopped" and stopped["stopped_at"] is not None


async def test_a_worker_that_stops_beating_is_dead_and_old_ones_drop_off(
    platform: Platform, client: httpx.AsyncClient, admin: dict[str, str]
) -> None:
    info = WorkerInfo("deadbeef", "h", 1, "0", ["q"], ["x"], 10, heartbeat_s=0.1)
    await platform.workers.register(info)
    await platform.workers.beat(info.id, Counters(acked=4, in_flight=2))

    async def dead() -> bool:
        (item,) = (await client.get(WORKERS, headers=admin)).json()["items"]
        return bool(item["state"] == WorkerState.DEAD)

    await eventually(dead, what="the silent worker counted as dead")
    (item,) = (await client.get(WORKERS, headers=admin)).json()["items"]
    assert item["processed"] == 4 and item["in_flight"] == 2
    # Gone longer ago than the window: not listed.
    listed = await client.get(WORKERS, params={"recent_s": 0}, headers=admin)
    assert listed.json() == {"items": []}
    records = await platform.workers.list(recent_s=3600)
    assert records[0].state(utcnow() + timedelta(seconds=1)) is WorkerState.DEAD


async def test_listing_workers_needs_the_admin_scope(
    platform: Platform, client: httpx.AsyncClient
) -> None:
    assert (await client.get(WORKERS)).status_code == 401
    publisher = await bearer(platform, "publish")
    assert (await client.get(WORKERS, headers=publisher)).status_code == 403


async def test_counts_reach_the_list_within_a_second_not_a_heartbeat_later(
    platform: Platform, client: httpx.AsyncClient, admin: dict[str, str], worker_queue: NewQueue
) -> None:
    queue = await worker_queue()

    @handler("ok", auto_ack=True)
    async def ok(context: Context) -> None:
        pass

    # A 60 s heartbeat: the counts below can only come from the prompt write.
    async with running(platform, queue, HandlerRegistry([ok]), heartbeat_s=60):

        async def processed() -> int:
            items = (await client.get(WORKERS, headers=admin)).json()["items"]
            return int(items[0]["processed"]) if items else -1

        await eventually(lambda: _equals(processed(), 0), what="the worker listed at once")
        for _ in range(2):
            await platform.publisher.publish_object(queue, {"handler": "ok"})
        await eventually(
            lambda: _equals(processed(), 2), timeout_s=5, what="the counts within a second"
        )


async def _equals(value: Awaitable[int], expected: int) -> bool:
    return await value == expected
