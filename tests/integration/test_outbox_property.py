"""Random interleavings of linked writes that commit or roll back: what reaches the
broker is exactly what committed, each record's changes in order (RabbitMQ)."""

from __future__ import annotations

import asyncio
import itertools
import time
from collections.abc import Coroutine
from dataclasses import dataclass
from typing import Any, TypeVar

import aio_pika
import orjson
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import select

from conveyor.config import Settings
from conveyor.db.tables import outbox
from conveyor.links.model import LinkSpec
from conveyor.platform import Platform
from tests import rabbitmq

T = TypeVar("T")
pytestmark = pytest.mark.rabbitmq


@dataclass(frozen=True)
class Table:
    """What the write hook sees of a ZStorage table."""

    name: str
    version: int = 1

    @property
    def id(self) -> str:
        return f"id-{self.name}"


@dataclass(frozen=True)
class Txn:
    record_id: int
    commit: bool


transactions = st.lists(st.builds(Txn, st.integers(1, 4), st.booleans()), min_size=1, max_size=12)


def test_published_messages_are_exactly_the_committed_writes(settings: Settings) -> None:
    rabbitmq.require()
    platform = Platform(settings)
    names = itertools.count()
    # One loop for every example (the platform's connections live on it); the runner
    # cancels whatever is still pending when it closes, so nothing leaks into the
    # next test even when this one fails.
    with asyncio.Runner() as runner:

        def run(work: Coroutine[Any, Any, T]) -> T:
            return runner.run(work)

        run(platform.migrate())
        run(platform.open())
        try:

            @settings_for_property
            @given(txns=transactions, commit_order=st.randoms(use_true_random=False))
            def check(txns: list[Txn], commit_order: Any) -> None:
                run(one_example(platform, f"prop{next(names)}", txns, commit_order))

            check()
        finally:
            run(platform.close())


settings_for_property = settings(
    max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow]
)


async def one_example(platform: Platform, suffix: str, txns: list[Txn], rng: Any) -> None:
    name = rabbitmq.unique_name(suffix)
    queue = await platform.queues.create(rabbitmq.registration(name))
    await platform.backends.get(queue)  # declares it on the broker
    table = Table(f"t_{suffix}")
    await platform.links.put(
        table.name, queue.id, LinkSpec.parse(table.name, {"events": ["update"]})
    )
    try:
        await run_transactions(platform, table, txns, rng)
        async with platform.db.read() as conn:
            rows = (
                await conn.execute(
                    select(outbox.c.message_id, outbox.c.record_id)
                    .where(outbox.c.table_name == table.name)
                    .order_by(outbox.c.id)
                )
            ).all()
        assert len(rows) == sum(t.commit for t in txns)
        received = await rabbitmq_messages(name, len(rows))
        assert sorted(m.message_id or "" for m in received) == sorted(r.message_id for r in rows)
        # Per record, the broker saw the changes in the order they committed.
        for record_id in {r.record_id for r in rows}:
            committed = [r.message_id for r in rows if r.record_id == record_id]
            seen = [
                m.message_id
                for m in received
                if str(orjson.loads(m.body)["record"]["id"]) == record_id
            ]
            assert seen == committed
    finally:
        await platform.queues.delete(queue.id, force=True)
        await platform.backends.discard(queue.id)
        await rabbitmq.delete_queues(name)


async def run_transactions(platform: Platform, table: Table, txns: list[Txn], rng: Any) -> None:
    """Transactions overlap where the database allows it (PostgreSQL): a wave of them,
    for distinct records (one record's writes serialise on its row lock), each writes
    its outbox row, then they commit or roll back in a random order (FI-07)."""
    waves: list[list[Txn]] = [[]]
    for txn in txns:
        wave = waves[-1]
        if platform.db.dialect == "sqlite" or any(t.record_id == txn.record_id for t in wave):
            waves.append(wave := [])
        wave.append(txn)
    for n, wave in enumerate(waves):
        await run_wave(platform, table, wave, n, rng)


async def run_wave(platform: Platform, table: Table, wave: list[Txn], n: int, rng: Any) -> None:
    """Each transaction is a `Database.write()`, as for every record write, entered by
    hand so that they can overlap and end in any order."""
    open_: list[tuple[Txn, Any]] = []
    try:
        for txn in wave:
            transaction = platform.db.write()
            conn = await transaction.__aenter__()
            open_.append((txn, transaction))
            record = {"id": txn.record_id, "wave": n}
            await platform.link_hook(conn, table, "update", record, {"id": txn.record_id})
        rng.shuffle(open_)
        while open_:
            txn, transaction = open_.pop()
            await end(transaction, commit=txn.commit)
    finally:
        for _, transaction in open_:  # what a failure left open
            await end(transaction, commit=False)
    platform.relay.wake()


async def end(transaction: Any, *, commit: bool) -> None:
    if commit:
        await transaction.__aexit__(None, None, None)
    else:
        rollback = RolledBack()
        await transaction.__aexit__(RolledBack, rollback, rollback.__traceback__)


class RolledBack(Exception):
    """Thrown into a write transaction to roll it back."""


async def rabbitmq_messages(name: str, count: int) -> list[Any]:

    connection = await aio_pika.connect(rabbitmq.RABBITMQ_URL)
    got: list[Any] = []
    try:
        channel = await connection.channel()
        queue = await channel.declare_queue(name, passive=True) if count else None
        deadline = time.monotonic() + 20
        while queue is not None and len(got) < count and time.monotonic() < deadline:
            message = await queue.get(fail=False, no_ack=True)
            if message is None:
                await asyncio.sleep(0.02)
            else:
                got.append(message)
        if queue is not None:
            await asyncio.sleep(0.1)
            assert await queue.get(fail=False, no_ack=True) is None, (
                "a message for a rolled-back write"
            )
    finally:
        await connection.close()
    assert len(got) == count
    return got
