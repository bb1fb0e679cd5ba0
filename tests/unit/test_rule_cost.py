"""The static cost bound of rules (issue 19 item 1): what runs inline, what is refused."""

from __future__ import annotations

import pytest

from conveyor.storage.rule_cost import estimate

LIST = "[" + ",".join(["1"] * 30) + "]"


@pytest.mark.parametrize(
    "expression",
    [
        "record.age >= 18",
        "!has(record.ends) || record.ends >= record.starts",
        "previous == null || record.seats >= previous.seats",
        "record.title.matches('^[A-Z]') && record.state in ['AC', 'AL', 'AP']",
        "record.tags.all(t, t.size() < 20)",
        "record.items.all(i, i.tags.exists(t, t == 'x'))",
        f"{LIST}.all(a, {LIST}.exists(b, a == b))",
        "{'a': 1}['a'] == 1 ? true : false",
    ],
)
def test_cheap_rules_run_inline(expression: str) -> None:
    cost = estimate(expression)
    assert cost.inline and not cost.limits_broken(), cost


@pytest.mark.parametrize(
    "expression",
    [
        "record.items.all(x, record.items.exists(y, x == y))",  # quadratic in the record
        "record.items.filter(x, x > 1).size() < 3",  # the library copies as it builds
    ],
)
def test_rules_whose_cost_grows_faster_than_the_record_run_in_the_sandbox(
    expression: str,
) -> None:
    cost = estimate(expression)
    assert not cost.inline and not cost.limits_broken(), cost


def test_growth_and_nesting_are_refused() -> None:
    nested = estimate(f"{LIST}.all(a, {LIST}.all(b, {LIST}.all(c, true)))")
    assert any("nest 3 deep" in p for p in nested.limits_broken())
    concat = estimate("record.a + record.a + record.a")
    assert concat.inline and not concat.limits_broken()
    many = " + ".join(["record.a"] * 70)
    assert any("grow faster" in p for p in estimate(many).limits_broken())
