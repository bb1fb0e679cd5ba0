"""Structured log lines: a message, then `key=value` fields that tools can parse.

`context.log.info("charged", amount=12)` logs
`charged amount=12 handler=bill message_id=… attempt=1 queue=orders`; the fields are
also set on the `LogRecord` (under `fields`) for JSON formatters.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Any

from conveyor.queues.headers import escape

_SAFE = frozenset("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-_.:/@+")


def render_value(value: object) -> str:
    """`value` as one token: bare when it is plain, else quoted with `\\`, `"` and every
    control character escaped (a value, say a foreign message id, cannot forge a line)."""
    text = value if isinstance(value, str) else repr(value) if value is None else str(value)
    if text and all(c in _SAFE for c in text):
        return text
    escaped = escape(text.replace("\\", "\\\\").replace('"', '\\"'))
    return f'"{escaped}"'


def render(message: str, fields: Mapping[str, object]) -> str:
    pairs = " ".join(f"{key}={render_value(value)}" for key, value in fields.items())
    return f"{message} {pairs}" if pairs else message


class StructuredLog:
    """A logger that appends `key=value` fields, including some bound once for all."""

    def __init__(self, logger: logging.Logger, bound: Mapping[str, object] | None = None) -> None:
        self.logger = logger
        self.bound: dict[str, object] = dict(bound or {})

    def bind(self, **fields: object) -> StructuredLog:
        """A logger that also carries these fields."""
        return StructuredLog(self.logger, {**self.bound, **fields})

    def log(self, level: int, message: str, *, exc_info: Any = None, **fields: object) -> None:
        if not self.logger.isEnabledFor(level):
            return
        merged = {**fields, **self.bound}
        self.logger.log(
            level,
            render(message, merged),
            exc_info=exc_info,
            extra={"fields": merged},
            stacklevel=3,
        )

    def debug(self, message: str, **fields: object) -> None:
        self.log(logging.DEBUG, message, **fields)

    def info(self, message: str, **fields: object) -> None:
        self.log(logging.INFO, message, **fields)

    def warning(self, message: str, **fields: object) -> None:
        self.log(logging.WARNING, message, **fields)

    def error(self, message: str, **fields: object) -> None:
        self.log(logging.ERROR, message, **fields)

    def exception(self, message: str, **fields: object) -> None:
        """An error with the current exception's traceback."""
        self.log(logging.ERROR, message, exc_info=True, **fields)
