"""Settings, read once from `CONVEYOR_*` environment variables and `.env`."""

from __future__ import annotations

import os
import secrets
from pathlib import Path
from typing import Literal

from pydantic import Field, SecretStr, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from conveyor.exceptions import ConfigurationError

SECRET_KEY_FILE = "secret_key"  # noqa: S105 - a file name, not a secret
DATABASE_FILE = "conveyor.db"


class Settings(BaseSettings):
    """Everything Conveyor can be told from the environment.

    Build it with `Settings.load()`: that resolves the database URL and the secret key,
    creating the data dir and the key file on first start.
    """

    model_config = SettingsConfigDict(
        env_prefix="CONVEYOR_", env_file=".env", extra="ignore", frozen=True
    )

    data_dir: Path = Path(".conveyor")
    #: `sqlite:///path`, `postgresql://user@host/db` (the async driver is chosen for you).
    database_url: str = ""
    #: PostgreSQL only: the schema holding Conveyor's tables (default: the search path).
    database_schema: str | None = None
    database_pool_size: int = Field(default=10, ge=1, le=200)
    #: SQLite `synchronous` pragma: FULL survives power loss, NORMAL only process crashes.
    sqlite_synchronous: str = "FULL"
    sqlite_busy_timeout_ms: int = Field(default=30_000, ge=0)
    #: Encrypts stored queue credentials and signs back-office sessions. Comma-separated
    #: list to rotate: the first encrypts, all decrypt.
    secret_key: SecretStr = SecretStr("")
    #: Seconds an authenticated API key stays cached; revocation takes effect within it.
    key_cache_ttl_s: float = Field(default=2.0, ge=0, le=60)
    #: Refuse queue URLs that point at private, loopback, link-local or metadata
    #: addresses (for multi-tenant deployments; local brokers are normal in development).
    deny_private_queue_urls: bool = False
    #: Back-office sessions end after this long without a request…
    session_idle_timeout_s: int = Field(default=3600, ge=60, le=7 * 86400)
    #: …and this long after the login, whatever the activity.
    session_max_age_s: int = Field(default=12 * 3600, ge=60, le=30 * 86400)
    #: Believe `X-Forwarded-Proto`/`X-Forwarded-For` (only behind a reverse proxy that
    #: sets them; otherwise any client could claim HTTPS or another address).
    trust_proxy_headers: bool = False
    #: Run the outbox relay inside this process (`conveyor serve`); turn it off when a
    #: separate `conveyor relay` does the job.
    relay_enabled: bool = True
    #: How long sent outbox rows are kept before they are pruned.
    outbox_retention_s: float = Field(default=7 * 24 * 3600, ge=0)
    #: A `sync` link waits this long for the broker before failing the write with 503.
    link_sync_timeout_s: float = Field(default=5.0, gt=0, le=60)
    #: The largest JSON body of a record write, and of any API body but a bulk write and
    #: a publish (a queue's `max_message_bytes` bounds those).
    max_record_bytes: int = Field(default=1024 * 1024, ge=1024, le=64 * 1024 * 1024)
    #: The largest body of a bulk record write (`records:bulk`).
    max_bulk_bytes: int = Field(default=16 * 1024 * 1024, ge=1024, le=256 * 1024 * 1024)
    host: str = "127.0.0.1"
    port: int = Field(default=8000, ge=0, le=65535)
    log_level: str = "info"
    #: Seconds between a worker's heartbeats; it counts as dead after three missed.
    worker_heartbeat_s: float = Field(default=10.0, gt=0, le=300)
    #: SMTP server for `context.mail` in handlers (unset: sending mail is refused).
    smtp_host: str | None = None
    #: Default: 465 with `smtp_security=tls`, 587 with `starttls`, 25 with `none`.
    smtp_port: int | None = Field(default=None, ge=1, le=65535)
    smtp_username: str | None = None
    smtp_password: SecretStr | None = None
    #: `starttls` (upgrade a plain connection), `tls` (implicit TLS) or `none`.
    smtp_security: Literal["starttls", "tls", "none"] = "starttls"
    #: The sender used when a handler does not give one.
    smtp_from: str | None = None
    smtp_timeout_s: float = Field(default=30.0, gt=0, le=300)

    @field_validator("sqlite_synchronous")
    @classmethod
    def _synchronous(cls, value: str) -> str:
        value = value.upper()
        if value not in {"OFF", "NORMAL", "FULL", "EXTRA"}:
            raise ValueError("must be one of OFF, NORMAL, FULL, EXTRA")
        return value

    @classmethod
    def load(cls, **overrides: object) -> Settings:
        """Read the environment, then fill in the database URL and the secret key."""
        try:
            settings = cls(**overrides)  # type: ignore[arg-type]
        except ValueError as exc:
            raise ConfigurationError(f"invalid CONVEYOR_* setting: {exc}") from exc
        return settings.resolved()

    def resolved(self) -> Settings:
        url = self.database_url or f"sqlite:///{self.data_dir / DATABASE_FILE}"
        key = self.secret_key.get_secret_value() or load_or_create_secret_key(self.data_dir)
        return self.model_copy(update={"database_url": url, "secret_key": SecretStr(key)})

    @property
    def secret_keys(self) -> list[str]:
        return [k.strip() for k in self.secret_key.get_secret_value().split(",") if k.strip()]


def load_or_create_secret_key(data_dir: Path) -> str:
    """The key in `<data_dir>/secret_key`, written (mode 0600) on first use."""
    path = data_dir / SECRET_KEY_FILE
    try:
        return path.read_text().strip()
    except FileNotFoundError:
        pass
    data_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
    key = secrets.token_urlsafe(32)
    # Write a private temp file, then link it into place: link() fails if another
    # process won the race, and nobody ever reads a half-written key.
    tmp = data_dir / f".{SECRET_KEY_FILE}.{os.getpid()}.{secrets.token_hex(4)}"
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w") as file:
        file.write(key + "\n")
    try:
        os.link(tmp, path)
    except FileExistsError:
        key = path.read_text().strip()
    finally:
        tmp.unlink()
    return key
