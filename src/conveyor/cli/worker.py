"""`conveyor worker`: run handlers for messages of one or more queues."""

from __future__ import annotations

import logging
import os
import sys
from typing import TYPE_CHECKING, Annotated

import typer

from conveyor.cli.common import fail, load_settings, run, running_platform

if TYPE_CHECKING:
    from conveyor.config import Settings
    from conveyor.worker.handlers import HandlerRegistry
    from conveyor.worker.runner import Worker, WorkerOptions

LOG_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"


def register(app: typer.Typer) -> None:
    app.command()(worker)


def expand_handlers(args: list[str]) -> list[str]:
    """`worker --handlers a.py b.py` as `--handlers a.py --handlers b.py`: the option
    takes several values in one go, as the help shows (`worker` has no arguments that
    could be confused with them)."""
    if not args or args[0] != "worker":
        return args
    expanded: list[str] = []
    taking, first = False, False
    for arg in args:
        if taking and not arg.startswith("-"):
            expanded += [arg] if first else ["--handlers", arg]
            first = False
            continue
        taking = arg == "--handlers" or arg.startswith("--handlers=")
        first = arg == "--handlers"
        expanded.append(arg)
    return expanded


def worker(
    queue: Annotated[
        list[str], typer.Option("--queue", help="Queue name or id (repeat for several).")
    ],
    handlers: Annotated[
        list[str],
        typer.Option(
            "--handlers",
            metavar="MODULE_OR_FILE...",
            help="Modules (pkg.mod) or files (path/x.py) with @handler functions; "
            "several after one --handlers, or --handlers repeated.",
        ),
    ],
    concurrency: Annotated[
        int, typer.Option(min=1, max=10_000, metavar="N", help="Handlers running at once.")
    ] = 10,
    prefetch: Annotated[
        int | None,
        typer.Option(
            min=0, metavar="N", help="Messages held beyond the running ones (default: as many)."
        ),
    ] = None,
    shutdown_timeout_s: Annotated[
        float,
        typer.Option(
            "--shutdown-timeout-s", min=0, help="Grace period for running handlers on stop."
        ),
    ] = 30.0,
) -> None:
    """Run handlers for the messages of queues.

    Each message goes to the handler its "handler" field names.

    SIGTERM or Ctrl-C stops gracefully (running handlers finish, unstarted messages
    go back to the queue); a second one exits at once.
    """
    from conveyor.exceptions import ConfigurationError
    from conveyor.worker.handlers import load_handlers
    from conveyor.worker.runner import WorkerOptions

    settings = load_settings()
    _configure_logging(settings)
    try:
        registry = load_handlers(handlers)
    except ConfigurationError as exc:
        raise fail(exc.message, 2) from None
    options = WorkerOptions(
        concurrency=concurrency,
        prefetch=prefetch,
        shutdown_timeout_s=shutdown_timeout_s,
        heartbeat_s=settings.worker_heartbeat_s,
    )
    finished = run(_work(settings, queue, registry, options))
    if finished.abandoned_threads:
        # Handler threads that overran the grace period would keep the interpreter
        # alive; their messages come back when their leases expire.
        logging.shutdown()
        os._exit(0)


async def _work(
    settings: Settings, refs: list[str], registry: HandlerRegistry, options: WorkerOptions
) -> Worker:
    from conveyor.queues.model import QueueType
    from conveyor.queues.pool import broker_factory
    from conveyor.worker.runner import Worker
    from conveyor.worker.signals import graceful_stop

    # The outbox relay runs in `serve` or `relay`, not in workers.
    async with running_platform(settings, relay=False, upkeep=True) as platform:
        queues = [await platform.queues.find(ref) for ref in dict.fromkeys(refs)]
        for queue in queues:
            if queue.type is not QueueType.EMBEDDED:
                broker_factory(queue.type)  # a missing driver fails now, not in the loop
        worker = Worker(platform, queues, registry, options)
        with graceful_stop(worker.stop):
            await worker.run()
        return worker


def _configure_logging(settings: Settings) -> None:
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter(LOG_FORMAT))
    root = logging.getLogger()
    root.addHandler(handler)
    root.setLevel(logging.WARNING)
    logging.getLogger("conveyor").setLevel(settings.log_level.upper())
