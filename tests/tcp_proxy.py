"""A TCP forwarder that a test can cut and restore, to fake a network fault."""

from __future__ import annotations

import asyncio
import contextlib
from urllib.parse import urlsplit, urlunsplit


class TcpProxy:
    """Forwards 127.0.0.1:`port` to an upstream address.

    `cut()` resets every open connection and every new one until `restore()`;
    `stall()` keeps connections open but forwards nothing (a silent network);
    `delay_s` holds every chunk that long before forwarding it (a slow network).
    """

    def __init__(self, upstream_host: str, upstream_port: int) -> None:
        self._upstream = (upstream_host, upstream_port)
        self._server: asyncio.Server | None = None
        self._writers: set[asyncio.StreamWriter] = set()
        self._tasks: set[asyncio.Task[None]] = set()
        self.accepting = True
        self.forwarding = True
        self.delay_s = 0.0
        self.port = 0
        self._url = f"tcp://{upstream_host}:{upstream_port}"

    @classmethod
    def to(cls, url: str, default_port: int) -> TcpProxy:
        """A proxy to the service a test setting names (`CONVEYOR_TEST_*_URL`)."""
        parts = urlsplit(url)
        proxy = cls(parts.hostname or "127.0.0.1", parts.port or default_port)
        proxy._url = url
        return proxy

    @property
    def url(self) -> str:
        """The URL `to` was given, through this proxy."""
        parts = urlsplit(self._url)
        credentials = parts.netloc.rpartition("@")[0]
        netloc = f"{credentials}@" if credentials else ""
        return urlunsplit(parts._replace(netloc=f"{netloc}127.0.0.1:{self.port}"))

    async def __aenter__(self) -> TcpProxy:
        self._server = await asyncio.start_server(self._handle, "127.0.0.1", 0)
        self.port = self._server.sockets[0].getsockname()[1]
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        self.cut()
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)

    def cut(self) -> None:
        self.accepting = False
        for writer in list(self._writers):
            writer.transport.abort()
        self._writers.clear()

    def stall(self) -> None:
        self.forwarding = False

    def restore(self) -> None:
        self.accepting = True
        self.forwarding = True

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        if not self.accepting:
            writer.transport.abort()
            return
        try:
            up_reader, up_writer = await asyncio.open_connection(*self._upstream)
        except OSError:
            writer.transport.abort()
            return
        self._writers |= {writer, up_writer}
        pipes = [
            asyncio.create_task(self._pipe(reader, up_writer)),
            asyncio.create_task(self._pipe(up_reader, writer)),
        ]
        self._tasks.update(pipes)
        await asyncio.gather(*pipes, return_exceptions=True)
        self._tasks.difference_update(pipes)
        for side in (writer, up_writer):
            self._writers.discard(side)
            side.transport.abort()

    async def _pipe(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        with contextlib.suppress(ConnectionError, OSError):
            while data := await reader.read(65536):
                if self.delay_s:
                    await asyncio.sleep(self.delay_s)
                if self.forwarding:
                    writer.write(data)
                    await writer.drain()
        writer.transport.abort()
