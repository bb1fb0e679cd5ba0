"""Wrong credentials and missing permissions, on an SQS server that checks them.

moto checks signatures and IAM policies only when told to, for the whole server: this
module starts a private moto_server for it, so the shared one stays open.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import httpx
import orjson
import pytest
from aiobotocore.session import get_session

from conveyor.platform import Platform
from conveyor.queues.base import OutgoingMessage
from conveyor.queues.model import Credentials
from conveyor.queues.sqs import SQSBackend
from tests.conftest import bearer
from tests.sqs_support import REGION, queue_url, raw_client, require_sqs, sqs_queue

pytestmark = pytest.mark.sqs
#: The registry's database plays no part here: SQLite alone keeps the suite short.
sqlite_only = pytest.mark.parametrize("database", ["sqlite"], indirect=True)
QUEUES = "/api/v1/zstorage/queues"
#: Everything a worker and a publisher need, but not CreateQueue.
POLICY = {
    "Version": "2012-10-17",
    "Statement": [
        {
            "Effect": "Allow",
            "Action": [
                "sqs:GetQueueAttributes",
                "sqs:GetQueueUrl",
                "sqs:SendMessage",
                "sqs:ReceiveMessage",
                "sqs:DeleteMessage",
                "sqs:ChangeMessageVisibility",
                # moto names the batch calls apart (AWS authorises them as the single ones).
                "sqs:SendMessageBatch",
                "sqs:DeleteMessageBatch",
                "sqs:ChangeMessageVisibilityBatch",
            ],
            "Resource": "*",
        }
    ],
}


@pytest.fixture(scope="module")
def guarded_endpoint() -> Iterator[str]:
    """A private moto_server, started with signature and policy checks still off."""
    require_sqs()
    binary = Path(sys.executable).with_name("moto_server")
    if not binary.exists():
        pytest.skip("moto_server is not installed next to this Python")
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    process = subprocess.Popen(
        [str(binary), "-H", "127.0.0.1", "-p", str(port)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        env={**os.environ, "INITIAL_NO_AUTH_ACTION_COUNT": "inf"},
    )
    endpoint = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                urllib.request.urlopen(f"{endpoint}/moto-api/", timeout=1).close()
                break
            except OSError:
                if time.monotonic() > deadline or process.poll() is not None:
                    pytest.fail("the private moto_server did not start")
                time.sleep(0.1)
        yield endpoint
    finally:
        process.terminate()
        process.wait(10)


@pytest.fixture
async def guarded(guarded_endpoint: str) -> AsyncIterator[tuple[str, Credentials]]:
    """A queue and the credentials of a user allowed to use it but not to create queues."""
    enforce_auth(guarded_endpoint, after="inf")
    name = f"guarded-{time.monotonic_ns()}"
    session = get_session()
    async with session.create_client(
        "iam",
        region_name=REGION,
        endpoint_url=guarded_endpoint,
        aws_access_key_id="bootstrap",
        aws_secret_access_key="bootstrap",
    ) as iam:
        user = f"worker-{time.monotonic_ns()}"
        await iam.create_user(UserName=user)
        await iam.put_user_policy(
            UserName=user, PolicyName="use-queues", PolicyDocument=orjson.dumps(POLICY).decode()
        )
        key = (await iam.create_access_key(UserName=user))["AccessKey"]
    async with raw_client(guarded_endpoint) as sqs:
        await sqs.create_queue(QueueName=name)
    # From now on every request must be signed by a known key and allowed by its policy.
    enforce_auth(guarded_endpoint, after="0")
    yield name, Credentials(key["AccessKeyId"], key["SecretAccessKey"])
    enforce_auth(guarded_endpoint, after="inf")


def enforce_auth(endpoint: str, *, after: str) -> None:
    """Check signatures and policies from the `after`-th request on ("inf": never)."""
    request = urllib.request.Request(
        f"{endpoint}/moto-api/reset-auth",
        after.encode(),
        headers={"Content-Type": "text/plain"},
        method="POST",
    )
    urllib.request.urlopen(request, timeout=5).close()


async def register(client: httpx.AsyncClient, admin: dict[str, str], **fields: Any) -> str:
    body = {"type": "sqs", "region": REGION, **fields}
    response = await client.post(QUEUES, json=body, headers=admin)
    assert response.status_code == 201, response.text
    queue_id: str = response.json()["id"]
    return queue_id


@sqlite_only
async def test_a_wrong_secret_key_is_reported_without_the_secret(
    client: httpx.AsyncClient,
    admin: dict[str, str],
    platform: Platform,
    guarded: tuple[str, Credentials],
    guarded_endpoint: str,
) -> None:
    name, credentials = guarded
    wrong_secret = "Wr0ng-Secret-Key-That-Must-Not-Leak"
    queue_id = await register(
        client,
        admin,
        name="wrong-secret",
        url=queue_url(name, guarded_endpoint),
        username=credentials.username,
        password=wrong_secret,
    )
    answer = (await client.post(f"{QUEUES}/{queue_id}/check", headers=admin)).json()
    assert answer["ok"] is False
    assert f"SQS refused the credentials of access key id {credentials.username}" in answer["error"]
    assert wrong_secret not in answer["error"]
    publisher = await bearer(platform, "publish")
    refused = await client.post(
        f"/api/v1/zstorage/queue/{queue_id}/publish", json={"n": 1}, headers=publisher
    )
    assert refused.status_code == 503
    assert wrong_secret not in refused.text

    unknown = await register(
        client,
        admin,
        name="unknown-key",
        url=queue_url(name, guarded_endpoint),
        username="AKIAUNKNOWNKEY000000",
        password=wrong_secret,
    )
    answer = (await client.post(f"{QUEUES}/{unknown}/check", headers=admin)).json()
    assert answer["ok"] is False and "refused the credentials" in answer["error"]


async def test_a_dead_letter_queue_that_may_not_be_created_is_a_clear_check_error(
    guarded: tuple[str, Credentials], guarded_endpoint: str
) -> None:
    name, credentials = guarded
    url = queue_url(name, guarded_endpoint)
    backend = SQSBackend(sqs_queue(name, url=url), credentials)
    await backend.open()
    try:
        result = await backend.check()
        assert result.ok is False and result.error is not None
        assert f"the dead-letter queue '{name}-dlq' does not exist and could not be created" in (
            result.error
        )
        assert credentials.password is not None and credentials.password not in result.error
        # Publishing does not need the dead-letter queue.
        sent = await backend.publish(OutgoingMessage(body=b'{"n": 1}'))
        (delivery,) = await backend.receive(1, wait_s=5)
        assert delivery.id == sent.message_id
        assert await backend.ack(delivery)
    finally:
        await backend.close()
    keeps_none = SQSBackend(sqs_queue(name, url=url, dead_letter=False), credentials)
    await keeps_none.open()
    try:
        assert (await keeps_none.check()).ok
    finally:
        await keeps_none.close()
