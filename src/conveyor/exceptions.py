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
│   ├── RecordNotFound
│   └── PageNotFound
├── ValidationError(ConveyorError, ValueError)       422, .details lists every problem
├── Conflict(ConveyorError)                          409
│   └── UniqueViolation                              .details names the field
├── BackendError(ConveyorError)                      503, the driver error kept in __cause__
│   ├── ConnectionFailed
│   └── PublishFailed
├── MailFailed(ConveyorError)                       `context.mail` could not send
└── HandlerSignal(ConveyorError)                     raised by handlers to steer the worker
    ├── Retry(delay_s)                               try again later (counts as an attempt)
    └── Reject(reason)                               dead-letter now, no more attempts
```

Each class's docstring is its default message; its `code` and `status` are what it
means over HTTP (a subclass inherits both unless it says otherwise), applied by the one
error boundary of the API and the back-office (`conveyor.problems`).
"""

from __future__ import annotations

from typing import Any

#: The longest delay a handler may ask for with `Retry(delay_s=…)`: 12 hours.
MAX_RETRY_DELAY_S = 12 * 3600.0


class ConveyorError(Exception):
    """Conveyor failed."""

    #: The error's name in API answers (`{"error": {"code": …}}`).
    code = "error"
    #: The HTTP status that answers it.
    status = 500

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
    status = 400


class InvalidJson(BadRequest):
    """The request body is not valid JSON."""

    code = "invalid_json"


class PayloadTooLarge(BadRequest):
    """The request body is too large."""

    code = "payload_too_large"
    status = 413


class UnsupportedMediaType(BadRequest):
    """The request body must be JSON (Content-Type: application/json)."""

    code = "unsupported_media_type"
    status = 415


class Unauthenticated(ConveyorError):
    """A valid API key is required: send `Authorization: Bearer <key>`."""

    code = "unauthenticated"
    status = 401


class Forbidden(ConveyorError):
    """This API key is not allowed to do that."""

    code = "forbidden"
    status = 403


class NotFound(ConveyorError, LookupError):
    """Not found."""

    code = "not_found"
    status = 404


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


class PageNotFound(NotFound):
    """Page not found."""

    code = "page_not_found"


class ValidationError(ConveyorError, ValueError):
    """The input is invalid."""

    code = "validation_failed"
    status = 422


class Conflict(ConveyorError):
    """The request conflicts with the current state."""

    code = "conflict"
    status = 409


class UniqueViolation(Conflict):
    """A record with this value already exists."""

    code = "unique_violation"


class BackendError(ConveyorError):
    """The queue backend is unavailable."""

    code = "backend_unavailable"
    status = 503


class ConnectionFailed(BackendError):
    """Could not connect to the queue backend."""

    code = "backend_unavailable"


class PublishFailed(BackendError):
    """The queue backend did not accept the message."""

    code = "publish_failed"


class MailFailed(ConveyorError):
    """The mail could not be sent."""

    code = "mail_failed"


class HandlerSignal(ConveyorError):
    """A handler asked the worker to settle its message in a particular way.

    Signals steer the worker; they are logged at info level, never as errors.
    """

    code = "handler_signal"


class Retry(HandlerSignal):
    """The handler asked for its message to be tried again later.

    `delay_s` sets the wait; None uses the queue's backoff. A retry counts as an
    attempt: after the queue's `max_attempts` the message is dead-lettered.
    """

    code = "retry"

    def __init__(self, message: str | None = None, *, delay_s: float | None = None) -> None:
        if delay_s is not None and not 0 <= delay_s <= MAX_RETRY_DELAY_S:
            raise ValueError(f"delay_s must be between 0 and {MAX_RETRY_DELAY_S:g} seconds")
        super().__init__(message or "the handler asked for a retry")
        self.delay_s = delay_s


class Reject(HandlerSignal):
    """The handler rejected its message: dead-lettered now, without further attempts."""

    code = "reject"

    def __init__(self, reason: str | None = None) -> None:
        super().__init__(reason or "rejected by the handler")

    @property
    def reason(self) -> str:
        return self.message


def field_error(field: str, message: str) -> ValidationError:
    """A validation error about one named field, in the shape the API returns."""
    return ValidationError(f"{field}: {message}", details=[{"field": field, "message": message}])
