"""Worker tests on the queue types listed in `QUEUE_TYPES`.

Every test taking `worker_queue` runs on the embedded queue (SQLite and PostgreSQL);
tests marked `every_backend` also run on RabbitMQ, Kafka and SQS, but for the backends
named in `every_backend(but={type: why})`; tests decorated `@only(type, …)` run on
those types alone. Adding a backend is
one entry in `QUEUE_TYPES` (with its marker) and one in `QUEUE_SPECS` (how to register
such a queue for a test, and how to remove what the broker kept of it). Broker queues
run on the SQLite platform database only: the database holds just their registration,
so PostgreSQL would repeat the same broker test.
"""

from __future__ import annotations

import asyncio
import secrets
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from conveyor.platform import Platform
from conveyor.queues.model import Queue
from tests import rabbitmq, sqs_support
from tests.kafka import support as kafka


@dataclass(frozen=True)
class QueueSpec:
    #: Checks the broker is there (fails in CI, skips elsewhere).
    require: Callable[[], None]
    #: Registration fields of the queue named, but for its options.
    fields: Callable[[str], dict[str, Any]]
    #: Options every queue of this type gets (tests may override them).
    options: dict[str, Any] = field(default_factory=dict)
    #: Removes what the broker kept of the queues named.
    cleanup: Callable[[list[str]], Awaitable[None]] | None = None


async def _rabbitmq_cleanup(names: list[str]) -> None:
    for name in names:
        await rabbitmq.delete_queues(name)


async def _kafka_cleanup(names: list[str]) -> None:
    await asyncio.to_thread(kafka.delete_topics, *names)


async def _sqs_cleanup(names: list[str]) -> None:
    async with sqs_support.raw_client() as client:
        await sqs_support.drop_queues(client, *names)


QUEUE_SPECS: dict[str, QueueSpec] = {
    "embedded": QueueSpec(
        require=lambda: None, fields=lambda name: {"name": name, "type": "embedded"}
    ),
    "rabbitmq": QueueSpec(rabbitmq.require, rabbitmq.registration, cleanup=_rabbitmq_cleanup),
    "kafka": QueueSpec(
        kafka.require_kafka,
        lambda name: {"name": name, "type": "kafka", "url": kafka.BOOTSTRAP},
        options={"create_if_missing": True, **kafka.FAST_GROUP},
        cleanup=_kafka_cleanup,
    ),
    "sqs": QueueSpec(
        sqs_support.require_sqs,
        lambda name: {
            "name": name,
            "type": "sqs",
            "url": sqs_support.queue_url(name),
            "username": sqs_support.ACCESS_KEY,
            "password": sqs_support.SECRET_KEY,
            "region": sqs_support.REGION,
        },
        options={"create_if_missing": True},
        cleanup=_sqs_cleanup,
    ),
}
QUEUE_TYPES = [
    "embedded",
    pytest.param("rabbitmq", marks=pytest.mark.rabbitmq),
    pytest.param("kafka", marks=pytest.mark.kafka),
    pytest.param("sqs", marks=pytest.mark.sqs),
]

NewQueue = Callable[..., Awaitable[Queue]]


def only(*types: str) -> pytest.MarkDecorator:
    """Run a worker test on these queue types alone: `@only("rabbitmq")`."""
    params = [p for p in QUEUE_TYPES if (p if isinstance(p, str) else p.values[0]) in types]
    return pytest.mark.parametrize("queue_type", params)


def _chosen(item: pytest.Item) -> bool:
    return any(m.args and m.args[0] == "queue_type" for m in item.iter_markers("parametrize"))


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Broker queues for `every_backend` tests, on SQLite only (see the module docstring).
    Only this folder's tests: pytest hands every conftest the whole session's items."""
    here = Path(__file__).parent
    kept, dropped = [], []
    for item in items:
        if not item.path.is_relative_to(here):
            kept.append(item)
            continue
        callspec = getattr(item, "callspec", None)
        params = callspec.params if callspec is not None else {}
        broker = params.get("queue_type", "embedded") != "embedded"
        marker = item.get_closest_marker("every_backend")
        wanted = _chosen(item) or (
            marker is not None and params.get("queue_type") not in marker.kwargs.get("but", {})
        )
        on_sqlite = params.get("database") != "postgres"
        (kept if not broker or (wanted and on_sqlite) else dropped).append(item)
    if dropped:
        config.hook.pytest_deselected(items=dropped)
        items[:] = kept


@pytest.fixture(params=QUEUE_TYPES)
def queue_type(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture
async def worker_queue(platform: Platform, queue_type: str) -> AsyncIterator[NewQueue]:
    """Registers a fresh queue of the type under test: `await worker_queue(**options)`."""
    spec = QUEUE_SPECS[queue_type]
    spec.require()
    made: list[Queue] = []

    async def make(**options: Any) -> Queue:
        name = f"w-{secrets.token_hex(4)}"
        queue = await platform.queues.create(
            {**spec.fields(name), "options": {**spec.options, **options}}
        )
        made.append(queue)
        return queue

    yield make
    # The platform's clients let go of the queues before the broker forgets them: a
    # Kafka consumer that has fetched from a topic deleted under it can crash inside
    # librdkafka (see tests/kafka/support.py, `delete_topics`).
    for queue in made:
        await platform.backends.discard(queue.id)
    if spec.cleanup is not None and made:
        await spec.cleanup([queue.name for queue in made])
