"""A 200/201 means committed: `conveyor serve` killed (SIGKILL) under a publish load and a
record-write load loses none of what it answered (issue 18: group commits must not answer
before their commit)."""

from __future__ import annotations

import asyncio
import os
import signal
from pathlib import Path
from typing import Any

import httpx
import orjson
import pytest
import sqlalchemy as sa

from conveyor.db import Database
from conveyor.db.tables import messages
from tests.cli.helpers import cli_env, conveyor, serving
from tests.conftest import DatabaseTarget

#: Answers of each kind gathered before the kill (the load goes on while it lands).
ANSWERS_BEFORE_KILL = 400
CLIENTS = 16


@pytest.mark.slow
async def test_every_answered_publish_and_record_survives_a_sigkill(
    database: DatabaseTarget, tmp_path: Path
) -> None:
    env = cli_env(database, tmp_path / "data")
    created = conveyor("keys", "create", "--name", "k", "--scope", "admin", env=env, cwd=tmp_path)
    headers = {"Authorization": f"Bearer {created.stdout.split()[-1]}"}
    published: dict[str, dict[str, Any]] = {}
    records: dict[int, dict[str, Any]] = {}
    with serving(env, tmp_path) as server:
        async with httpx.AsyncClient(base_url=server.base, headers=headers, timeout=30) as api:
            queue = await api.post(
                "/api/v1/zstorage/queues", json={"name": "kept", "type": "embedded"}
            )
            assert queue.status_code == 201, queue.text
            table = {"name": "kept", "fields": [{"name": "n", "type": "integer"}]}
            assert (await api.post("/api/v1/zstorage/tables", json=table)).status_code == 201
            enough = asyncio.Event()

            async def publish(client: int) -> None:
                for seq in range(10**6):
                    body = {"client": client, "seq": seq}
                    answer = await api.post(
                        f"/api/v1/zstorage/queue/{queue.json()['id']}/publish", json=body
                    )
                    assert answer.status_code == 200, answer.text
                    published[answer.json()["message-id"]] = body
                    if len(published) >= ANSWERS_BEFORE_KILL <= len(records):
                        enough.set()

            async def write(client: int) -> None:
                for seq in range(10**6):
                    answer = await api.post(
                        "/api/v1/zstorage/tables/kept/records", json={"n": client * 10**6 + seq}
                    )
                    assert answer.status_code == 201, answer.text
                    records[answer.json()["id"]] = answer.json()

            load = [asyncio.create_task(publish(c)) for c in range(CLIENTS)]
            load += [asyncio.create_task(write(c)) for c in range(CLIENTS)]
            done, _ = await asyncio.wait(
                [asyncio.create_task(enough.wait()), *load],
                timeout=60,
                return_when=asyncio.FIRST_COMPLETED,
            )
            assert enough.is_set(), [t.exception() for t in done if t is not enough]
            os.kill(server.process.pid, signal.SIGKILL)
            outcomes = await asyncio.gather(*load, return_exceptions=True)
            # Every client stopped on the lost connection, none on a wrong answer.
            assert all(isinstance(o, httpx.TransportError) for o in outcomes), outcomes

    with serving(env, tmp_path) as server:
        async with httpx.AsyncClient(base_url=server.base, headers=headers, timeout=30) as api:
            for record_id, answered in records.items():
                stored = await api.get(f"/api/v1/zstorage/tables/kept/records/{record_id}")
                assert stored.status_code == 200, f"record {record_id} was answered, then lost"
                assert stored.json() == answered
    db = Database(database.url, schema=database.schema)
    try:
        async with db.read() as conn:
            rows = await conn.execute(sa.select(messages.c.message_id, messages.c.payload))
            stored_messages = {row.message_id: row.payload for row in rows}
    finally:
        await db.close()
    lost = set(published) - set(stored_messages)
    assert not lost, f"{len(lost)} of {len(published)} answered publishes were lost"
    assert all(orjson.loads(stored_messages[m]) == body for m, body in published.items())
