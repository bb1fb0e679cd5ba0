"""`conveyor serve` and `conveyor migrate`."""

from __future__ import annotations

import copy
from typing import TYPE_CHECKING, Annotated, Any

import typer

from conveyor.cli.common import fail, load_settings, out, run

if TYPE_CHECKING:
    from conveyor.config import Settings
    from conveyor.db.migrate import MigrationResult


def register(app: typer.Typer) -> None:
    app.command()(serve)
    app.command()(migrate)


def serve(
    host: Annotated[
        str | None,
        typer.Option(help="Interface to bind: 127.0.0.1 unless CONVEYOR_HOST says (0.0.0.0: all)."),
    ] = None,
    port: Annotated[
        int | None, typer.Option(help="Port to bind: 8000 unless CONVEYOR_PORT says.")
    ] = None,
    workers: Annotated[int, typer.Option(min=1, metavar="N", help="Server processes.")] = 1,
) -> None:
    """Run the API (and back-office), migrating the database first."""
    import uvicorn

    from conveyor.api.server import KEEP_ALIVE_TIMEOUT_S, HeaderTimeoutProtocol

    settings = load_settings()
    bind_host, bind_port = host or settings.host, port if port is not None else settings.port
    _check_free(bind_host, bind_port)
    result, active_keys = run(_prepare(settings))
    _report_migration(settings, result)
    if active_keys == 0:
        out.print(
            "No API keys yet. Create the first one with:\n"
            "  conveyor keys create --name admin --scope admin",
            style="yellow",
        )
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


def _check_free(host: str, port: int) -> None:
    """Fail with a clear message, before any work, when the address is taken; the
    "listening" line comes from the server once it holds the socket."""
    import socket

    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE)
    except OSError as exc:
        raise fail(f"cannot listen on {host}:{port}: {exc}") from None
    family, kind, proto, _, address = infos[0]
    with socket.socket(family, kind, proto) as probe:
        # As the server binds: a port in TIME_WAIT after a restart is free.
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind(address)
        except OSError as exc:
            reason = exc.strerror or str(exc)
            raise fail(
                f"cannot listen on {host}:{port}: {reason.lower()}; is Conveyor running "
                "already? Choose another port with --port N (or CONVEYOR_PORT=N)"
            ) from None


def migrate() -> None:
    """Bring the database schema up to date."""
    settings = load_settings()
    result, _ = run(_prepare(settings))
    _report_migration(settings, result)


async def _prepare(settings: Settings) -> tuple[MigrationResult, int]:
    from conveyor.platform import Platform

    platform = Platform(settings)
    try:
        result = await platform.migrate()
        return result, await platform.keys.count_active()
    finally:
        await platform.db.close()


def _report_migration(settings: Settings, result: MigrationResult) -> None:
    from sqlalchemy import make_url

    where = make_url(settings.database_url).render_as_string(hide_password=True)
    if result.changed:
        out.print(f"Database {where}: migrated {result.before or 'empty'} → {result.after}.")
    else:
        out.print(f"Database {where}: schema up to date ({result.after}).")


def _log_config(level: str) -> dict[str, Any]:
    import uvicorn

    from conveyor import logs

    logs.lean()
    config = copy.deepcopy(uvicorn.config.LOGGING_CONFIG)
    config["formatters"]["conveyor"] = {"()": "conveyor.logs.ServerFormatter"}
    config["handlers"]["conveyor"] = {
        "formatter": "conveyor",
        "class": "logging.StreamHandler",
        "stream": "ext://sys.stderr",
    }
    config["filters"] = {"listening": {"()": "conveyor.logs.ListeningLine"}}
    config["handlers"]["default"]["filters"] = ["listening"]
    config["loggers"]["conveyor"] = {
        "handlers": ["conveyor"],
        "level": level.upper(),
        "propagate": False,
    }
    return config
