"""Finding (or creating) an SQS queue and its dead-letter queue when a backend opens."""

from __future__ import annotations

import json
import math
from dataclasses import dataclass

from conveyor.exceptions import BackendError, ConfigurationError
from conveyor.queues.model import QueueOptions
from conveyor.queues.sqs.address import Address, name_from_arn
from conveyor.queues.sqs.client import SQSClient
from conveyor.queues.sqs.dead_letters import DeadLetterQueue
from conveyor.queues.sqs.errors import QueueMissing

#: What SQS allowed before it took larger messages; used when a server does not say.
DEFAULT_MAX_MESSAGE_BYTES = 262_144
#: Dead letters are kept as long as SQS allows: 14 days.
DLQ_RETENTION_S = 14 * 24 * 3600
MAX_NAME_LENGTH = 80


@dataclass(frozen=True)
class Setup:
    max_message_bytes: int
    dlq: DeadLetterQueue | None
    #: Why there is no dead-letter queue although the queue keeps dead letters.
    dlq_problem: str | None


class QueueSetup:
    def __init__(self, client: SQSClient, address: Address, options: QueueOptions) -> None:
        self._client = client
        self._address = address
        self._options = options

    async def run(self) -> Setup:
        attributes = await self._attributes()
        size = attributes.get("MaximumMessageSize")
        max_bytes = int(size) if size and size.isdigit() else DEFAULT_MAX_MESSAGE_BYTES
        try:
            dlq = await self._dead_letter_queue(attributes.get("RedrivePolicy"))
        except BackendError as exc:
            return Setup(max_bytes, None, exc.message)
        return Setup(max_bytes, dlq, None)

    async def _attributes(self) -> dict[str, str]:
        names = ["QueueArn", "RedrivePolicy", "MaximumMessageSize"]
        what = f"open SQS queue {self._address.name!r}"
        try:
            response = await self._client.call(
                "get_queue_attributes", what, QueueUrl=self._address.url, AttributeNames=names
            )
        except QueueMissing as exc:
            if not self._options.create_if_missing:
                raise QueueMissing(missing_message(self._address)) from exc
            await self._create(self._address.name, self._main_attributes())
            response = await self._client.call(
                "get_queue_attributes", what, QueueUrl=self._address.url, AttributeNames=names
            )
        attributes: dict[str, str] = response.get("Attributes", {})
        return attributes

    def _main_attributes(self) -> dict[str, str]:
        visibility = math.ceil(self._options.visibility_timeout_s)
        return {"VisibilityTimeout": str(visibility)}

    async def _dead_letter_queue(self, policy: str | None) -> DeadLetterQueue | None:
        target = redrive_target(policy)
        if target is not None:
            try:
                account, name = name_from_arn(target)
            except ConfigurationError as exc:
                raise BackendError(f"the queue's redrive policy is unusable: {exc}") from exc
            url = await self._url_of(name, account)
            return DeadLetterQueue(self._client, url, name, fifo=name.endswith(".fifo"))
        if not self._options.dead_letter:
            return None
        name = self._address.dlq_name
        if len(name) > MAX_NAME_LENGTH:
            raise BackendError(
                f"the dead-letter queue name {name!r} is over {MAX_NAME_LENGTH} characters: "
                "give the queue a redrive policy, or a shorter name"
            )
        try:
            url = await self._url_of(name, self._address.account)
        except QueueMissing:
            url = await self._create_dlq(name)
        return DeadLetterQueue(self._client, url, name, fifo=self._address.fifo)

    async def _create_dlq(self, name: str) -> str:
        attributes = {"MessageRetentionPeriod": str(DLQ_RETENTION_S)}
        try:
            return await self._create(name, attributes)
        except BackendError as exc:
            raise BackendError(
                f"the dead-letter queue {name!r} does not exist and could not be created "
                f"({exc.message}); create it, or give the queue a redrive policy"
            ) from exc

    async def _url_of(self, name: str, account: str) -> str:
        response = await self._client.call(
            "get_queue_url",
            f"find SQS queue {name!r}",
            QueueName=name,
            QueueOwnerAWSAccountId=account,
        )
        return str(response["QueueUrl"])

    async def _create(self, name: str, attributes: dict[str, str]) -> str:
        if name.endswith(".fifo"):
            attributes = {**attributes, "FifoQueue": "true"}
        response = await self._client.call(
            "create_queue", f"create SQS queue {name!r}", QueueName=name, Attributes=attributes
        )
        return str(response["QueueUrl"])


def missing_message(address: Address) -> str:
    return (
        f"SQS queue {address.name!r} does not exist at {address.endpoint_url} "
        f"(account {address.account}): create it, or set the queue option create_if_missing"
    )


def redrive_target(policy: str | None) -> str | None:
    """The dead-letter queue ARN in a RedrivePolicy attribute."""
    if not policy:
        return None
    try:
        target = json.loads(policy).get("deadLetterTargetArn")
    except (ValueError, AttributeError):
        return None
    return str(target) if target else None
