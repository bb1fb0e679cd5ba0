"""Opening the robust connection: URL, credentials, timeouts."""

from __future__ import annotations

import contextlib
from dataclasses import dataclass

from aio_pika import RobustConnection
from yarl import URL

from conveyor.queues.model import Credentials, Queue
from conveyor.queues.rabbitmq.errors import Peer, translated


@dataclass(frozen=True)
class Timeouts:
    """Bounds on waiting for the broker; every call is under one of them."""

    #: Opening the connection (TCP, TLS, AMQP handshake).
    connect_s: float = 5.0
    #: One operation: a publish until its confirm, a declare, a batch.
    operation_s: float = 10.0
    #: Pause between reconnection attempts after the connection is lost.
    reconnect_interval_s: float = 1.0
    #: AMQP heartbeat: a silent broker is declared dead after about twice this.
    heartbeat_s: int = 10


def connection_url(queue: Queue, credentials: Credentials, timeouts: Timeouts) -> URL:
    url = URL(queue.url or "")
    if credentials.username is not None:
        url = url.with_user(credentials.username)
    if credentials.password is not None:
        url = url.with_password(credentials.password)
    # The queue's own URL parameters (heartbeat=…) win over these defaults.
    defaults = {
        "heartbeat": str(timeouts.heartbeat_s),
        "reconnect_interval": f"{timeouts.reconnect_interval_s:g}",
        "name": f"conveyor queue {queue.name}",
    }
    return url.with_query({**defaults, **url.query})


def peer_of(url: URL) -> Peer:
    default_port = 5671 if url.scheme == "amqps" else 5672
    vhost = url.path[1:] if len(url.path) > 1 else "/"
    return Peer(
        host=url.host or "localhost",
        port=url.port or default_port,
        vhost=vhost,
        username=url.user or "guest",
        password=url.password,
    )


async def connect(url: URL, peer: Peer, timeouts: Timeouts) -> RobustConnection:
    """An open robust connection: it reconnects by itself once it has connected.

    This is `aio_pika.connect_robust`, unrolled so that a failed first attempt can be
    closed (the reconnection task must not outlive it).
    """
    connection = RobustConnection(url)
    try:
        async with translated(peer, "connecting", timeout_s=timeouts.connect_s):
            await connection.connect(timeout=timeouts.connect_s)
    except BaseException:
        with contextlib.suppress(Exception):
            await connection.close()
        raise
    return connection


def connection_frame_max(connection: RobustConnection) -> int:
    """The frame size negotiated with RabbitMQ (its default when it cannot be read)."""
    underlay = connection.transport.connection if connection.transport else None
    frame_max = getattr(getattr(underlay, "connection_tune", None), "frame_max", None)
    return frame_max if isinstance(frame_max, int) and frame_max >= 4096 else 131_072
