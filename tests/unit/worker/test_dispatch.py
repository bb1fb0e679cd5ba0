from __future__ import annotations

import pytest

from conveyor import Context, HandlerRegistry, handler
from conveyor.worker.dispatch import Poison, decode, describe
from conveyor.worker.outcome import MAX_ERROR_CHARS, Action, Verdict


@handler("known")
def known(context: Context) -> None:
    pass


REGISTRY = HandlerRegistry([known])


@pytest.mark.parametrize(
    ("body", "reason"),
    [
        (b"\xff\xfe", "undecodable payload"),
        (b"{oops", "undecodable payload"),
        (b"", "undecodable payload"),
        (b'"text"', "a JSON str, not an object"),
        (b"[1]", "a JSON list, not an object"),
        (b"{}", 'no "handler" field'),
        (b'{"handler": ""}', 'no "handler" field'),
        (b'{"handler": ["known"]}', 'no "handler" field'),
        (b'{"handler": "other"}', "no handler named 'other' in this worker (it has: known)"),
    ],
)
def test_poison_is_recognised_with_a_reason(body: bytes, reason: str) -> None:
    with pytest.raises(Poison, match=None) as caught:
        decode(body, REGISTRY)
    assert reason in str(caught.value)


def test_a_good_message_decodes_to_its_handler_and_payload() -> None:
    spec, payload = decode(b'{"handler": "known", "n": 1}', REGISTRY)
    assert spec.function is known and payload == {"handler": "known", "n": 1}


def test_a_retry_past_the_last_attempt_becomes_a_dead_letter() -> None:
    retry = Verdict(Action.RETRY, 3.0, "boom", failed=True)
    assert retry.bounded(attempt=4, max_attempts=5) is retry
    dead = retry.bounded(attempt=5, max_attempts=5)
    assert dead.action is Action.DEAD and dead.failed
    assert dead.error == "gave up after 5 attempt(s); last error: boom"
    ack = Verdict(Action.ACK)
    assert ack.bounded(attempt=9, max_attempts=5) is ack


def test_errors_are_described_with_where_they_happened_and_clipped() -> None:
    def fail() -> None:
        raise ValueError("x" * (MAX_ERROR_CHARS * 2))

    with pytest.raises(ValueError, match="x") as caught:
        fail()
    text = describe(caught.value)
    assert text.startswith("ValueError: xxx") and len(text) == MAX_ERROR_CHARS
    with pytest.raises(KeyError) as missing:
        {}["k"]
    assert "in test_errors_are_described" in describe(missing.value)
