"""The designer's "check expression": compile a rule and run it on a sample record, with
the storage rules module, exactly as a record write would (with the same cost limits and
deadline), and say what happened."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from typing import Any

import orjson

from conveyor.storage.fields import Field, FieldType
from conveyor.storage.model import SYSTEM_FIELDS, TableDef
from conveyor.storage.rules import Rule, compile_rule, evaluate
from conveyor.storage.values import Invalid, coerce

MAX_SAMPLE_CHARS = 100_000


@dataclass(frozen=True)
class RuleCheck:
    #: True: the sample passes; False: it breaks the rule; None: the rule did not compile.
    passed: bool | None
    #: What a write of the sample would report (the rule's message, or why it failed).
    message: str = ""
    #: Compile errors (with their line and column), or problems with the sample.
    problems: list[str] = field(default_factory=list)


async def check_rule(table: TableDef, expression: str, message: str, sample: str) -> RuleCheck:
    if not expression.strip():
        return RuleCheck(None, problems=["Type an expression, e.g. record.age >= 18."])
    rule = Rule("check", expression, message.strip() or "breaks the rule")
    compiled, found = compile_rule(rule, list(table.field_map))
    if compiled is not None:
        found = compiled.cost_problems()
    if compiled is None or found:
        return RuleCheck(None, problems=[str(p["message"]) for p in found])
    record, sample_problems = _sample_record(table, sample)
    if record is None:
        return RuleCheck(None, problems=sample_problems)
    broken = await evaluate([compiled], record, None)
    if broken:
        return RuleCheck(False, str(broken[0]["message"]), sample_problems)
    return RuleCheck(True, "", sample_problems)


def _sample_record(table: TableDef, sample: str) -> tuple[dict[str, Any] | None, list[str]]:
    """The sample as a rule sees a stored record, and what was wrong with its values."""
    if len(sample) > MAX_SAMPLE_CHARS:
        return None, [f"The sample record is over {MAX_SAMPLE_CHARS} characters."]
    try:
        data = orjson.loads(sample or "{}")
    except orjson.JSONDecodeError as exc:
        return None, [f"The sample record is not valid JSON: {exc}"]
    if not isinstance(data, dict):
        return None, ["The sample record must be a JSON object { … }."]
    record: dict[str, Any] = {f.name: None for f in table.fields}
    problems = []
    for name, raw in data.items():
        if name in SYSTEM_FIELDS:
            continue
        if name not in table.field_map:
            problems.append(f"sample: {str(name)[:100]}: unknown field, ignored")
            continue
        try:
            record[name] = coerce(table.field_map[name], raw)
        except Invalid as exc:
            problems.append(f"sample: {name}: {exc} (left out)")
    return record, problems


def sample_of(table: TableDef, latest: dict[str, Any] | None) -> str:
    """A sample to start from: the newest record, or a made-up one."""
    if latest is not None:
        values = {k: v for k, v in latest.items() if k not in SYSTEM_FIELDS}
    else:
        values = {f.name: _example(f) for f in table.fields}
    return orjson.dumps(values, option=orjson.OPT_INDENT_2).decode()


def _example(f: Field) -> Any:
    if f.default is not None:
        return f.default
    examples: dict[FieldType, Any] = {
        FieldType.TEXT: "example",
        FieldType.INTEGER: int(f.min) if f.min is not None else 1,
        FieldType.DECIMAL: str(f.min) if f.min is not None else "1.00",
        FieldType.BOOLEAN: True,
        FieldType.DATE: date.today().isoformat(),
        FieldType.DATETIME: datetime.now(UTC).replace(microsecond=0).isoformat(),
        FieldType.JSON: {},
        FieldType.EMAIL: "someone@example.com",
        FieldType.URL: "https://example.com/",
        FieldType.SELECT: (f.choices or ("",))[0],
        FieldType.REFERENCE: 1,
    }
    return examples[f.type]
