"""Driver errors translated at the adapter boundary, in one place.

Every call to SQS goes through `translate`: botocore's and asyncio's exceptions come
out as `ConnectionFailed`, `PublishFailed` or `BackendError` (the cause kept in
`__cause__`), with a message that says what to do and never holds the secret key.
"""

from __future__ import annotations

import asyncio
import re
from collections.abc import Iterator
from contextlib import contextmanager

from botocore.exceptions import (
    BotoCoreError,
    ClientError,
    HTTPClientError,
    NoCredentialsError,
    PartialCredentialsError,
    ReadTimeoutError,
)
from botocore.exceptions import ConnectionError as BotoConnectionError

from conveyor.exceptions import BackendError, ConnectionFailed, PublishFailed

MISSING_QUEUE_CODES = frozenset(
    {"AWS.SimpleQueueService.NonExistentQueue", "QueueDoesNotExist", "NonExistentQueue"}
)
AUTH_CODES = frozenset(
    {
        "InvalidClientTokenId",
        "SignatureDoesNotMatch",
        "UnrecognizedClientException",
        "InvalidAccessKeyId",
        "InvalidSecurity",
        "ExpiredToken",
        "AuthFailure",
        "IncompleteSignature",
        "MissingAuthenticationToken",
    }
)
DENIED_CODES = frozenset({"AccessDenied", "AccessDeniedException", "KMS.AccessDeniedException"})
#: A settle with a receipt handle that no longer holds the message: the lease was lost.
LEASE_LOST_CODES = frozenset(
    {"ReceiptHandleIsInvalid", "MessageNotInflight", "AWS.SimpleQueueService.MessageNotInflight"}
)


_XML_CODE = re.compile(r"<Code>([^<]{1,200})</Code>")
_XML_MESSAGE = re.compile(r"<Message>([^<]{0,2000})</Message>")


class QueueMissing(BackendError):
    """The SQS queue does not exist."""


class LeaseLost(BackendError):
    """The receipt handle no longer holds the message: somebody else owns it now."""


def lease_lost(exc: BaseException) -> bool:
    if not isinstance(exc, ClientError):
        return False
    code, message = _code_and_detail(exc)
    if code in LEASE_LOST_CODES:
        return True
    # Real SQS says an expired receipt handle is an invalid parameter.
    return code == "InvalidParameterValue" and "receipt handle" in message.lower()


def _code_and_detail(exc: ClientError) -> tuple[str, str]:
    """The error code and message, also when the server answered in XML to a JSON client."""
    error = exc.response.get("Error", {})
    code, detail = str(error.get("Code") or "error"), str(error.get("Message") or "")
    if detail.lstrip().startswith("<"):
        xml_code, xml_message = _XML_CODE.search(detail), _XML_MESSAGE.search(detail)
        code = xml_code.group(1) if xml_code else code
        detail = xml_message.group(1) if xml_message else ""
    return code, detail or code


class Scrubber:
    """Removes the secret key from any text that leaves the adapter."""

    def __init__(self, secret: str | None) -> None:
        self._secret = secret or None

    def __call__(self, text: str) -> str:
        if self._secret and self._secret in text:
            text = text.replace(self._secret, "***")
        return text


@contextmanager
def translate(
    what: str, *, endpoint: str, access_key: str | None, scrub: Scrubber, publishing: bool = False
) -> Iterator[None]:
    """Run an SQS call `what` (e.g. "send to SQS queue 'orders'"), translating failures."""
    try:
        yield
    except ClientError as exc:
        code, detail = _code_and_detail(exc)
        detail = scrub(detail)
        if lease_lost(exc):
            raise LeaseLost(f"could not {what}: the lease on the message was lost") from exc
        if code in MISSING_QUEUE_CODES:
            raise QueueMissing(f"could not {what}: the queue does not exist") from exc
        if code in AUTH_CODES or (code.isdigit() and int(code) in (401, 403)):
            raise ConnectionFailed(
                f"could not {what}: SQS refused the credentials of access key id "
                f"{access_key or '(from the environment)'} ({code}: {detail})"
            ) from exc
        if code in DENIED_CODES:
            raise ConnectionFailed(
                f"could not {what}: access key id {access_key or '(from the environment)'} "
                f"is not allowed to do that ({code}: {detail})"
            ) from exc
        failure = PublishFailed if publishing else BackendError
        raise failure(f"could not {what}: {code}: {detail}") from exc
    except (NoCredentialsError, PartialCredentialsError) as exc:
        raise ConnectionFailed(
            f"could not {what}: no AWS credentials; set the queue's username (access key id) "
            "and password (secret key), or give the process AWS credentials"
        ) from exc
    except ReadTimeoutError as exc:
        raise ConnectionFailed(f"could not {what}: SQS at {endpoint} did not answer") from exc
    except (BotoConnectionError, HTTPClientError) as exc:
        raise ConnectionFailed(f"could not {what}: cannot reach SQS at {endpoint}") from exc
    except TimeoutError as exc:
        raise ConnectionFailed(
            f"could not {what}: SQS at {endpoint} did not answer in time"
        ) from exc
    except BotoCoreError as exc:
        failure = PublishFailed if publishing else BackendError
        raise failure(f"could not {what}: {scrub(str(exc))}") from exc
    except (OSError, asyncio.IncompleteReadError) as exc:
        raise ConnectionFailed(f"could not {what}: SQS at {endpoint}: {scrub(str(exc))}") from exc
