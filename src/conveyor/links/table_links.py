"""Links given inside a table's create or PATCH body: `"links": [{"queue": …, …}]`.

Everything is checked before the table changes; on PATCH the list replaces the table's
links (a link left out is removed).
"""

from __future__ import annotations

from typing import Any

from conveyor.exceptions import QueueNotFound, ValidationError
from conveyor.links.model import LinkSpec
from conveyor.links.registry import LinkRegistry
from conveyor.queues.model import Queue
from conveyor.queues.registry import QueueRegistry

ParsedLinks = list[tuple[Queue, LinkSpec]]


async def parse(queues: QueueRegistry, table_name: str, value: Any) -> ParsedLinks:
    if not isinstance(value, list):
        raise _invalid([("links", "a list of {queue, events, handler, mode}")])
    parsed: ParsedLinks = []
    problems: list[tuple[str, str]] = []
    for i, item in enumerate(value):
        if not isinstance(item, dict) or not isinstance(item.get("queue"), str):
            problems.append((f"links[{i}].queue", "give the queue's name or id"))
            continue
        body = {k: v for k, v in item.items() if k != "queue"}
        try:
            queue = await queues.find(item["queue"])
            parsed.append((queue, LinkSpec.parse(table_name, body)))
        except QueueNotFound:
            problems.append((f"links[{i}].queue", f"no queue {item['queue']!r}"))
        except ValidationError as exc:
            problems += [(f"links[{i}].{d['field']}", d["message"]) for d in exc.details or []]
    if len({queue.id for queue, _ in parsed}) < len(parsed):
        problems.append(("links", "a queue may appear only once"))
    if problems:
        raise _invalid(problems)
    return parsed


async def apply(
    registry: LinkRegistry, table_name: str, links: ParsedLinks, *, replace: bool
) -> None:
    for queue, spec in links:
        await registry.put(table_name, queue.id, spec)
    if replace:
        keep = {queue.id for queue, _ in links}
        for link in await registry.all(table_name):
            if link.queue_id not in keep:
                await registry.delete(table_name, link.queue_id)


def _invalid(problems: list[tuple[str, str]]) -> ValidationError:
    details = [{"field": f, "rule": None, "message": m} for f, m in problems]
    return ValidationError("; ".join(f"{f}: {m}" for f, m in problems), details=details)
