"""Issue 19 item 1 in the back-office: the designer's "check expression" button obeys the
same cost limits and deadline as a write, and never holds up other requests."""

from __future__ import annotations

import httpx

from conveyor.platform import Platform
from tests.storage.test_rule_cost import NESTED, PAIRS, health_while
from tests.web.helpers import signed_in_token


async def test_the_designers_check_button_is_bounded_too(
    platform: Platform, signed_in: httpx.AsyncClient
) -> None:
    await platform.storage.tables.create(
        {"name": "bags", "fields": [{"name": "items", "type": "json"}]}
    )
    token = await signed_in_token(signed_in)

    async def check(expression: str, sample: str) -> str:
        response = await signed_in.post(
            "/admin/tables/bags/rules/check",
            data={"csrf_token": token, "expression": expression, "sample": sample, "message": "m"},
            headers={"X-Partial": "1"},
        )
        assert response.status_code == 200
        return response.text

    assert "nest 4 deep; at most 2" in await check(NESTED, "{}")
    sample = '{"items": [' + ",".join(map(str, range(15_000))) + "]}"
    text, slowest, polls = await health_while(signed_in, check(PAIRS, sample))
    assert "it took longer than 1 s" in text
    assert polls >= 5 and slowest < 0.1, (polls, slowest)
