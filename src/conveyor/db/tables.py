"""The platform's own tables (user tables of ZStorage live elsewhere).

Migrations in `conveyor/migrations` create these; a test checks that the two agree.
"""

from __future__ import annotations

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    Column,
    Float,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    String,
    Table,
    Text,
)

from conveyor.db.types import UTCDateTime

metadata = MetaData(
    naming_convention={
        "ix": "ix_%(table_name)s_%(column_0_N_name)s",
        "uq": "uq_%(table_name)s_%(column_0_N_name)s",
        "ck": "ck_%(table_name)s_%(constraint_name)s",
        "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
        "pk": "pk_%(table_name)s",
    }
)

api_keys = Table(
    "conveyor_api_keys",
    metadata,
    Column("id", String(32), primary_key=True),
    Column("name", String(200), nullable=False),
    Column("secret_sha256", String(64), nullable=False),
    Column("scopes", JSON, nullable=False),
    Column("queues", JSON, nullable=True),
    Column("created_at", UTCDateTime, nullable=False),
    Column("last_used_at", UTCDateTime, nullable=True),
    Column("revoked_at", UTCDateTime, nullable=True),
)

users = Table(
    "conveyor_users",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("username", String(150), nullable=False, unique=True),
    Column("password_hash", String(255), nullable=False),
    Column("is_active", Boolean, nullable=False, default=True),
    Column("created_at", UTCDateTime, nullable=False),
    Column("last_login_at", UTCDateTime, nullable=True),
)

queues = Table(
    "conveyor_queues",
    metadata,
    Column("id", String(32), primary_key=True),
    Column("name", String(128), nullable=False, unique=True),
    Column("type", String(16), nullable=False),
    Column("url", String(2048), nullable=True),
    Column("username", String(255), nullable=True),
    #: Fernet token; the plain password never touches the database.
    Column("password_encrypted", Text, nullable=True),
    Column("region", String(64), nullable=True),
    Column("description", Text, nullable=True),
    Column("options", JSON, nullable=False),
    Column("created_at", UTCDateTime, nullable=False),
    Column("updated_at", UTCDateTime, nullable=False),
)

#: The embedded queue. Times are epoch milliseconds: cheap to compare and index on
#: both databases. A message is visible when `visible_at <= now`; claiming it sets a
#: `lease_id` and pushes `visible_at` to the end of the lease, so an expired lease
#: makes it visible again without anyone having to notice the crash.
messages = Table(
    "conveyor_messages",
    metadata,
    Column(
        "id", BigInteger().with_variant(Integer, "sqlite"), primary_key=True, autoincrement=True
    ),
    Column(
        "queue_id", String(32), ForeignKey("conveyor_queues.id", ondelete="CASCADE"), nullable=False
    ),
    Column("message_id", String(36), nullable=False),
    Column("payload", Text, nullable=False),
    Column("headers", JSON, nullable=True),
    Column("ordering_key", String(255), nullable=True),
    #: ready | dead
    Column("state", String(8), nullable=False),
    Column("attempt", Integer, nullable=False),
    Column("published_at", BigInteger, nullable=False),
    Column("visible_at", BigInteger, nullable=False),
    Column("lease_id", String(32), nullable=True),
    Column("last_error", Text, nullable=True),
    Column("dead_at", BigInteger, nullable=True),
    Index("ix_conveyor_messages_claim", "queue_id", "state", "visible_at", "id"),
)

idempotency_keys = Table(
    "conveyor_idempotency_keys",
    metadata,
    Column(
        "queue_id",
        String(32),
        ForeignKey("conveyor_queues.id", ondelete="CASCADE"),
        primary_key=True,
    ),
    Column("key", String(255), primary_key=True),
    #: The first answer, returned again to retries; NULL while the first is in progress.
    Column("response", JSON, nullable=True),
    Column("created_at", BigInteger, nullable=False),
    Index("ix_conveyor_idempotency_keys_created_at", "created_at"),
)

#: Worker processes: registered at start, refreshed by heartbeats, marked at a clean stop.
#: A worker whose beats stop without `stopped_at` died (killed, or its machine did).
workers = Table(
    "conveyor_workers",
    metadata,
    Column("id", String(32), primary_key=True),
    Column("host", String(255), nullable=False),
    Column("pid", Integer, nullable=False),
    Column("version", String(32), nullable=False),
    Column("queues", JSON, nullable=False),
    Column("handlers", JSON, nullable=False),
    Column("concurrency", Integer, nullable=False),
    Column("heartbeat_s", Float, nullable=False),
    Column("started_at", UTCDateTime, nullable=False),
    Column("last_beat_at", UTCDateTime, nullable=False),
    Column("stopped_at", UTCDateTime, nullable=True),
    Column("processed", BigInteger, nullable=False),
    Column("failed", BigInteger, nullable=False),
    Column("in_flight", Integer, nullable=False),
    Index("ix_conveyor_workers_last_beat_at", "last_beat_at"),
)
