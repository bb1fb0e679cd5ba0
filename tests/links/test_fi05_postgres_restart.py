"""FI-05: PostgreSQL restarts while records are written to a linked table.

Every committed write has exactly one outbox row, nothing exists for a write that did
not commit, and the relay resumes by itself: the broker ends up with exactly the
committed writes' messages. Restarts the machine's PostgreSQL (marker `disruptive`).
"""

from __future__ import annotations

import asyncio
import os
import shutil
import subprocess
import time
from collections.abc import AsyncIterator

import aio_pika
import orjson
import pytest
from sqlalchemy import select

from conveyor.db.tables import outbox
from conveyor.links.model import LinkSpec
from conveyor.platform import Platform
from tests import rabbitmq, services

pytestmark = [pytest.mark.slow, pytest.mark.disruptive]


def restart_postgres() -> None:
    command = shutil.which("pg_ctlcluster")
    versions = os.listdir("/etc/postgresql") if os.path.isdir("/etc/postgresql") else []
    if command is None or len(versions) != 1 or os.geteuid() != 0:
        message = "restarting PostgreSQL needs root and pg_ctlcluster"
        if services.IN_CI:
            pytest.fail(message)
        pytest.skip(message)
    subprocess.run(
        [command, "--skip-systemctl-redirect", versions[0], "main", "restart", "-m", "fast"],
        check=True,
        capture_output=True,
        timeout=60,
    )


@pytest.fixture
async def linked(platform: Platform) -> AsyncIterator[str]:
    rabbitmq.require()
    name = rabbitmq.unique_name("fi05")
    queue = await platform.queues.create(rabbitmq.registration(name))
    await platform.backends.get(queue)
    await platform.storage.tables.create(
        {"name": "pedido", "fields": [{"name": "n", "type": "integer"}]}
    )
    await platform.links.put("pedido", queue.id, LinkSpec.parse("pedido", {"events": ["create"]}))
    yield name
    await rabbitmq.delete_queues(name)


# PostgreSQL only: SQLite has no server to restart.
@pytest.mark.parametrize(
    "database", [pytest.param("postgres", marks=pytest.mark.postgres)], indirect=True
)
async def test_a_postgres_restart_loses_no_linked_write(platform: Platform, linked: str) -> None:
    committed: set[int] = set()
    failures = 0
    stop = asyncio.Event()

    async def writer(w: int) -> None:
        nonlocal failures
        n = 0
        while not stop.is_set():
            try:
                record = await platform.storage.records.create("pedido", {"n": w * 100_000 + n})
                committed.add(record["id"])
            except Exception:  # the database is restarting: try again shortly
                failures += 1
                await asyncio.sleep(0.05)
            n += 1

    writers = [asyncio.create_task(writer(w)) for w in range(5)]
    await asyncio.sleep(1)
    await asyncio.to_thread(restart_postgres)
    deadline = time.monotonic() + 30
    before = len(committed)
    while len(committed) < before + 50:  # writes succeed again by themselves
        assert time.monotonic() < deadline, "writes did not recover after the restart"
        await asyncio.sleep(0.1)
    stop.set()
    await asyncio.gather(*writers)
    assert failures > 0, "the restart was not noticed: the test proved nothing"

    # The database's own view: every stored record has exactly one outbox row, and
    # every outbox row belongs to a stored record.
    stored = {r["id"] for r in await all_records(platform)}
    assert committed <= stored  # a write reported as committed is there
    async with platform.db.read() as conn:
        rows = (
            await conn.execute(
                select(outbox.c.record_id, outbox.c.message_id).where(
                    outbox.c.table_name == "pedido"
                )
            )
        ).all()
    assert sorted(int(r.record_id) for r in rows) == sorted(stored)

    # The relay resumed by itself: the broker gets exactly those messages.
    expected = {r.message_id for r in rows}
    received = await read_messages(linked, len(expected))
    assert received == expected


async def all_records(platform: Platform) -> list[dict[str, object]]:
    items, cursor = [], None
    while True:
        params = [("limit", "500")] + ([("cursor", cursor)] if cursor else [])
        page, cursor, _ = await platform.storage.records.query("pedido", params)
        items += page
        if cursor is None:
            return items


async def read_messages(name: str, count: int) -> set[str]:
    connection = await aio_pika.connect(rabbitmq.RABBITMQ_URL)
    got: dict[str, bytes] = {}
    try:
        queue = await (await connection.channel()).get_queue(name)
        deadline = time.monotonic() + 60
        while len(got) < count and time.monotonic() < deadline:
            message = await queue.get(fail=False, no_ack=True)
            if message is None:
                await asyncio.sleep(0.05)
            elif message.message_id is not None:
                got[message.message_id] = message.body
    finally:
        await connection.close()
    assert all(orjson.loads(body)["event"] == "create" for body in got.values())
    return set(got)
