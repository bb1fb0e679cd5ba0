"""librdkafka errors → Conveyor's, in one place. No driver exception leaves the adapter."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from confluent_kafka import KafkaError, KafkaException

from conveyor.exceptions import BackendError, ConnectionFailed, ConveyorError

#: Errors that mean "the cluster cannot be reached or refused us", whatever we were doing.
_CONNECTION_CODES = frozenset(
    {
        KafkaError._TRANSPORT,
        KafkaError._ALL_BROKERS_DOWN,
        KafkaError._RESOLVE,
        KafkaError._TIMED_OUT,
        KafkaError._AUTHENTICATION,
        KafkaError._SSL,
        KafkaError.SASL_AUTHENTICATION_FAILED,
        KafkaError.ILLEGAL_SASL_STATE,
        KafkaError.UNSUPPORTED_SASL_MECHANISM,
        KafkaError.NETWORK_EXCEPTION,
    }
)

_HINTS = {
    KafkaError._TRANSPORT: "the broker cannot be reached (is the host:port right, is it up?)",
    KafkaError._ALL_BROKERS_DOWN: "no broker of the cluster can be reached",
    KafkaError._RESOLVE: "a bootstrap host name does not resolve",
    KafkaError._TIMED_OUT: "the cluster did not answer in time",
    KafkaError._MSG_TIMED_OUT: "the broker did not confirm the message in time",
    KafkaError._AUTHENTICATION: "authentication failed (check the username and password)",
    KafkaError.SASL_AUTHENTICATION_FAILED: "authentication failed (check username and password)",
    KafkaError.TOPIC_AUTHORIZATION_FAILED: "this user may not use the topic",
    KafkaError.GROUP_AUTHORIZATION_FAILED: "this user may not use the consumer group",
    KafkaError.CLUSTER_AUTHORIZATION_FAILED: "this user may not manage the cluster",
    KafkaError.UNKNOWN_TOPIC_OR_PART: "the topic does not exist",
    KafkaError.MSG_SIZE_TOO_LARGE: "the message is larger than the broker accepts",
}


def kafka_error(exc: BaseException) -> KafkaError | None:
    if isinstance(exc, KafkaException) and exc.args and isinstance(exc.args[0], KafkaError):
        return exc.args[0]
    return None


def describe(error: KafkaError | BaseException, *, secret: str | None = None) -> str:
    """A readable reason: our hint first, then the broker's words, minus any secret."""
    if isinstance(error, BaseException):
        error = kafka_error(error) or error
    if isinstance(error, KafkaError):
        text = error.str() or error.name()
        hint = _HINTS.get(error.code())
        text = f"{hint} ({text})" if hint else text
    else:
        text = str(error) or type(error).__name__
    return redact(text, secret)


def redact(text: str, secret: str | None) -> str:
    return text.replace(secret, "***") if secret else text


def translate(
    error: KafkaError | BaseException,
    doing: str,
    *,
    secret: str | None = None,
    default: type[BackendError] = BackendError,
) -> BackendError:
    if isinstance(error, BaseException):
        error = kafka_error(error) or error
    code = error.code() if isinstance(error, KafkaError) else None
    cls = ConnectionFailed if code in _CONNECTION_CODES else default
    return cls(f"{doing}: {describe(error, secret=secret)}")


@contextmanager
def map_errors(
    doing: str, *, secret: str | None = None, default: type[BackendError] = BackendError
) -> Iterator[None]:
    """Translate whatever librdkafka raises inside the block, keeping it as the cause."""
    try:
        yield
    except ConveyorError:
        raise
    except (KafkaException, BufferError, RuntimeError, ValueError, TypeError, OSError) as exc:
        raise translate(exc, doing, secret=secret, default=default) from exc
