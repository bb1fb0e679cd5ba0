"""The SQS adapter's pure parts: addresses, message encoding, batching, error translation."""

from __future__ import annotations

import base64

import pytest
from botocore.exceptions import ClientError, EndpointConnectionError, ReadTimeoutError

from conveyor.exceptions import (
    BackendError,
    BadRequest,
    ConfigurationError,
    ConnectionFailed,
    PublishFailed,
    ValidationError,
)
from conveyor.queues import base
from conveyor.queues.base import OutgoingMessage
from conveyor.queues.model import QueueType, check_url
from conveyor.queues.sqs import codec
from conveyor.queues.sqs.address import Address, name_from_arn
from conveyor.queues.sqs.errors import LeaseLost, QueueMissing, Scrubber, translate
from conveyor.queues.sqs.sending import chunks


def test_an_aws_queue_url_gives_its_endpoint_account_and_name() -> None:
    address = Address.parse("https://sqs.eu-west-1.amazonaws.com/123456789012/orders")
    assert address.endpoint_url == "https://sqs.eu-west-1.amazonaws.com"
    assert (address.account, address.name, address.fifo) == ("123456789012", "orders", False)
    assert address.dlq_name == "orders-dlq"


def test_a_compatible_endpoint_and_a_fifo_queue() -> None:
    address = Address.parse("http://127.0.0.1:4566/000000000000/payments.fifo/")
    assert address.endpoint_url == "http://127.0.0.1:4566"
    assert address.url == "http://127.0.0.1:4566/000000000000/payments.fifo"
    assert address.fifo and address.dlq_name == "payments-dlq.fifo"


@pytest.mark.parametrize(
    "url",
    ["ftp://h/1/q", "https://h/q", "https://h/1/q/extra", "https://h/1/bad.name", "https://h/1/"],
)
def test_bad_queue_urls_are_refused(url: str) -> None:
    with pytest.raises(ConfigurationError):
        Address.parse(url)


def test_an_arn_names_a_queue() -> None:
    assert name_from_arn("arn:aws:sqs:us-east-1:123:dead") == ("123", "dead")
    with pytest.raises(ConfigurationError):
        name_from_arn("arn:aws:sns:us-east-1:123:topic")


def test_a_json_body_travels_as_text_with_its_id_and_time() -> None:
    message = OutgoingMessage(body=b'{"a": "\\u0000 h\xc3\xa9"}', headers={"trace": "t1"})
    entry = codec.encode(message, fifo=False)
    assert entry.body == '{"a": "\\u0000 hé"}'
    assert entry.attributes[base.HEADER_MESSAGE_ID]["StringValue"] == message.id
    published = entry.attributes[base.HEADER_PUBLISHED_AT]
    assert published == {"DataType": "Number", "StringValue": str(message.published_at_ms)}
    assert entry.attributes["trace"]["StringValue"] == "t1"
    assert codec.ATTR_ENCODING not in entry.attributes
    assert "MessageGroupId" not in entry.params()


@pytest.mark.parametrize("body", [b"\x00", "\ufffe".encode(), b"\xff", b"a\x01b"])
def test_bodies_outside_sqs_text_are_base64_and_decode_back(body: bytes) -> None:
    entry = codec.encode(OutgoingMessage(body=body), fifo=False)
    assert entry.body == base64.b64encode(body).decode()
    raw = {"Body": entry.body, "MessageAttributes": entry.attributes}
    assert codec.decode_body(raw) == body


def test_an_empty_body_is_refused() -> None:
    with pytest.raises(BadRequest):
        codec.encode_body(b"")


def test_fifo_entries_get_a_group_and_a_deduplication_id() -> None:
    keyed = OutgoingMessage(body=b"{}", ordering_key="customer-1")
    assert codec.encode(keyed, fifo=True).params()["MessageGroupId"] == "customer-1"
    assert codec.encode(keyed, fifo=True).params()["MessageDeduplicationId"] == keyed.id
    plain = codec.encode(OutgoingMessage(body=b"{}"), fifo=True)
    assert plain.group_id == codec.DEFAULT_GROUP
    long_key = OutgoingMessage(body=b"{}", ordering_key="k é" * 100)
    group = codec.encode(long_key, fifo=True).group_id
    assert group is not None and len(group) == 64  # a digest: SQS takes 128 ASCII chars


def test_too_many_or_odd_headers_are_packed_into_one_attribute() -> None:
    headers = {f"h{n}": str(n) for n in range(11)} | {"AWS.reserved": "x", "nul": "\x00"}
    entry = codec.encode(OutgoingMessage(body=b"{}", headers=headers), fifo=False)
    assert len(entry.attributes) <= codec.MAX_ATTRIBUTES
    raw = {"MessageAttributes": entry.attributes}
    assert codec.headers(raw) == headers


def test_the_size_counts_body_and_attributes() -> None:
    entry = codec.Entry("id", "é", {"ab": {"DataType": "String", "StringValue": "xyz"}})
    assert entry.size == 2 + 2 + len("String") + 3


def test_batches_are_cut_by_count_and_by_size() -> None:
    small = [codec.Entry(str(n), "x" * 10, {}) for n in range(25)]
    assert [len(c) for c in chunks(small, 1_000_000)] == [10, 10, 5]
    assert [len(c) for c in chunks(small, 35)] == [3] * 8 + [1]


def test_bookkeeping_attributes_fold_headers_when_ten_are_not_enough() -> None:
    attributes = {f"h{n}": {"DataType": "String", "StringValue": str(n)} for n in range(10)}
    extra = {codec.ATTR_ERROR: {"DataType": "String", "StringValue": "boom"}}
    merged = codec.with_bookkeeping(attributes, extra)
    assert len(merged) <= codec.MAX_ATTRIBUTES
    assert merged[codec.ATTR_ERROR]["StringValue"] == "boom"
    assert codec.headers({"MessageAttributes": merged}) == {f"h{n}": str(n) for n in range(10)}


def client_error(code: str, message: str = "m", status: int = 400) -> ClientError:
    response = {"Error": {"Code": code, "Message": message}}
    response["ResponseMetadata"] = {"HTTPStatusCode": status}  # type: ignore[dict-item]
    return ClientError(response, "SendMessage")  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("error", "expected", "text"),
    [
        (client_error("AWS.SimpleQueueService.NonExistentQueue"), QueueMissing, "not exist"),
        (client_error("InvalidClientTokenId"), ConnectionFailed, "refused the credentials"),
        (client_error("SignatureDoesNotMatch"), ConnectionFailed, "refused the credentials"),
        (client_error("AccessDenied"), ConnectionFailed, "not allowed"),
        (client_error("ReceiptHandleIsInvalid"), LeaseLost, "lease"),
        (client_error("InternalError"), PublishFailed, "InternalError"),
        (EndpointConnectionError(endpoint_url="http://h:1/"), ConnectionFailed, "cannot reach"),
        (ReadTimeoutError(endpoint_url="http://h:1/"), ConnectionFailed, "did not answer"),
        (TimeoutError(), ConnectionFailed, "did not answer in time"),
    ],
)
def test_driver_errors_become_backend_errors(
    error: Exception, expected: type[BackendError], text: str
) -> None:
    with (
        pytest.raises(expected, match=text) as caught,
        translate(
            "send",
            endpoint="http://h:1",
            access_key="AK",
            scrub=Scrubber("s3cret"),
            publishing=True,
        ),
    ):
        raise error
    assert caught.value.__cause__ is error


def test_a_403_in_xml_is_read_and_the_secret_is_scrubbed() -> None:
    xml = (
        '<?xml version="1.0"?><ErrorResponse><Error><Code>SignatureDoesNotMatch</Code>'
        "<Message>bad signature for s3cret</Message></Error></ErrorResponse>"
    )
    with (
        pytest.raises(ConnectionFailed) as caught,
        translate("open", endpoint="http://h:1", access_key="AK", scrub=Scrubber("s3cret")),
    ):
        raise client_error("403", xml, 403)
    assert "SignatureDoesNotMatch" in caught.value.message
    assert "s3cret" not in caught.value.message and "AK" in caught.value.message


@pytest.mark.parametrize("name", ["bad.name", "x" * 81, "a.fifo.fifo", "semi;colon"])
def test_the_registry_refuses_sqs_urls_whose_queue_name_sqs_would_refuse(name: str) -> None:
    with pytest.raises(ValidationError, match="SQS queue name"):
        check_url(QueueType.SQS, f"https://sqs.us-east-1.amazonaws.com/123/{name}")
    assert check_url(QueueType.SQS, "http://127.0.0.1:1/123/ok-name_1.fifo")
