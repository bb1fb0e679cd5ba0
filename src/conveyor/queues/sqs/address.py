"""Where an SQS queue is: its URL taken apart, and the names of its helpers."""

from __future__ import annotations

from dataclasses import dataclass
from urllib.parse import urlsplit

from conveyor.exceptions import ConfigurationError
from conveyor.queues.model import SQS_NAME_RE, SQS_NAME_RULE

FIFO_SUFFIX = ".fifo"
DLQ_SUFFIX = "-dlq"


@dataclass(frozen=True)
class Address:
    """`https://sqs.<region>.amazonaws.com/<account>/<name>`, or any compatible endpoint."""

    url: str
    #: Scheme and host: what the client connects to.
    endpoint_url: str
    account: str
    name: str

    @classmethod
    def parse(cls, url: str | None) -> Address:
        parts = urlsplit(url or "")
        path = parts.path.strip("/").split("/")
        if parts.scheme not in ("http", "https") or not parts.hostname or len(path) != 2:
            raise ConfigurationError(
                "an SQS queue url looks like https://sqs.<region>.amazonaws.com/<account>/<name>"
            )
        account, name = path
        if not SQS_NAME_RE.match(name):
            raise ConfigurationError(f"{name!r} is not an SQS queue name: use {SQS_NAME_RULE}")
        host = parts.hostname if ":" not in parts.hostname else f"[{parts.hostname}]"
        netloc = f"{host}:{parts.port}" if parts.port else host
        endpoint = f"{parts.scheme}://{netloc}"
        return cls(
            url=f"{endpoint}/{account}/{name}", endpoint_url=endpoint, account=account, name=name
        )

    @property
    def fifo(self) -> bool:
        return self.name.endswith(FIFO_SUFFIX)

    @property
    def dlq_name(self) -> str:
        """`<name>-dlq`, or `<name>-dlq.fifo` (a FIFO queue's DLQ must be FIFO too)."""
        if self.fifo:
            return self.name.removesuffix(FIFO_SUFFIX) + DLQ_SUFFIX + FIFO_SUFFIX
        return self.name + DLQ_SUFFIX


def name_from_arn(arn: str) -> tuple[str, str]:
    """(account, queue name) of `arn:aws:sqs:<region>:<account>:<name>`."""
    parts = arn.split(":")
    if len(parts) != 6 or parts[0] != "arn" or parts[2] != "sqs":
        raise ConfigurationError(f"{arn!r} is not the ARN of an SQS queue")
    return parts[4], parts[5]
