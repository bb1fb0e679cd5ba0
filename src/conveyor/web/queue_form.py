"""The queue form: its fields, the spec it gives the registry, and its values for display."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from conveyor.queues.model import Queue, QueueOptions, QueueType
from conveyor.web.forms import Form
from conveyor.web.templating import number

TEXT_FIELDS = ("name", "type", "url", "username", "region", "description")


@dataclass(frozen=True)
class OptionField:
    name: str
    label: str
    hint: str
    kind: str = "number"

    @property
    def field(self) -> str:
        return f"options.{self.name}"


OPTIONS = (
    OptionField(
        "visibility_timeout_s",
        "Visibility timeout (s)",
        "How long a received message stays hidden from other consumers.",
    ),
    OptionField("max_attempts", "Max attempts", "Deliveries before a message is dead-lettered."),
    OptionField(
        "retry_backoff_s", "Retry backoff (s)", "Base of the exponential delay between attempts."
    ),
    OptionField("retry_backoff_max_s", "Retry backoff cap (s)", "Longest delay between attempts."),
    OptionField(
        "max_message_bytes", "Max message size (bytes)", "Larger messages are refused with 413."
    ),
    OptionField(
        "dead_letter", "Keep dead letters", "Off: messages out of attempts are dropped.", "checkbox"
    ),
    OptionField(
        "create_if_missing",
        "Create on the broker if missing",
        "Kafka topics and SQS queues.",
        "checkbox",
    ),
)

#: Every form field an error may be shown next to.
FIELDS = (*TEXT_FIELDS, "password", *(o.field for o in OPTIONS))

#: Which queue types use which connection fields (the rest are hidden by app.js).
USED_BY: dict[str, tuple[QueueType, ...]] = {
    "url": (QueueType.RABBITMQ, QueueType.KAFKA, QueueType.SQS),
    "username": (QueueType.RABBITMQ, QueueType.KAFKA, QueueType.SQS),
    "password": (QueueType.RABBITMQ, QueueType.KAFKA, QueueType.SQS),
    "region": (QueueType.SQS,),
}


def spec_of(form: Form) -> dict[str, Any]:
    """The registry input for a posted form (blank numbers mean "the default")."""
    spec: dict[str, Any] = {name: form.get(name).strip() or None for name in TEXT_FIELDS}
    if form.get("password"):
        spec["password"] = form.get("password")
    elif form.has("clear_password"):
        spec["password"] = None
    options: dict[str, Any] = {}
    for option in OPTIONS:
        if option.kind == "checkbox":
            options[option.name] = form.has(option.field)
        else:
            options[option.name] = form.get(option.field).strip() or None
    spec["options"] = options
    return spec


def creation_spec(form: Form) -> dict[str, Any]:
    spec = spec_of(form)
    spec["options"] = {k: v for k, v in spec["options"].items() if v is not None}
    return spec


def values_of_form(form: Form) -> dict[str, Any]:
    """What the user typed, to show again next to the errors (never the password)."""
    values: dict[str, Any] = {name: form.get(name) for name in TEXT_FIELDS}
    for option in OPTIONS:
        values[option.field] = (
            form.has(option.field) if option.kind == "checkbox" else form.get(option.field)
        )
    return values


def values_of_queue(queue: Queue | None) -> dict[str, Any]:
    options = queue.options if queue else QueueOptions()
    values: dict[str, Any] = {name: "" for name in TEXT_FIELDS}
    if queue is not None:
        values |= {
            "name": queue.name,
            "type": queue.type.value,
            "url": queue.url or "",
            "username": queue.username or "",
            "region": queue.region or "",
            "description": queue.description or "",
        }
    else:
        values["type"] = QueueType.EMBEDDED.value
    for option in OPTIONS:
        value = getattr(options, option.name)
        values[option.field] = value if option.kind == "checkbox" else number(value)
    return values
