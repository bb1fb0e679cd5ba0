"""Logging for Conveyor's long-running processes (server, worker, relay).

Servers log a line per request, so a log record must be cheap. The logging module spends
most of a record's cost on facts these lines never show: the caller's file and line (a
walk up the stack), the thread's and the process's names. `lean()` turns those off, as
the logging HOWTO's "Optimization" section describes; the formats below use none of them.
"""

from __future__ import annotations

import logging


class ServerFormatter(logging.Formatter):
    """uvicorn's look ("INFO:     …"), without its colours or `click` per record."""

    def __init__(self) -> None:
        super().__init__("%(levelname)s:%(padding)s%(message)s")

    def formatMessage(self, record: logging.LogRecord) -> str:
        record.padding = " " * max(1, 9 - len(record.levelname))
        return super().formatMessage(record)


class ListeningLine(logging.Filter):
    """uvicorn's "running on" line, logged once the socket is bound, in Conveyor's words."""

    def filter(self, record: logging.LogRecord) -> bool:
        if isinstance(record.msg, str) and record.msg.startswith("Uvicorn running on "):
            address = record.msg.removeprefix("Uvicorn running on ").partition(" (")[0]
            record.msg = (
                f"Conveyor listening on {address}  (API docs: /docs, back-office: /admin; "
                "Ctrl-C to stop)"
            )
            record.__dict__.pop("color_message", None)
        return True


def lean() -> None:
    """Skip what no Conveyor log line shows: the calling frame, thread and process."""
    logging._srcfile = None  # the logging HOWTO's documented switch
    logging.logThreads = False
    logging.logProcesses = False
    logging.logMultiprocessing = False
