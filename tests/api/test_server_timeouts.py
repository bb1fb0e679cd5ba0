"""Issue 19 item 11: idle and slow connections are closed (a header deadline, besides
uvicorn's keep-alive timeout), over a real socket."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator

import pytest
import uvicorn
from starlette.applications import Starlette
from starlette.responses import PlainTextResponse
from starlette.routing import Route

from conveyor.api.server import HeaderTimeoutProtocol


class QuickTimeout(HeaderTimeoutProtocol):
    header_timeout_s = 0.3


async def _hello(_: object) -> PlainTextResponse:
    return PlainTextResponse("hi")


@pytest.fixture
async def port() -> AsyncIterator[int]:
    app = Starlette(routes=[Route("/", _hello)])
    config = uvicorn.Config(app, host="127.0.0.1", port=0, http=QuickTimeout, log_level="error")
    server = uvicorn.Server(config)
    task = asyncio.create_task(server.serve())
    deadline = time.monotonic() + 10
    while not server.started:
        assert time.monotonic() < deadline
        await asyncio.sleep(0.01)
    yield server.servers[0].sockets[0].getsockname()[1]
    server.should_exit = True
    await task


async def closed_within(reader: asyncio.StreamReader, timeout_s: float) -> bytes:
    return await asyncio.wait_for(reader.read(), timeout_s)


async def test_a_connection_that_sends_nothing_is_closed(port: int) -> None:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    assert await closed_within(reader, 5) == b""
    writer.close()


async def test_headers_sent_a_byte_at_a_time_are_cut_off(port: int) -> None:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(b"GET / HTTP/1.1\r\nHost: x\r\n")
    await writer.drain()
    assert await closed_within(reader, 5) == b""  # the blank line never came
    writer.close()


async def test_a_prompt_request_is_answered(port: int) -> None:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(b"GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
    await writer.drain()
    answer = await closed_within(reader, 5)
    assert answer.startswith(b"HTTP/1.1 200") and answer.endswith(b"hi")
    writer.close()
