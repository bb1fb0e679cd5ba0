"""On SQLite a linked write holds the one write lock no longer than an unlinked one
waiting on the database: the same number of trips to the connection's thread, because
the link's rows are pipelined with the COMMIT (conveyor.db.sqlite_driver)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

import aiosqlite
import pytest

from conveyor.links.model import LinkSpec
from conveyor.links.rows import Status
from conveyor.platform import Platform
from conveyor.queues.model import Queue
from conveyor.storage.creates import WRITER_NAME
from tests import rabbitmq
from tests.worker.helpers import eventually

pytestmark = pytest.mark.parametrize("database", ["sqlite"], indirect=True)


class Hops:
    """The name of each function aiosqlite runs on a connection's thread for the tasks
    that write batches of record creates, once `count` was called (the relay's hops, in
    tasks of its own, are not the write's)."""

    def __init__(self) -> None:
        self.seen: list[str] = []
        self.counting = False

    def count(self) -> None:
        self.seen.clear()
        self.counting = True

    def counts(self, task: asyncio.Task[Any] | None) -> bool:
        return self.counting and task is not None and task.get_name() == WRITER_NAME


@pytest.fixture
def hops(monkeypatch: pytest.MonkeyPatch) -> Hops:
    recorder = Hops()
    original = aiosqlite.Connection._execute

    async def counted(self: aiosqlite.Connection, fn: Any, *args: Any, **kwargs: Any) -> Any:
        if recorder.counts(asyncio.current_task()):
            recorder.seen.append(getattr(fn, "__name__", repr(fn)))
        return await original(self, fn, *args, **kwargs)

    monkeypatch.setattr(aiosqlite.Connection, "_execute", counted)
    return recorder


@pytest.fixture
async def rabbit_queue(platform: Platform) -> AsyncIterator[Queue]:
    rabbitmq.require()
    name = rabbitmq.unique_name("hops")
    queue = await platform.queues.create(rabbitmq.registration(name))
    await platform.backends.get(queue)
    yield queue
    await platform.backends.discard(queue.id)
    await rabbitmq.delete_queues(name)


async def hops_per_write(platform: Platform, hops: Hops, table: str) -> list[str]:
    """The hops of the second create in `table` (the first one fills the caches)."""
    await platform.storage.records.create(table, {"nome": "warm"})
    # Let the relay settle the first write, so that only the write is counted.
    await eventually(_nothing_pending(platform), timeout_s=10, what="the outbox settled")
    hops.count()
    await platform.storage.records.create(table, {"nome": "counted"})
    return list(hops.seen)


def _nothing_pending(platform: Platform) -> Any:
    async def check() -> bool:
        return (await platform.outbox.counts())[Status.PENDING.value] == 0

    return check


@pytest.mark.rabbitmq
async def test_a_linked_write_makes_as_many_hops_as_an_unlinked_one(
    platform: Platform, hops: Hops, rabbit_queue: Queue
) -> None:
    embedded = await platform.queues.create({"name": "hops-embedded", "type": "embedded"})
    fields = [{"name": "nome", "type": "text"}]
    for name, queue in (("plain", None), ("to_embedded", embedded), ("to_rabbit", rabbit_queue)):
        await platform.storage.tables.create({"name": name, "fields": fields})
        if queue is not None:
            await platform.links.put(name, queue.id, LinkSpec.parse(name, {}))

    plain = await hops_per_write(platform, hops, "plain")
    assert plain == ["run_queued", "_commit_after"]  # BEGIN + INSERT, then COMMIT
    # The link's rows (message + sent outbox row; leased outbox row) go with the COMMIT.
    assert await hops_per_write(platform, hops, "to_embedded") == ["run_queued", "_commit_after"]
    assert await hops_per_write(platform, hops, "to_rabbit") == ["run_queued", "_commit_after"]
    await eventually(_nothing_pending(platform), timeout_s=10, what="the outbox settled")
    assert (await platform.outbox.counts())[Status.SENT.value] == 4
