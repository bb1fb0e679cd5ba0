"""Validation rules: CEL expressions over `record` (and `previous` on update).

A rule is compiled when it is saved, so a syntax error or a field that does not exist
is reported then, with its position, and so is a rule that could cost too much to run
(`rule_cost.py`); after that it is only evaluated: inline when its cost is small
whatever the record, else in a sandbox process with a deadline (`sandbox.py`).
"""

from __future__ import annotations

import re
from collections.abc import Collection, Iterable, Mapping
from dataclasses import dataclass
from typing import Any

import cel

from conveyor.storage.names import name_problem
from conveyor.storage.rule_cost import Cost, estimate
from conveyor.storage.sandbox import RuleTimeout, default_sandbox
from conveyor.storage.values import to_cel

MAX_EXPRESSION = 4000
MAX_MESSAGE = 500
_ERROR_AT = re.compile(r"<input>:(\d+):(\d+): (.*)")
_ACCESS = re.compile(r"\b(record|previous)\s*(?:\.\s*([A-Za-z_]\w*)|\[\s*(['\"])(.*?)\3\s*\])")
_MACRO_VAR = re.compile(r"\.\s*(?:all|exists|exists_one|map|filter)\s*\(\s*([A-Za-z_]\w*)\s*,")
_STRING = re.compile(r"[rRbB]{0,2}('''|\"\"\"|'|\")")
_VARIABLES = frozenset({"record", "previous"})
#: CEL's operators and standard functions: nothing else is callable from a rule.
FUNCTIONS = frozenset(
    [
        "!_",
        "-_",
        "@in",
        "@not_strictly_false",
        "_&&_",
        "_||_",
        "_?_:_",
        "_[_]",
        "_==_",
        "_!=_",
        "_<_",
        "_<=_",
        "_>_",
        "_>=_",
        "_+_",
        "_-_",
        "_*_",
        "_/_",
        "_%_",
        "size",
        "contains",
        "startsWith",
        "endsWith",
        "matches",
        "int",
        "uint",
        "double",
        "string",
        "bytes",
        "bool",
        "timestamp",
        "duration",
        "dyn",
        "type",
        "getDate",
        "getDayOfMonth",
        "getDayOfWeek",
        "getDayOfYear",
        "getFullYear",
        "getHours",
        "getMilliseconds",
        "getMinutes",
        "getMonth",
        "getSeconds",
        "lowerAscii",
        "upperAscii",
        "trim",
        "split",
        "join",
        "replace",
        "indexOf",
        "lastIndexOf",
        "substring",
        "charAt",
        "max",
        "min",
    ]
)

Problem = dict[str, Any]


@dataclass(frozen=True)
class Rule:
    name: str
    expression: str
    message: str

    def to_json(self) -> dict[str, str]:
        return {"name": self.name, "expression": self.expression, "message": self.message}


@dataclass(frozen=True)
class CompiledRule:
    rule: Rule
    program: cel.Program
    cost: Cost

    def cost_problems(self, where: str = "expression") -> list[Problem]:
        """Why the rule may cost too much to be saved."""
        return [
            _problem(where, self.rule.name, f"too costly: {reason}")
            for reason in self.cost.limits_broken()
        ]


def parse_rule(
    spec: object, path: str, field_names: Collection[str]
) -> tuple[CompiledRule | None, list[Problem]]:
    """A compiled rule from its JSON definition, or the problems found (with positions)."""
    if not isinstance(spec, dict):
        return None, [_problem(path, None, 'a rule is {"name", "expression", "message"}')]
    problems: list[Problem] = []
    name, expression, message = spec.get("name"), spec.get("expression"), spec.get("message")
    for key in spec.keys() - {"name", "expression", "message"}:
        problems.append(_problem(f"{path}.{key}", None, "unknown rule option"))
    if (error := name_problem(name, what="rule")) is not None:
        problems.append(_problem(f"{path}.name", None, error))
    rule_name = name if isinstance(name, str) else None
    if not isinstance(expression, str) or not 0 < len(expression) <= MAX_EXPRESSION:
        problems.append(
            _problem(f"{path}.expression", rule_name, "an expression of 1 to 4000 characters")
        )
    if message is None:
        message = f"breaks the rule {rule_name}"
    if not isinstance(message, str) or not 0 < len(message) <= MAX_MESSAGE:
        problems.append(_problem(f"{path}.message", rule_name, "a message of 1 to 500 characters"))
    if problems:
        return None, problems
    assert isinstance(name, str) and isinstance(expression, str) and isinstance(message, str)
    compiled, problems = compile_rule(Rule(name, expression, message), field_names, path)
    if compiled is not None and (problems := compiled.cost_problems(f"{path}.expression")):
        return None, problems
    return compiled, problems


def compile_rule(
    rule: Rule, field_names: Collection[str], path: str = "expression"
) -> tuple[CompiledRule | None, list[Problem]]:
    where = f"{path}.expression" if path != "expression" else path
    try:
        program = cel.compile(rule.expression)
    except (ValueError, RuntimeError) as exc:
        return None, [_problem(where, rule.name, _syntax_message(str(exc)))]
    messages = unknown_names(rule.expression, program.variables(), field_names)
    messages += [
        f"unknown function {name!r}" for name in program.functions() if name not in FUNCTIONS
    ]
    problems = [_problem(where, rule.name, message) for message in messages]
    if problems:
        return None, problems
    return CompiledRule(rule, program, estimate(rule.expression)), []


def unknown_names(
    expression: str, variables: Iterable[str], field_names: Collection[str]
) -> list[str]:
    """Messages for each variable or `record.<field>` the table does not have."""
    bound = set(_MACRO_VAR.findall(_mask_strings(expression)))
    messages = [
        f"unknown variable {name!r}: a rule can use record and previous"
        for name in variables
        if name not in _VARIABLES and name not in bound
    ]
    for field, offset in field_accesses(expression):
        if field not in field_names:
            line, column = _position(expression, offset)
            messages.append(
                f"unknown field {field!r} at line {line}, column {column} "
                f"(fields: {', '.join(sorted(field_names)) or 'none'})"
            )
    return messages


def field_accesses(expression: str) -> list[tuple[str, int]]:
    """Each `record.<field>` / `previous["<field>"]` in `expression`, with its offset."""
    masked = _mask_strings(expression)
    found = []
    for match in _ACCESS.finditer(expression):
        start = match.start()
        if masked[start] == " " or masked[:start].rstrip().endswith("."):
            continue  # inside a string literal, or a member such as `x.record`
        if match.group(2):
            found.append((match.group(2), match.start(2)))
        else:
            found.append((match.group(4), start))
    return found


async def evaluate(
    rules: Iterable[CompiledRule],
    record: Mapping[str, Any],
    previous: Mapping[str, Any] | None,
) -> list[Problem]:
    """A problem for each rule the record breaks (an error while evaluating breaks it too)."""
    context = {"record": _cel_map(record), "previous": _cel_map(previous) if previous else None}
    problems = []
    for compiled in rules:
        try:
            if compiled.cost.inline:
                result = compiled.program.execute(context)
            else:
                result = await default_sandbox().execute(compiled.rule.expression, context)
        except RuleTimeout:
            timeout_s = default_sandbox().timeout_s
            problems.append(_broken(compiled.rule, f"it took longer than {timeout_s:g} s"))
            continue
        except KeyError as exc:
            problems.append(_broken(compiled.rule, f"{exc.args[0]} has no value"))
            continue
        except Exception as exc:  # CEL raises TypeError, ValueError, ZeroDivisionError...
            problems.append(_broken(compiled.rule, str(exc).split(".")[0]))
            continue
        if result is not True:
            reason = None if result is False else "the rule did not give true or false"
            problems.append(_broken(compiled.rule, reason))
    return problems


def _broken(rule: Rule, reason: str | None) -> Problem:
    message = rule.message if reason is None else f"{rule.message} (not checked: {reason})"
    return _problem(None, rule.name, message)


def _cel_map(values: Mapping[str, Any]) -> dict[str, Any]:
    # Absent values are left out, so that `has(record.x)` tells whether x is set.
    return {k: to_cel(v) for k, v in values.items() if v is not None}


def _problem(field: str | None, rule: str | None, message: str) -> Problem:
    return {"field": field, "rule": rule, "message": message}


def _syntax_message(error: str) -> str:
    match = _ERROR_AT.search(error)
    if match is None:
        return f"invalid expression: {error.splitlines()[0][:300]}"
    line, column, reason = match.groups()
    return f"syntax error at line {line}, column {column}: {reason[:300]}"


def _position(text: str, offset: int) -> tuple[int, int]:
    line = text.count("\n", 0, offset) + 1
    return line, offset - (text.rfind("\n", 0, offset) + 1) + 1


def _mask_strings(text: str) -> str:
    """`text` with the inside of every string literal blanked (offsets unchanged)."""
    out, i = list(text), 0
    while i < len(text):
        match = _STRING.match(text, i) if text[i] in "rRbB'\"" else None
        if match is None or (i > 0 and (text[i - 1].isalnum() or text[i - 1] == "_")):
            i += 1
            continue
        quote, raw = match.group(1), "r" in match.group(0).lower()
        j = match.end()
        while j < len(text) and not text.startswith(quote, j):
            j += 2 if text[j] == "\\" and not raw else 1
        end = min(j + len(quote), len(text))
        for k in range(i, end):
            if out[k] != "\n":
                out[k] = " "
        i = end
    return "".join(out)
