"""The RabbitMQ backend's pure parts: names, delays, URLs, error translation."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime
from types import SimpleNamespace
from typing import Any

import aio_pika
import pytest
from aiormq import exceptions as amqp
from pamqp.commands import Basic

from conveyor.exceptions import BackendError, ConnectionFailed, PublishFailed
from conveyor.queues.base import HEADER_ATTEMPT, HEADER_MESSAGE_ID, OutgoingMessage
from conveyor.queues.model import Credentials, Queue, QueueOptions, QueueType
from conveyor.queues.rabbitmq import wire
from conveyor.queues.rabbitmq.connection import Timeouts, connection_url, peer_of
from conveyor.queues.rabbitmq.errors import Peer, translate, translated
from conveyor.queues.rabbitmq.topology import DELAY_BUCKETS_S, MAX_DELAY_S, Topology

SECRET = "p@ss:w/rd-42"
PEER = Peer("broker.example", 5672, "/", "app", SECRET)


def queue(url: str = "amqp://broker.example:5672/") -> Queue:
    now = datetime.now(UTC)
    return Queue(
        id="q1",
        name="orders",
        type=QueueType.RABBITMQ,
        url=url,
        username="app",
        has_password=True,
        region=None,
        description=None,
        options=QueueOptions(),
        created_at=now,
        updated_at=now,
    )


@pytest.mark.parametrize(
    ("delay_s", "bucket", "expiration_ms"),
    [
        (0.0001, "orders.delay.1s", 1),
        (1, "orders.delay.1s", 1000),
        (1.001, "orders.delay.2s", 1001),
        (3, "orders.delay.4s", 3000),
        (300, "orders.delay.512s", 300_000),
        (20_000, "orders.delay.16384s", 20_000_000),
        (10**9, "orders.delay.16384s", MAX_DELAY_S * 1000),
    ],
)
def test_a_delay_goes_to_the_smallest_bucket_that_holds_it(
    delay_s: float, bucket: str, expiration_ms: int
) -> None:
    assert Topology("orders").delay_for(delay_s) == (bucket, expiration_ms)


def test_the_topology_is_the_queue_its_dead_letters_and_delay_buckets() -> None:
    declared = dict(Topology("orders").queues())
    assert declared.pop("orders") is None
    assert declared.pop("orders.dlq") is None
    assert len(declared) == len(DELAY_BUCKETS_S) == 15
    back = {"x-dead-letter-exchange": "", "x-dead-letter-routing-key": "orders"}
    assert all(arguments == back for arguments in declared.values())


def test_the_connection_url_carries_credentials_and_lets_the_queue_url_win() -> None:
    url = connection_url(
        queue("amqps://broker.example/prod?heartbeat=30"),
        Credentials("app", SECRET),
        Timeouts(heartbeat_s=10, reconnect_interval_s=1),
    )
    assert url.user == "app" and url.password == SECRET
    assert url.query["heartbeat"] == "30"
    assert url.query["reconnect_interval"] == "1"
    peer = peer_of(url)
    assert (peer.host, peer.port, peer.vhost, peer.username) == (
        "broker.example",
        5671,
        "prod",
        "app",
    )
    assert SECRET not in str(peer)


def test_the_default_virtual_host_is_slash() -> None:
    for raw in ("amqp://h", "amqp://h/", "amqp://h/%2F"):
        assert peer_of(connection_url(queue(raw), Credentials(None, None), Timeouts())).vhost == "/"


RETURNED = Basic.Return(reply_code=312, reply_text="NO_ROUTE", exchange="", routing_key="orders")


@pytest.mark.parametrize(
    ("exc", "kind", "words"),
    [
        (
            amqp.PublishError(SimpleNamespace(delivery=RETURNED), RETURNED),
            PublishFailed,
            "could not route",
        ),
        (amqp.DeliveryError(None, Basic.Nack(delivery_tag=1)), PublishFailed, "negative confirm"),
        (amqp.ProbableAuthenticationError("ACCESS_REFUSED"), ConnectionFailed, "refused the login"),
        (amqp.InvalidFrameError("Connection.Close"), ConnectionFailed, "virtual host"),
        (amqp.ChannelNotFoundEntity("NOT_FOUND - no queue 'x'"), BackendError, "missing"),
        (amqp.ChannelPreconditionFailed("PRECONDITION_FAILED"), BackendError, "refused"),
        (amqp.ChannelInvalidStateError("closed"), ConnectionFailed, "is down"),
        (TimeoutError(), ConnectionFailed, "did not answer within 1.5 s"),
        (ConnectionRefusedError(111, "Connect call failed"), ConnectionFailed, "refused"),
        (OSError(f"amqp://app:{SECRET}@broker.example"), ConnectionFailed, "cannot connect"),
        (ValueError(f"odd {SECRET}"), BackendError, "ValueError"),
    ],
)
def test_driver_errors_become_conveyor_errors_without_the_password(
    exc: Exception, kind: type[BackendError], words: str
) -> None:
    error = translate(exc, PEER, "publishing", 1.5)
    assert type(error) is kind
    assert words in error.message
    assert SECRET not in error.message


async def test_a_block_that_takes_too_long_fails_with_the_timeout() -> None:
    with pytest.raises(ConnectionFailed, match=r"did not answer within 0.05 s while waiting"):
        async with translated(PEER, "waiting", timeout_s=0.05):
            await asyncio.sleep(5)


def incoming(headers: dict[str, Any] | None, message_id: str | None = None) -> Any:
    """Enough of an aio-pika IncomingMessage for the wire functions."""
    return SimpleNamespace(
        body=b'{"a": 1}',
        headers=headers,
        message_id=message_id,
        timestamp=None,
        content_type="application/json",
        content_encoding=None,
        priority=None,
        correlation_id="c-1",
        reply_to=None,
        type=None,
        app_id=None,
    )


def test_an_outgoing_message_is_persistent_json_with_its_id_and_attempt() -> None:
    sent = OutgoingMessage(body=b"{}", headers={"trace": "t"}, ordering_key="k")
    message = wire.outgoing(sent)
    assert message.delivery_mode == aio_pika.DeliveryMode.PERSISTENT.value
    assert message.message_id == sent.id and message.content_type == "application/json"
    assert message.headers[HEADER_MESSAGE_ID] == sent.id
    assert message.headers[HEADER_ATTEMPT] == "1"
    assert message.headers["trace"] == "t" and message.headers[wire.HEADER_ORDERING_KEY] == "k"


def test_a_copy_keeps_the_id_and_properties_and_drops_broker_headers() -> None:
    original = incoming({HEADER_MESSAGE_ID: "m-1", HEADER_ATTEMPT: "2", "x-death": [{}], "n": 5})
    stamp = wire.Stamp.of(original)
    fresh = wire.copy(
        original,
        stamp,
        attempt=3,
        set_headers={"conveyor-last-error": "x" * 10_000},
        expiration_ms=1234,
    )
    assert fresh.message_id == "m-1" and fresh.correlation_id == "c-1"
    assert fresh.headers[HEADER_ATTEMPT] == "3" and fresh.headers["n"] == 5
    assert "x-death" not in fresh.headers
    assert len(str(fresh.headers["conveyor-last-error"])) == wire.MAX_ERROR_CHARS
    assert fresh.expiration == "1234"


def test_a_foreign_message_without_an_id_gets_one_from_its_content() -> None:
    first, second = wire.Stamp.of(incoming(None)), wire.Stamp.of(incoming({"n": 1}))
    assert first.id == second.id and first.attempt == 1
    assert wire.Stamp.of(incoming(None, message_id="ext-7")).id == "ext-7"
    assert second.headers == {"n": "1"}
