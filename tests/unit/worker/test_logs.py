from __future__ import annotations

import logging

import pytest

from conveyor.worker.logs import StructuredLog, render


def test_fields_render_as_key_value_pairs_quoted_when_needed() -> None:
    line = render("sent", {"to": "a@x.test", "n": 3, "note": 'say "hi"\nnow', "none": None})
    assert line == 'sent to=a@x.test n=3 note="say \\"hi\\"\\nnow" none=None'
    assert render("plain", {}) == "plain"
    assert render("empty", {"v": ""}) == 'empty v=""'


def test_bound_fields_follow_every_line(caplog: pytest.LogCaptureFixture) -> None:
    log = StructuredLog(logging.getLogger("conveyor.test")).bind(message_id="m1", attempt=2)
    with caplog.at_level(logging.INFO, logger="conveyor.test"):
        log.info("charged", amount=12)
        log.debug("hidden")
    (record,) = caplog.records
    assert record.getMessage() == "charged amount=12 message_id=m1 attempt=2"
    assert record.fields == {"amount": 12, "message_id": "m1", "attempt": 2}  # type: ignore[attr-defined]
    assert record.funcName == "test_bound_fields_follow_every_line"
