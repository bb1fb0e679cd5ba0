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
    UniqueConstraint,
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
    #: admin | operator (`conveyor.users.Role`)
    Column("role", String(16), nullable=False, server_default="admin"),
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
    #: Written in batches by the publisher (`queues/activity.py`), a few seconds late.
    Column("last_published_at", UTCDateTime, nullable=True),
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
    # NULL (not JSON null) when there are none: nothing to encode on the publish path.
    Column("headers", JSON(none_as_null=True), nullable=True),
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
    # A key belongs to one API key, queue and endpoint (`queues.idempotency.Scope`).
    Column("api_key_id", String(32), primary_key=True),
    Column(
        "queue_id",
        String(32),
        ForeignKey("conveyor_queues.id", ondelete="CASCADE"),
        primary_key=True,
    ),
    Column("endpoint", String(16), primary_key=True),
    Column("key", String(255), primary_key=True),
    #: SHA-256 of the first request's body: the same key with another body is refused.
    Column("fingerprint", String(64), nullable=False),
    #: The first answer, returned again to retries; NULL while the first is in progress.
    Column("response", JSON, nullable=True),
    Column("created_at", BigInteger, nullable=False),
    #: The message ids the key publishes under: an attempt that failed may still have
    #: reached the broker, so a retry sends the same ids (consumers deduplicate on them).
    Column("message_ids", JSON, nullable=True),
    #: When the last attempt failed (epoch ms): a retry may take the key over at once.
    Column("released_at", BigInteger, nullable=True),
    Index("ix_conveyor_idempotency_keys_created_at", "created_at"),
)

#: Table → queue links: which record events of a ZStorage table publish to a queue.
links = Table(
    "conveyor_links",
    metadata,
    Column("id", String(32), primary_key=True),
    Column("table_name", String(63), nullable=False),
    Column(
        "queue_id", String(32), ForeignKey("conveyor_queues.id", ondelete="CASCADE"), nullable=False
    ),
    Column("events", JSON, nullable=False),
    Column("handler", String(255), nullable=False),
    #: outbox | sync
    Column("mode", String(8), nullable=False),
    Column("created_at", UTCDateTime, nullable=False),
    Column("updated_at", UTCDateTime, nullable=False),
    UniqueConstraint("table_name", "queue_id", name="uq_conveyor_links_table_name_queue_id"),
)

#: The transactional outbox: a row per message, written in the record's transaction
#: and sent by a relay. Times are epoch milliseconds.
outbox = Table(
    "conveyor_outbox",
    metadata,
    Column(
        "id", BigInteger().with_variant(Integer, "sqlite"), primary_key=True, autoincrement=True
    ),
    Column(
        "queue_id", String(32), ForeignKey("conveyor_queues.id", ondelete="CASCADE"), nullable=False
    ),
    Column("table_name", String(63), nullable=False),
    Column("record_id", String(64), nullable=True),
    Column("event", String(16), nullable=False),
    Column("message_id", String(36), nullable=False),
    #: Messages with one key are delivered in id order: `<table>:<record id>`.
    Column("ordering_key", String(255), nullable=False),
    Column("payload", Text, nullable=False),
    #: pending | sent | failed
    Column("status", String(8), nullable=False),
    Column("attempts", Integer, nullable=False),
    Column("next_attempt_at", BigInteger, nullable=False),
    Column("claimed_until", BigInteger, nullable=True),
    Column("claimed_by", String(64), nullable=True),
    Column("last_error", Text, nullable=True),
    Column("backend_id", String(255), nullable=True),
    Column("created_at", BigInteger, nullable=False),
    Column("sent_at", BigInteger, nullable=True),
    Index("ix_conveyor_outbox_status_next_attempt_at", "status", "next_attempt_at", "id"),
    Index("ix_conveyor_outbox_ordering_key_status_id", "ordering_key", "status", "id"),
    Index("ix_conveyor_outbox_table_name_record_id", "table_name", "record_id"),
    Index("ix_conveyor_outbox_status_id", "status", "id"),
)

#: Back-office sessions. Only a SHA-256 of the session id (the cookie) is stored, so a
#: database dump yields no usable session.
sessions = Table(
    "conveyor_sessions",
    metadata,
    Column("id_sha256", String(64), primary_key=True),
    Column("user_id", Integer, ForeignKey("conveyor_users.id", ondelete="CASCADE"), nullable=False),
    #: The synchronizer token every state-changing form of this session must carry.
    Column("csrf_token", String(64), nullable=False),
    Column("created_at", UTCDateTime, nullable=False),
    Column("last_seen_at", UTCDateTime, nullable=False),
    Index("ix_conveyor_sessions_user_id", "user_id"),
    Index("ix_conveyor_sessions_last_seen_at", "last_seen_at"),
)

#: Failed back-office logins, per client address and per (username, address).
login_failures = Table(
    "conveyor_login_failures",
    metadata,
    Column("key_sha256", String(64), primary_key=True),
    Column("failures", Integer, nullable=False),
    Column("last_failure_at", UTCDateTime, nullable=False),
    Column("locked_until", UTCDateTime, nullable=True),
)

#: ZStorage tables. Each row describes a real SQL table (`sql_name`) created at run time;
#: `version` goes up on every change so that each process can tell its cached copy is stale.
storage_tables = Table(
    "conveyor_storage_tables",
    metadata,
    Column("id", String(32), primary_key=True),
    Column("name", String(63), nullable=False, unique=True),
    Column("sql_name", String(63), nullable=False, unique=True),
    Column("label", String(200), nullable=False),
    Column("description", Text, nullable=True),
    Column("version", Integer, nullable=False),
    #: The field that names a record in links, lists and pickers (NULL: chosen for it).
    Column("display_field", String(63), nullable=True),
    Column("created_at", UTCDateTime, nullable=False),
    Column("updated_at", UTCDateTime, nullable=False),
)

storage_fields = Table(
    "conveyor_storage_fields",
    metadata,
    Column(
        "table_id",
        String(32),
        ForeignKey("conveyor_storage_tables.id", ondelete="CASCADE"),
        primary_key=True,
    ),
    Column("name", String(63), primary_key=True),
    Column("position", Integer, nullable=False),
    Column("type", String(16), nullable=False),
    Column("label", String(200), nullable=False),
    #: required, unique, default, min, max, pattern, choices, indexed, searchable, ...
    Column("options", JSON, nullable=False),
)

storage_rules = Table(
    "conveyor_storage_rules",
    metadata,
    Column(
        "table_id",
        String(32),
        ForeignKey("conveyor_storage_tables.id", ondelete="CASCADE"),
        primary_key=True,
    ),
    Column("name", String(63), primary_key=True),
    Column("position", Integer, nullable=False),
    Column("expression", Text, nullable=False),
    Column("message", Text, nullable=False),
)

#: Back-office pages designed per table (`storage/page_spec.py`): the definition is
#: JSON that names fields; a field rename rewrites it in the rename's transaction.
storage_pages = Table(
    "conveyor_storage_pages",
    metadata,
    Column("id", String(32), primary_key=True),
    Column(
        "table_id",
        String(32),
        ForeignKey("conveyor_storage_tables.id", ondelete="CASCADE"),
        nullable=False,
    ),
    Column("slug", String(63), nullable=False),
    Column("title", String(200), nullable=False),
    Column("definition", JSON, nullable=False),
    Column("created_at", UTCDateTime, nullable=False),
    Column("updated_at", UTCDateTime, nullable=False),
    UniqueConstraint("table_id", "slug", name="uq_conveyor_storage_pages_table_id_slug"),
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
