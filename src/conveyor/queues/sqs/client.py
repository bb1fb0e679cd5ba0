"""One aiobotocore SQS client per backend, with bounded timeouts on every call."""

from __future__ import annotations

import asyncio
from contextlib import AsyncExitStack
from typing import Any

from aiobotocore.config import AioConfig
from aiobotocore.session import get_session

from conveyor.exceptions import BackendError, ConnectionFailed
from conveyor.queues.model import Credentials
from conveyor.queues.sqs.address import Address
from conveyor.queues.sqs.errors import Scrubber, translate

CONNECT_TIMEOUT_S = 3.0
#: The longest long poll SQS allows.
LONG_POLL_MAX_S = 20
#: A read may wait out a whole long poll before the first byte comes back.
READ_TIMEOUT_S = LONG_POLL_MAX_S + 5.0
#: Any call, retries included, ends by then: a broker that hangs gives an error, not a hang.
CALL_TIMEOUT_S = 10.0
#: Attempts per call (botocore's standard mode retries throttling, 5xx and lost connections).
MAX_ATTEMPTS = 3
MAX_CONNECTIONS = 50


class SQSClient:
    """Calls SQS for one queue's backend; every failure comes out as a `BackendError`."""

    def __init__(self, address: Address, region: str, credentials: Credentials) -> None:
        self.address = address
        self.region = region
        self.access_key = credentials.username
        self._secret = credentials.password
        self.scrub = Scrubber(credentials.password)
        self._client: Any = None
        self._stack: AsyncExitStack | None = None

    async def open(self) -> None:
        if (self.access_key is None) != (self._secret is None):
            raise ConnectionFailed(
                "an SQS queue needs both a username (access key id) and a password (secret "
                "key), or neither to use the process's own AWS credentials"
            )
        config = AioConfig(
            connect_timeout=CONNECT_TIMEOUT_S,
            read_timeout=READ_TIMEOUT_S,
            retries={"mode": "standard", "total_max_attempts": MAX_ATTEMPTS},
            max_pool_connections=MAX_CONNECTIONS,
        )
        stack = AsyncExitStack()
        with self._translating("create an SQS client"):
            self._client = await stack.enter_async_context(
                get_session().create_client(
                    "sqs",
                    region_name=self.region,
                    endpoint_url=self.address.endpoint_url,
                    aws_access_key_id=self.access_key,
                    aws_secret_access_key=self._secret,
                    config=config,
                )
            )
        self._stack = stack

    async def close(self) -> None:
        stack, self._stack, self._client = self._stack, None, None
        if stack is not None:
            await stack.aclose()

    async def call(
        self,
        operation: str,
        what: str,
        *,
        timeout_s: float = CALL_TIMEOUT_S,
        publishing: bool = False,
        **params: Any,
    ) -> dict[str, Any]:
        """`client.<operation>(**params)`; `what` names it in error messages."""
        if self._client is None:
            raise BackendError(f"could not {what}: the SQS backend is closed")
        with self._translating(what, publishing=publishing):
            async with asyncio.timeout(timeout_s):
                result: dict[str, Any] = await getattr(self._client, operation)(**params)
                return result

    def _translating(self, what: str, *, publishing: bool = False) -> Any:
        return translate(
            what,
            endpoint=self.address.endpoint_url,
            access_key=self.access_key,
            scrub=self.scrub,
            publishing=publishing,
        )
