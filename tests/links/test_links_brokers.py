"""Linked writes reach Kafka and SQS: exactly the configured messages, read back with
each broker's own client (RabbitMQ and the embedded queue: test_outbox, test_links_api)."""

from __future__ import annotations

from typing import Any

import orjson
import pytest

from conveyor.links.model import LinkSpec
from conveyor.links.rows import OutboxRow, Status
from conveyor.platform import Platform
from conveyor.queues.model import Queue
from tests import sqs_support
from tests.kafka import support as kafka
from tests.worker.helpers import eventually

pytestmark = pytest.mark.parametrize("database", ["sqlite"], indirect=True)
TABLE = {
    "name": "cliente",
    "fields": [{"name": "nome", "type": "text"}, {"name": "pontos", "type": "integer"}],
}


async def write_some(platform: Platform) -> list[dict[str, Any]]:
    """Create two records, update one twice, delete the other; one write is refused."""
    records = platform.storage.records
    ana = await records.create("cliente", {"nome": "Ana", "pontos": 1})
    bia = await records.create("cliente", {"nome": "Bia", "pontos": 5})
    with pytest.raises(Exception, match="pontos"):
        await records.create("cliente", {"nome": "X", "pontos": "not a number"})
    await records.update("cliente", ana["id"], {"pontos": 2})
    await records.update("cliente", ana["id"], {"pontos": 3})
    await records.delete("cliente", bia["id"])
    return [ana, bia]


async def sent_rows(platform: Platform, count: int) -> list[OutboxRow]:
    async def all_sent() -> bool:
        counts = await platform.outbox.counts()
        return counts["sent"] == count and counts["pending"] == 0

    await eventually(all_sent, timeout_s=30, what=f"{count} outbox rows sent")
    return sorted(await platform.outbox.page(status=Status.SENT, limit=100), key=lambda r: r.id)


def check_events(bodies: list[dict[str, Any]], ana: dict[str, Any], bia: dict[str, Any]) -> None:
    by_record: dict[int, list[tuple[str, Any]]] = {}
    for body in bodies:
        by_record.setdefault(body["record"]["id"], []).append(
            (body["event"], body["record"].get("pontos"))
        )
    assert by_record == {
        ana["id"]: [("create", 1), ("update", 2), ("update", 3)],
        bia["id"]: [("create", 5), ("delete", 5)],
    }
    assert all(b["handler"] == "cliente_changed" and b["table"] == "cliente" for b in bodies)


@pytest.mark.kafka
async def test_linked_writes_reach_kafka(platform: Platform) -> None:
    kafka.require_kafka()
    name = kafka.fresh_name("links")
    queue: Queue = await platform.queues.create(
        {
            "name": name,
            "type": "kafka",
            "url": kafka.BOOTSTRAP,
            "options": {"create_if_missing": True, **kafka.FAST_GROUP},
        }
    )
    try:
        await platform.storage.tables.create(TABLE)
        await platform.links.put(
            "cliente",
            queue.id,
            LinkSpec.parse("cliente", {"events": ["create", "update", "delete"]}),
        )
        ana, bia = await write_some(platform)
        rows = await sent_rows(platform, 5)
        records = kafka.read_back(name, [r.backend_id or "" for r in rows])
        bodies = [orjson.loads(m.value()) for m in records]
        assert [dict(m.headers() or [])["conveyor-message-id"].decode() for m in records] == [
            r.message_id for r in rows
        ]
        check_events(bodies, ana, bia)
        # One record's messages share a key, hence a partition, hence their order.
        assert len({r.backend_id.split(":")[0] for r in rows if r.record_id == str(ana["id"])}) == 1  # type: ignore[union-attr]
    finally:
        await platform.backends.discard(queue.id)
        kafka.delete_topics(name)


@pytest.mark.sqs
async def test_linked_writes_reach_sqs_in_order_on_a_fifo_queue(platform: Platform) -> None:
    sqs_support.require_sqs()
    name = sqs_support.unique_name("links", fifo=True)
    queue = await platform.queues.create(
        {
            "name": name,
            "type": "sqs",
            "url": sqs_support.queue_url(name),
            "region": sqs_support.REGION,
            "username": sqs_support.ACCESS_KEY,
            "password": sqs_support.SECRET_KEY,
            "options": {"create_if_missing": True},
        }
    )
    async with sqs_support.raw_client() as client:
        try:
            await platform.storage.tables.create(TABLE)
            await platform.links.put(
                "cliente",
                queue.id,
                LinkSpec.parse("cliente", {"events": ["create", "update", "delete"]}),
            )
            ana, bia = await write_some(platform)
            rows = await sent_rows(platform, 5)
            messages = await sqs_support.receive_all(client, sqs_support.queue_url(name), 5)
            assert sorted(m["MessageId"] for m in messages) == sorted(r.backend_id for r in rows)
            check_events([orjson.loads(m["Body"]) for m in messages], ana, bia)
        finally:
            await platform.backends.discard(queue.id)
            await sqs_support.drop_queues(client, name)
