"""`conveyor serve` and `conveyor migrate`."""

from __future__ import annotations

import copy
from typing import Annotated, Any

import typer
import uvicorn
from sqlalchemy import make_url

from conveyor import logs
from conveyor.api.server import KEEP_ALIVE_TIMEOUT_S, HeaderTimeoutProtocol
from conveyor.cli.common import load_settings, out, run
from conveyor.config import Settings
from conveyor.db.migrate import MigrationResult
from conveyor.platform import Platform


def register(app: typer.Typer) -> None:
    app.command()(serve)
    app.command()(migrate)


def serve(
    host: Annotated[
        str | None, typer.Option(help="Interface to bind [default: 127.0.0.1].")
    ] = None,
    port: Annotated[int | None, typer.Option(help="Port to bind [default: 8000].")] = None,
    workers: Annotated[int, typer.Option(min=1, help="Server processes.")] = 1,
) -> None:
    """Run the API (and back-office), migrating the database first."""
    settings = load_settings()
    result, active_keys = run(_prepare(settings))
    _report_migration(settings, result)
    if active_keys == 0:
        out.print(
            "No API keys yet. Create the first one with:\n"
            "  conveyor keys create --name admin --scope admin",
            style="yellow",
        )
    bind_host, bind_port = host or settings.host, port if port is not None else settings.port
    out.print(f"Conveyor listening on http://{bind_host}:{bind_port}  (API docs: /docs)")
    uvicorn.run(
        "conveyor.server:create_app_from_env",
        factory=True,
        host=bind_host,
        port=bind_port,
        workers=workers,
        access_log=False,
        server_header=False,
        # Idle and slow connections are closed: headers within 10 s, keep-alive 5 s.
        http=HeaderTimeoutProtocol,
        timeout_keep_alive=KEEP_ALIVE_TIMEOUT_S,
        # Forwarded headers are believed only when the settings say so (the back-office
        # reads them itself then); uvicorn would otherwise trust them from 127.0.0.1.
        proxy_headers=False,
        log_config=_log_config(settings.log_level),
        log_level=settings.log_level,
    )


def migrate() -> None:
    """Bring the database schema up to date."""
    settings = load_settings()
    result, _ = run(_prepare(settings))
    _report_migration(settings, result)


async def _prepare(settings: Settings) -> tuple[MigrationResult, int]:
    platform = Platform(settings)
    try:
        result = await platform.migrate()
        return result, await platform.keys.count_active()
    finally:
        await platform.db.close()


def _report_migration(settings: Settings, result: MigrationResult) -> None:
    where = make_url(settings.database_url).render_as_string(hide_password=True)
    if result.changed:
        out.print(f"Database {where}: migrated {result.before or 'empty'} → {result.after}.")
    else:
        out.print(f"Database {where}: schema up to date ({result.after}).")


def _log_config(level: str) -> dict[str, Any]:
    logs.lean()
    config = copy.deepcopy(uvicorn.config.LOGGING_CONFIG)
    config["formatters"]["conveyor"] = {"()": "conveyor.logs.ServerFormatter"}
    config["handlers"]["conveyor"] = {
        "formatter": "conveyor",
        "class": "logging.StreamHandler",
        "stream": "ext://sys.stderr",
    }
    config["loggers"]["conveyor"] = {
        "handlers": ["conveyor"],
        "level": level.upper(),
        "propagate": False,
    }
    return config
