from __future__ import annotations

import asyncio
import gc
from collections.abc import AsyncIterator, Sequence

import httpx
import orjson
import pytest
from sqlalchemy.ext.asyncio import create_async_engine

from conveyor.exceptions import ConnectionFailed
from conveyor.platform import Platform
from conveyor.queues.base import OutgoingMessage, PublishResult
from conveyor.queues.model import Queue
from conveyor.server import create_app
from tests.conftest import bearer
from tests.responsiveness import health_while

PUBLISH = "/api/v1/zstorage/queue"


@pytest.fixture
async def queue(platform: Platform) -> Queue:
    return await platform.queues.create({"name": "orders", "type": "embedded"})


@pytest.fixture
async def publisher(platform: Platform) -> dict[str, str]:
    return await bearer(platform, "publish")


async def ready(platform: Platform, queue: Queue) -> int:
    stats = await (await platform.backends.get(queue)).stats()
    assert stats.ready is not None
    return stats.ready


async def test_publish_by_id_and_by_name(
    client: httpx.AsyncClient, platform: Platform, queue: Queue, publisher: dict[str, str]
) -> None:
    payload = {"handler": "send_email", "to": "ana@example.com", "n": 1.5, "tags": ["ç", None]}
    by_id = await client.post(f"{PUBLISH}/{queue.id}/publish", headers=publisher, json=payload)
    assert by_id.status_code == 200, by_id.text
    answer = by_id.json()
    assert set(answer) == {"message-id", "sqs-id", "backend-message-id", "queue-id"}
    assert answer["queue-id"] == queue.id
    by_name = await client.post(
        f"{PUBLISH}/a/{queue.name}/publish", headers=publisher, json=payload
    )
    assert by_name.status_code == 200
    assert by_name.json()["message-id"] != answer["message-id"]
    assert await ready(platform, queue) == 2

    backend = await platform.backends.get(queue)
    deliveries = await backend.receive(10)
    assert [orjson.loads(d.body) for d in deliveries] == [payload, payload]
    assert deliveries[0].id == answer["message-id"]
    assert deliveries[0].backend_id == answer["sqs-id"]


async def test_publish_batch_answers_in_order(
    client: httpx.AsyncClient, platform: Platform, queue: Queue, publisher: dict[str, str]
) -> None:
    messages = [{"handler": "h", "n": n} for n in range(100)]
    response = await client.post(
        f"{PUBLISH}/{queue.id}/publish-batch", headers=publisher, json={"messages": messages}
    )
    assert response.status_code == 200, response.text
    results = response.json()["results"]
    assert len(results) == 100
    deliveries = await (await platform.backends.get(queue)).receive(100)
    by_id = {d.id: orjson.loads(d.body) for d in deliveries}
    assert [by_id[r["message-id"]]["n"] for r in results] == list(range(100))
    # Each answer's row id is its own message's (100 rows: multi-row INSERTs of 64, 32, 4).
    row_ids = {d.id: d.backend_id for d in deliveries}
    assert [row_ids[r["message-id"]] for r in results] == [r["sqs-id"] for r in results]
    assert [int(r["sqs-id"]) for r in results] == sorted(int(r["sqs-id"]) for r in results)
    by_name = await client.post(
        f"{PUBLISH}/a/orders/publish-batch", headers=publisher, json={"messages": [{"x": 1}]}
    )
    assert by_name.status_code == 200 and len(by_name.json()["results"]) == 1


async def test_idempotency_key_returns_the_first_answer(
    client: httpx.AsyncClient, platform: Platform, queue: Queue, publisher: dict[str, str]
) -> None:
    headers = publisher | {"Idempotency-Key": "order-42"}
    first = await client.post(f"{PUBLISH}/{queue.id}/publish", headers=headers, json={"n": 1})
    second = await client.post(f"{PUBLISH}/{queue.id}/publish", headers=headers, json={"n": 1})
    assert first.status_code == second.status_code == 200
    assert first.json() == second.json()
    assert await ready(platform, queue) == 1
    other_key = await client.post(
        f"{PUBLISH}/{queue.id}/publish",
        headers=publisher | {"Idempotency-Key": "order-43"},
        json={"n": 1},
    )
    assert other_key.json()["message-id"] != first.json()["message-id"]
    batch_headers = publisher | {"Idempotency-Key": "batch-1"}
    batch = {"messages": [{"n": 1}, {"n": 2}]}
    b1 = await client.post(f"{PUBLISH}/{queue.id}/publish-batch", headers=batch_headers, json=batch)
    b2 = await client.post(f"{PUBLISH}/{queue.id}/publish-batch", headers=batch_headers, json=batch)
    assert b1.json() == b2.json()
    assert await ready(platform, queue) == 4


async def test_a_reused_idempotency_key_with_another_body_is_refused_not_dropped(
    client: httpx.AsyncClient, platform: Platform, queue: Queue, publisher: dict[str, str]
) -> None:
    """The same key with another body is a 422, never the first answer for a message
    that was then silently dropped (IETF Idempotency-Key draft, Stripe)."""
    url = f"{PUBLISH}/{queue.id}/publish"
    headers = publisher | {"Idempotency-Key": "order-9"}
    first = await client.post(url, headers=headers, json={"n": 1})
    assert first.status_code == 200
    reused = await client.post(url, headers=headers, json={"n": 2})
    assert reused.status_code == 422, reused.text
    assert reused.json()["error"]["code"] == "idempotency_key_reused"
    assert first.json()["message-id"] not in reused.text
    # The same bytes again is a retry: the first answer.
    again = await client.post(url, headers=headers, json={"n": 1})
    assert again.json() == first.json()
    assert await ready(platform, queue) == 1


async def test_idempotency_keys_belong_to_one_api_key_queue_and_endpoint(
    client: httpx.AsyncClient, platform: Platform, queue: Queue, publisher: dict[str, str]
) -> None:
    other_client = await bearer(platform, "publish")
    other_queue = await platform.queues.create({"name": "returns", "type": "embedded"})
    key = {"Idempotency-Key": "shared-7"}
    body = {"n": 1}
    mine = await client.post(f"{PUBLISH}/{queue.id}/publish", headers=publisher | key, json=body)
    theirs = await client.post(
        f"{PUBLISH}/{queue.id}/publish", headers=other_client | key, json=body
    )
    elsewhere = await client.post(
        f"{PUBLISH}/{other_queue.id}/publish", headers=publisher | key, json=body
    )
    batch = await client.post(
        f"{PUBLISH}/{queue.id}/publish-batch", headers=publisher | key, json={"messages": [body]}
    )
    assert mine.status_code == theirs.status_code == elsewhere.status_code == 200
    assert batch.status_code == 200, batch.text
    assert "results" in batch.json()  # the batch's own answer, not the single publish's
    ids = {
        mine.json()["message-id"],
        theirs.json()["message-id"],
        elsewhere.json()["message-id"],
        batch.json()["results"][0]["message-id"],
    }
    assert len(ids) == 4
    assert await ready(platform, queue) == 3
    assert await ready(platform, other_queue) == 1


async def test_a_batch_stores_each_message_as_sent(
    client: httpx.AsyncClient, platform: Platform, queue: Queue, publisher: dict[str, str]
) -> None:
    """Big numbers keep their digits, duplicate keys stay: the bytes stored are the bytes
    sent, as for a single publish."""
    raw = [b'{"n": 99999999999999999999}', b'{"a":1,"a":2}', rb'{ "s" : "\u00e9" }']
    body = b'{"messages": [' + b", ".join(raw) + b"]}"
    answer = await client.post(
        f"{PUBLISH}/{queue.id}/publish-batch",
        headers=publisher | {"Content-Type": "application/json"},
        content=body,
    )
    assert answer.status_code == 200, answer.text
    backend = await platform.backends.get(queue)
    deliveries = await backend.receive(10)
    assert sorted(d.body for d in deliveries) == sorted(raw)


async def test_a_retry_after_a_lost_confirm_sends_the_same_message_id(
    client: httpx.AsyncClient,
    platform: Platform,
    queue: Queue,
    publisher: dict[str, str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The broker took the message but the answer was lost (503): the client's retry with
    the same key publishes again under the same id, so consumers see one message."""
    backend = await platform.backends.get(queue)
    real_publish, real_batch = backend.publish, backend.publish_batch
    lost = ConnectionFailed("the connection to the broker was lost")
    failures, batch_failures = [lost], [lost]

    async def publish(message: OutgoingMessage) -> PublishResult:
        result = await real_publish(message)
        if failures:
            raise failures.pop()
        return result

    async def publish_batch(messages: Sequence[OutgoingMessage]) -> list[PublishResult]:
        results = await real_batch(messages)
        if batch_failures:
            raise batch_failures.pop()
        return results

    monkeypatch.setattr(backend, "publish", publish)
    monkeypatch.setattr(backend, "publish_batch", publish_batch)
    url = f"{PUBLISH}/{queue.id}/publish"
    headers = publisher | {"Idempotency-Key": "order-77"}

    first = await client.post(url, headers=headers, json={"n": 1})
    assert first.status_code == 503
    assert first.json()["error"]["code"] == "backend_unavailable"
    retried = await client.post(url, headers=headers, json={"n": 1})
    assert retried.status_code == 200, retried.text
    again = await client.post(url, headers=headers, json={"n": 1})
    assert again.json() == retried.json()

    batch_url = f"{PUBLISH}/{queue.id}/publish-batch"
    batch_headers = publisher | {"Idempotency-Key": "batch-77"}
    batch = {"messages": [{"n": 2}, {"n": 3}]}
    assert (await client.post(batch_url, headers=batch_headers, json=batch)).status_code == 503
    batch_retried = await client.post(batch_url, headers=batch_headers, json=batch)
    assert batch_retried.status_code == 200, batch_retried.text

    deliveries = await backend.receive(10)
    ids = [d.id for d in deliveries]
    single = retried.json()["message-id"]
    batch_ids = [r["message-id"] for r in batch_retried.json()["results"]]
    assert sorted(ids) == sorted([single, single, *batch_ids, *batch_ids])
    other = await client.post(url, headers=publisher | {"Idempotency-Key": "other"}, json={})
    assert other.json()["message-id"] not in ids


async def test_concurrent_retries_with_one_idempotency_key_publish_once(
    client: httpx.AsyncClient, platform: Platform, queue: Queue, publisher: dict[str, str]
) -> None:
    headers = publisher | {"Idempotency-Key": "same"}
    responses = await asyncio.gather(
        *(
            client.post(f"{PUBLISH}/{queue.id}/publish", headers=headers, json={"n": 1})
            for _ in range(10)
        )
    )
    assert {r.status_code for r in responses} <= {200, 409}
    assert await ready(platform, queue) == 1
    ids = {r.json()["message-id"] for r in responses if r.status_code == 200}
    assert len(ids) == 1


async def test_a_retry_while_the_first_request_is_in_flight_is_a_409(
    client: httpx.AsyncClient,
    platform: Platform,
    queue: Queue,
    publisher: dict[str, str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    entered, release = asyncio.Event(), asyncio.Event()
    send_one = platform.publisher._send_one

    async def held(queue: Queue, messages: list[OutgoingMessage]) -> dict[str, object]:
        entered.set()
        await release.wait()
        return await send_one(queue, messages)

    monkeypatch.setattr(platform.publisher, "_send_one", held)
    headers = publisher | {"Idempotency-Key": "in-flight"}
    url = f"{PUBLISH}/{queue.id}/publish"
    first = asyncio.create_task(client.post(url, headers=headers, json={"n": 1}))
    await asyncio.wait_for(entered.wait(), timeout=10)
    retry = await client.post(url, headers=headers, json={"n": 1})
    assert retry.status_code == 409, retry.text
    assert retry.json()["error"]["code"] == "conflict"
    release.set()
    answer = await first
    assert answer.status_code == 200
    again = await client.post(url, headers=headers, json={"n": 1})
    assert again.status_code == 200 and again.json() == answer.json()
    assert await ready(platform, queue) == 1


async def test_a_limited_key_sees_only_its_queues(
    client: httpx.AsyncClient, platform: Platform, queue: Queue
) -> None:
    other = await platform.queues.create({"name": "payments", "type": "embedded"})
    limited = await bearer(platform, "publish", queues=["orders"])
    assert (
        await client.post(f"{PUBLISH}/a/orders/publish", headers=limited, json={"a": 1})
    ).status_code == 200
    hidden = await client.post(f"{PUBLISH}/a/payments/publish", headers=limited, json={"a": 1})
    missing = await client.post(f"{PUBLISH}/a/nonexistent/publish", headers=limited, json={"a": 1})
    assert hidden.status_code == missing.status_code == 404
    assert hidden.json()["error"]["code"] == missing.json()["error"]["code"] == "queue_not_found"
    by_id = await client.post(f"{PUBLISH}/{other.id}/publish", headers=limited, json={"a": 1})
    assert by_id.status_code == 404
    reader = await bearer(platform, "storage:read")
    assert (
        await client.post(f"{PUBLISH}/a/orders/publish", headers=reader, json={"a": 1})
    ).status_code == 403
    assert await ready(platform, other) == 0


DEEP = b'{"a":' * 100 + b"1" + b"}" * 100


@pytest.mark.parametrize(
    ("body", "content_type", "status"),
    [
        (b'{"handler": "x", ', "application/json", 400),  # truncated
        (b"", "application/json", 400),  # empty
        (b"   ", "application/json", 400),
        (b"[1, 2]", "application/json", 400),  # not an object
        (b'"text"', "application/json", 400),
        (b"null", "application/json", 400),
        (b'{"a": "\xff\xfe"}', "application/json", 400),  # invalid UTF-8
        (DEEP, "application/json", 400),  # nesting too deep
        (b'{"a": 1}', "text/plain", 415),
        (b'{"a": 1}', "application/x-www-form-urlencoded", 415),
        (b'{"a": 1}', "", 415),
        (b'{"a": "' + b"x" * 262_200 + b'"}', "application/json", 413),
        (b'{"a": NaN}', "application/json", 400),
    ],
)
async def test_bad_input_gets_its_status_and_stores_nothing(
    client: httpx.AsyncClient,
    platform: Platform,
    queue: Queue,
    publisher: dict[str, str],
    body: bytes,
    content_type: str,
    status: int,
) -> None:
    headers = publisher | {"Content-Type": content_type}
    response = await client.post(f"{PUBLISH}/{queue.id}/publish", headers=headers, content=body)
    assert response.status_code == status, response.text
    error = response.json()["error"]
    assert error["code"] and error["message"]
    assert await ready(platform, queue) == 0
    assert (await client.get("/health")).status_code == 200


async def test_size_is_decided_from_content_length_before_reading(
    client: httpx.AsyncClient, queue: Queue, publisher: dict[str, str]
) -> None:
    read = False

    async def body() -> AsyncIterator[bytes]:
        nonlocal read
        read = True
        yield b"{}"

    headers = publisher | {"Content-Type": "application/json", "Content-Length": str(10**9)}
    response = await client.post(f"{PUBLISH}/{queue.id}/publish", headers=headers, content=body())
    assert response.status_code == 413
    assert not read


async def test_a_chunked_body_is_cut_off_at_the_limit(
    client: httpx.AsyncClient, platform: Platform, publisher: dict[str, str]
) -> None:
    small = await platform.queues.create(
        {"name": "small", "type": "embedded", "options": {"max_message_bytes": 1000}}
    )
    sent = 0

    async def body() -> AsyncIterator[bytes]:
        nonlocal sent
        yield b'{"a": "'
        for _ in range(10_000):
            sent += 1
            yield b"x" * 100
        yield b'"}'

    headers = publisher | {"Content-Type": "application/json"}
    response = await client.post(f"{PUBLISH}/{small.id}/publish", headers=headers, content=body())
    assert response.status_code == 413
    assert sent < 100, "the server kept reading after the limit"


@pytest.mark.parametrize(
    ("batch", "status"),
    [
        ({"messages": []}, 400),
        ({"messages": [1]}, 400),
        ({"messages": [{"a": 1}], "extra": True}, 400),
        ({"items": [{"a": 1}]}, 400),
        ({"messages": [{"n": n} for n in range(101)]}, 413),
    ],
)
async def test_bad_batches_publish_nothing(
    client: httpx.AsyncClient,
    platform: Platform,
    queue: Queue,
    publisher: dict[str, str],
    batch: dict[str, object],
    status: int,
) -> None:
    response = await client.post(
        f"{PUBLISH}/{queue.id}/publish-batch", headers=publisher, json=batch
    )
    assert response.status_code == status, response.text
    assert await ready(platform, queue) == 0


async def test_unknown_queues_and_bad_keys(
    client: httpx.AsyncClient, queue: Queue, publisher: dict[str, str]
) -> None:
    assert (
        await client.post(f"{PUBLISH}/nope/publish", headers=publisher, json={})
    ).status_code == 404
    assert (
        await client.post(f"{PUBLISH}/a/nope/publish", headers=publisher, json={})
    ).status_code == 404
    no_key = await client.post(f"{PUBLISH}/{queue.id}/publish", json={"a": 1})
    garbage = await client.post(
        f"{PUBLISH}/{queue.id}/publish", headers={"Authorization": "Bearer x"}, json={"a": 1}
    )
    assert no_key.status_code == garbage.status_code == 401
    assert no_key.json() == garbage.json()
    bad_key = await client.post(
        f"{PUBLISH}/{queue.id}/publish",
        headers=publisher | {"Idempotency-Key": "with space " + "k" * 300},
        json={"a": 1},
    )
    assert bad_key.status_code == 400


async def test_oversized_headers_get_431(
    client: httpx.AsyncClient, queue: Queue, publisher: dict[str, str]
) -> None:
    headers = publisher | {"X-Padding": "x" * 20_000}
    response = await client.post(f"{PUBLISH}/{queue.id}/publish", headers=headers, json={"a": 1})
    assert response.status_code == 431
    assert response.json()["error"]["code"] == "headers_too_large"


async def test_database_down_is_503_never_2xx(
    platform: Platform, queue: Queue, publisher: dict[str, str]
) -> None:
    """The embedded queue's database refuses the write: the API must not claim success."""
    original = platform.db.engine
    if platform.db.dialect == "sqlite":
        broken = create_async_engine(platform.db.url.set(database="/nonexistent/dir/x.db"))
    else:
        broken = create_async_engine(platform.db.url.set(port=1), connect_args={"timeout": 2})
    platform.db.engine = broken
    try:
        transport = httpx.ASGITransport(app=create_app(platform))
        async with httpx.AsyncClient(transport=transport, base_url="http://t") as c:
            response = await c.post(
                f"{PUBLISH}/{queue.id}/publish", headers=publisher, json={"a": 1}
            )
        assert response.status_code == 503, response.text
        assert response.json()["error"]["code"] in {"backend_unavailable", "database_unavailable"}
    finally:
        await platform.db.engine.dispose()
        platform.db.engine = original


@pytest.mark.slow
async def test_large_batches_never_hold_up_other_requests(
    client: httpx.AsyncClient, queue: Queue, publisher: dict[str, str]
) -> None:
    """Three batches of 100 messages of ~120 kB full of brackets (what the byte-by-byte
    nesting check walked in Python: 1.4 s for 26 MB): /health answers within 100 ms."""
    element = {"handler": "h", "rows": [[i, [i, [i]]] for i in range(6_000)]}
    body = orjson.dumps({"messages": [element] * 100})
    assert len(body) > 10_000_000
    url = f"{PUBLISH}/{queue.id}/publish-batch"
    headers = publisher | {"Content-Type": "application/json"}
    batches = asyncio.gather(*(client.post(url, headers=headers, content=body) for _ in range(3)))
    # As `conveyor serve` does once started: what is alive now is never collected, so
    # that a full collection scans what the requests make, not the test run's heap.
    gc.freeze()
    try:
        responses, slowest, polls = await health_while(client, batches)
    finally:
        gc.unfreeze()
    assert [r.status_code for r in responses] == [200] * 3
    assert polls > 1
    assert slowest < 0.1, f"/health took {slowest * 1000:.0f} ms while the batches were read"
