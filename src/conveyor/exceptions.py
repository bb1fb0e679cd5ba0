"""Every error Conveyor raises on purpose.

```
ConveyorError(Exception)
├── ConfigurationError(ConveyorError, ValueError)
├── BadRequest(ConveyorError, ValueError)           malformed input, 400
│   ├── InvalidJson
│   ├── PayloadTooLarge                              413
│   └── UnsupportedMediaType                         415
├── Unauthenticated(ConveyorError)                   401
├── Forbidden(ConveyorError)                         403
├── NotFound(ConveyorError, LookupError)             404
│   ├── QueueNotFound
│   ├── KeyNotFound
│   ├── TableNotFound
│   ├── FieldNotFound
│   ├── RuleNotFound
│   └── RecordNotFound
├── ValidationError(ConveyorError, ValueError)       422, .details lists every problem
├── Conflict(ConveyorError)                          409
│   └── UniqueViolation                              .details names the field
├── BackendError(ConveyorError)                      503, the driver error kept in __cause__
│   ├── ConnectionFailed
│   └── PublishFailed
└── HandlerSignal(ConveyorError)                     raised by handlers to steer the worker
```

Each class's docstring is its default message. `api/errors.py` maps classes to HTTP
statuses in one table; the CLI maps them to exit codes.
"""

from __future__ import annotations

from typing import Any


class ConveyorError(Exception):
    """Conveyor failed."""

    code = "error"

    def __init__(self, message: str | None = None, *, details: Any = None) -> None:
        super().__init__(message or (self.__doc__ or "").strip())
        self.details = details

    @property
    def message(self) -> str:
        return str(self.args[0])


class ConfigurationError(ConveyorError, ValueError):
    """The configuration is invalid."""

    code = "configuration_error"


class BadRequest(ConveyorError, ValueError):
    """The request is malformed."""

    code = "bad_request"


class InvalidJson(BadRequest):
    """The request body is not valid JSON."""

    code = "invalid_json"


class PayloadTooLarge(BadRequest):
    """The request body is too large."""

    code = "payload_too_large"


class UnsupportedMediaType(BadRequest):
    """The request body must be JSON (Content-Type: application/json)."""

    code = "unsupported_media_type"


class Unauthenticated(ConveyorError):
    """A valid API key is required: send `Authorization: Bearer <key>`."""

    code = "unauthenticated"


class Forbidden(ConveyorError):
    """This API key is not allowed to do that."""

    code = "forbidden"


class NotFound(ConveyorError, LookupError):
    """Not found."""

    code = "not_found"


class QueueNotFound(NotFound):
    """Queue not found."""

    code = "queue_not_found"


class KeyNotFound(NotFound):
    """API key not found."""

    code = "key_not_found"


class TableNotFound(NotFound):
    """Table not found."""

    code = "table_not_found"


class FieldNotFound(NotFound):
    """Field not found."""

    code = "field_not_found"


class RuleNotFound(NotFound):
    """Validation rule not found."""

    code = "rule_not_found"


class RecordNotFound(NotFound):
    """Record not found."""

    code = "record_not_found"


class ValidationError(ConveyorError, ValueError):
    """The input is invalid."""

    code = "validation_failed"


class Conflict(ConveyorError):
    """The request conflicts with the current state."""

    code = "conflict"


class UniqueViolation(Conflict):
    """A record with this value already exists."""

    code = "unique_violation"


class BackendError(ConveyorError):
    """The queue backend is unavailable."""

    code = "backend_unavailable"


class ConnectionFailed(BackendError):
    """Could not connect to the queue backend."""

    code = "backend_unavailable"


class PublishFailed(BackendError):
    """The queue backend did not accept the message."""

    code = "publish_failed"


class HandlerSignal(ConveyorError):
    """A handler asked the worker to settle its message in a particular way."""

    code = "handler_signal"


def field_error(field: str, message: str) -> ValidationError:
    """A validation error about one named field, in the shape the API returns."""
    return ValidationError(f"{field}: {message}", details=[{"field": field, "message": message}])
