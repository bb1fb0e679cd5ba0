"""What handlers see and can do: signals, plain functions, and the batteries."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import socket
import threading
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import pytest
from aiosmtpd.controller import Controller
from aiosmtpd.smtp import SMTP, AuthResult, Envelope, Session
from pydantic import SecretStr

from conveyor import Context, Reject, Retry, handler
from conveyor.config import Settings
from conveyor.exceptions import ConfigurationError, MailFailed
from conveyor.platform import Platform
from conveyor.worker.handlers import HandlerRegistry
from conveyor.worker.mail import Mailer
from tests.worker.conftest import NewQueue
from tests.worker.helpers import MaxJitter, Recorder, drained, eventually, running


async def dead_letters(platform: Platform, queue: Any) -> dict[str, Any]:
    backend = await platform.backends.get(queue)
    return {d.message_id: d for d in (await backend.dead_letters(limit=50)).items}


async def test_signals_retry_with_a_delay_and_reject(
    platform: Platform, worker_queue: NewQueue
) -> None:
    queue = await worker_queue(max_attempts=5)
    record = Recorder()

    @handler("later")
    async def later(context: Context) -> None:
        start = record.enter()
        record.leave("later", context.message.attempt, start)
        if context.message.attempt == 1:
            raise Retry("rate limited", delay_s=0.5)
        context.runtime.ack_message()

    @handler("refuse")
    def refuse(context: Context) -> None:
        raise Reject(f"unknown customer {context.message.payload['customer']}")

    await platform.publisher.publish_object(queue, {"handler": "later"})
    refused = await platform.publisher.publish_object(queue, {"handler": "refuse", "customer": 7})
    async with running(platform, queue, HandlerRegistry([later, refuse])) as worker:
        await eventually(lambda: drained(platform, queue, dead=1), what="settled")
    first, second = record.of("later")
    assert second.start - first.end >= 0.5
    letter = (await dead_letters(platform, queue))[refused["message-id"]]
    assert letter.attempts == 1 and letter.last_error == "rejected: unknown customer 7"
    # Signals are not failures.
    assert worker.counters.failed == 0
    assert worker.counters.retried == 1 and worker.counters.dead_lettered == 1


async def test_plain_functions_run_in_the_thread_pool(
    platform: Platform, worker_queue: NewQueue
) -> None:
    queue = await worker_queue()
    record = Recorder()
    loop_thread = threading.current_thread().name

    @handler("blocking", auto_ack=True)
    def blocking(context: Context) -> None:
        start = record.enter()
        threading.Event().wait(0.2)  # blocks its thread, not the event loop
        record.leave(context.message.payload["n"], context.message.attempt, start)

    for n in range(6):
        await platform.publisher.publish_object(queue, {"handler": "blocking", "n": n})
    async with running(platform, queue, HandlerRegistry([blocking]), concurrency=3):
        await eventually(lambda: drained(platform, queue), what="all acked")
    assert sorted(record.handled()) == list(range(6))
    assert record.peak == 3
    assert all(e.thread.startswith("conveyor-handler") for e in record.executions)
    assert all(e.thread != loop_thread for e in record.executions)


async def test_a_handler_that_returns_without_acking_is_retried(
    platform: Platform, worker_queue: NewQueue
) -> None:
    queue = await worker_queue(max_attempts=2, retry_backoff_s=0)

    @handler("forgetful")
    async def forgetful(context: Context) -> None:
        pass

    sent = await platform.publisher.publish_object(queue, {"handler": "forgetful"})
    async with running(platform, queue, HandlerRegistry([forgetful]), rng=MaxJitter()):
        await eventually(lambda: drained(platform, queue, dead=1), what="dead-lettered")
    letter = (await dead_letters(platform, queue))[sent["message-id"]]
    assert letter.attempts == 2
    assert "returned without acking" in (letter.last_error or "")


async def test_the_message_the_handler_sees(
    platform: Platform, worker_queue: NewQueue, caplog: pytest.LogCaptureFixture
) -> None:
    queue = await worker_queue()
    seen: list[Context] = []

    @handler("inspect", auto_ack=True)
    async def inspect_(context: Context) -> None:
        seen.append(context)
        context.log.info("charged", amount=12, note="two words")

    sent = await platform.publisher.publish_object(queue, {"handler": "inspect", "x": [1, 2]})
    caplog.set_level(logging.INFO, logger="conveyor")
    async with running(platform, queue, HandlerRegistry([inspect_])):
        await eventually(lambda: drained(platform, queue), what="acked")
    (context,) = seen
    message = context.message
    assert message.id == sent["message-id"]
    assert message.payload == {"handler": "inspect", "x": [1, 2]}
    assert (message.attempt, message.queue, message.handler) == (1, queue.name, "inspect")
    assert message.headers["conveyor-message-id"] == message.id
    assert message.published_at.tzinfo is not None
    assert context.settings is platform.settings
    assert context.runtime.max_attempts == queue.options.max_attempts
    assert context.storage is platform.storage.records
    # context.log lines carry their fields and the message's identity
    line = next(r.getMessage() for r in caplog.records if r.getMessage().startswith("charged"))
    assert 'amount=12 note="two words"' in line
    assert f"message_id={message.id}" in line and "handler=inspect" in line
    # and the worker logs one line per outcome
    (outcome,) = [r.getMessage() for r in caplog.records if "message handled" in r.getMessage()]
    for field in ("handler=inspect", f"message_id={message.id}", "attempt=1", "result=acked"):
        assert field in outcome
    assert "duration_ms=" in outcome


async def test_context_publish_reaches_another_queue_from_async_and_plain_handlers(
    platform: Platform, worker_queue: NewQueue
) -> None:
    source, target = await worker_queue(), await worker_queue()
    received: list[dict[str, Any]] = []

    @handler("fan-out", auto_ack=True)
    async def fan_out(context: Context) -> None:
        await context.publish(target.name, {"handler": "sink", "from": "async"})

    @handler("fan-out-plain", auto_ack=True)
    def fan_out_plain(context: Context) -> None:
        answer = context.run(context.publish(target.id, {"handler": "sink", "from": "plain"}))
        assert answer["queue-id"] == target.id

    @handler("sink", auto_ack=True)
    async def sink(context: Context) -> None:
        received.append(context.message.payload)

    await platform.publisher.publish_object(source, {"handler": "fan-out"})
    await platform.publisher.publish_object(source, {"handler": "fan-out-plain"})
    registry = HandlerRegistry([fan_out, fan_out_plain, sink])
    async with running(platform, [source, target], registry):
        await eventually(lambda: len(received) == 2, what="both published messages handled")
    assert sorted(p["from"] for p in received) == ["async", "plain"]


@contextlib.asynccontextmanager
async def http_server(body: bytes) -> AsyncIterator[tuple[str, list[bytes]]]:
    """A tiny HTTP/1.1 server on a free port that answers every request with `body`."""
    requests: list[bytes] = []

    async def serve(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        head = await reader.readuntil(b"\r\n\r\n")
        length = next(
            (
                int(h.split(b":")[1])
                for h in head.split(b"\r\n")
                if h.lower().startswith(b"content-length")
            ),
            0,
        )
        requests.append(head + await reader.readexactly(length))
        writer.write(
            b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n"
            + f"Content-Length: {len(body)}\r\nConnection: close\r\n\r\n".encode()
            + body
        )
        await writer.drain()
        writer.close()

    server = await asyncio.start_server(serve, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    async with server:
        yield f"http://127.0.0.1:{port}", requests


async def test_context_http_is_a_shared_async_client(
    platform: Platform, worker_queue: NewQueue
) -> None:
    queue = await worker_queue()
    answers: list[Any] = []
    clients: set[int] = set()

    async with http_server(b'{"ok": true}') as (base, requests):

        @handler("call", auto_ack=True)
        async def call(context: Context) -> None:
            clients.add(id(context.http))
            response = await context.http.post(f"{base}/hook", json=context.message.payload)
            answers.append(response.json())

        for n in range(3):
            await platform.publisher.publish_object(queue, {"handler": "call", "n": n})
        async with running(platform, queue, HandlerRegistry([call])):
            await eventually(lambda: drained(platform, queue), what="all acked")
    assert answers == [{"ok": True}] * 3
    assert len(clients) == 1
    assert all(r.startswith(b"POST /hook") for r in requests) and len(requests) == 3


class Inbox:
    def __init__(self) -> None:
        self.envelopes: list[Envelope] = []

    async def handle_DATA(self, server: SMTP, session: Session, envelope: Envelope) -> str:
        self.envelopes.append(envelope)
        return "250 OK"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.fixture
def smtp_server() -> Iterator[tuple[int, Inbox]]:
    inbox = Inbox()

    def only_robot(
        server: SMTP, session: Session, envelope: Envelope, mechanism: str, auth: Any
    ) -> AuthResult:
        ok = auth.login == b"robot" and auth.password == b"right"
        return AuthResult(success=ok, handled=False)

    controller = Controller(
        inbox,
        hostname="127.0.0.1",
        port=free_port(),
        authenticator=only_robot,
        auth_require_tls=False,
    )
    controller.start()
    try:
        yield controller.port, inbox
    finally:
        controller.stop()


async def test_context_mail_sends_through_the_configured_smtp_server(
    settings: Settings, smtp_server: tuple[int, Inbox], worker_queue: NewQueue
) -> None:
    port, inbox = smtp_server
    mail_settings = settings.model_copy(
        update={
            "smtp_host": "127.0.0.1",
            "smtp_port": port,
            "smtp_security": "none",
            "smtp_from": "conveyor@example.test",
        }
    )
    async with Platform(mail_settings) as platform:
        queue = await platform.queues.create({"name": "mailer", "type": "embedded"})

        @handler("welcome", auto_ack=True)
        async def welcome(context: Context) -> None:
            to = context.message.payload["to"]
            await context.mail.send(to, "Welcome", "Hello there", html="<p>Hello there</p>")

        await platform.publisher.publish_object(queue, {"handler": "welcome", "to": "ana@x.test"})
        async with running(platform, queue, HandlerRegistry([welcome])):
            await eventually(lambda: drained(platform, queue), what="mail sent and acked")
    (envelope,) = inbox.envelopes
    assert envelope.mail_from == "conveyor@example.test"
    assert envelope.rcpt_tos == ["ana@x.test"]
    content = envelope.content
    assert isinstance(content, bytes)
    assert b"Subject: Welcome" in content and b"<p>Hello there</p>" in content


async def test_mail_errors_are_clear_and_never_show_the_password(
    tmp_path: Path, smtp_server: tuple[int, Inbox]
) -> None:
    settings = Settings(_env_file=None, data_dir=tmp_path)  # type: ignore[call-arg]
    with pytest.raises(ConfigurationError, match="CONVEYOR_SMTP_HOST"):
        await Mailer(settings).send("a@x.test", "s", "t", sender="b@x.test")
    port, inbox = smtp_server
    wrong_password = settings.model_copy(
        update={
            "smtp_host": "127.0.0.1",
            "smtp_port": port,
            "smtp_security": "none",
            "smtp_username": "robot",
            "smtp_password": SecretStr("hunter2-secret"),
            "smtp_timeout_s": 2.0,
        }
    )
    with pytest.raises(MailFailed) as refused:
        await Mailer(wrong_password).send("a@x.test", "s", "t", sender="b@x.test")
    assert "127.0.0.1" in str(refused.value) and "hunter2-secret" not in str(refused.value)
    unreachable = wrong_password.model_copy(update={"smtp_port": free_port()})
    with pytest.raises(MailFailed) as down:
        await Mailer(unreachable).send("a@x.test", "s", "t", sender="b@x.test")
    assert "hunter2-secret" not in str(down.value)
    assert inbox.envelopes == []
    # The right credentials get through.
    right = wrong_password.model_copy(update={"smtp_password": SecretStr("right")})
    await Mailer(right).send("a@x.test", "s", "t", sender="b@x.test")
    assert len(inbox.envelopes) == 1
