"""Reading HTML forms (bounded), and turning form fields into service input and back.

Browsers post `application/x-www-form-urlencoded`; nothing here needs file uploads, so
the body is read with a size cap and parsed with the standard library.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qsl

from fastapi import Request

from conveyor.exceptions import BadRequest, PayloadTooLarge, ValidationError

#: The largest form accepted (the test-publish form carries a JSON message).
MAX_FORM_BYTES = 1024 * 1024
#: A record form has a field per table field (up to 200), plus a few of its own.
MAX_FIELDS = 1000
URLENCODED = "application/x-www-form-urlencoded"


@dataclass(frozen=True)
class Form:
    pairs: tuple[tuple[str, str], ...] = ()

    def get(self, name: str, default: str = "") -> str:
        return next((v for k, v in self.pairs if k == name), default)

    def getlist(self, name: str) -> list[str]:
        return [v for k, v in self.pairs if k == name]

    def has(self, name: str) -> bool:
        return any(k == name for k, _ in self.pairs)


async def read_form(request: Request) -> Form:
    """The posted form; an empty one for any other content type (CSRF then refuses it)."""
    media = request.headers.get("content-type", "").split(";", 1)[0].strip().lower()
    declared = request.headers.get("content-length", "")
    if declared.isdigit() and int(declared) > MAX_FORM_BYTES:
        raise PayloadTooLarge(f"the form is over {MAX_FORM_BYTES} bytes")
    body = bytearray()
    async for chunk in request.stream():
        body += chunk
        if len(body) > MAX_FORM_BYTES:
            raise PayloadTooLarge(f"the form is over {MAX_FORM_BYTES} bytes")
    if media != URLENCODED:
        return Form()
    try:
        text = body.decode("utf-8")
        pairs = parse_qsl(text, keep_blank_values=True, max_num_fields=MAX_FIELDS)
    except (UnicodeDecodeError, ValueError) as exc:
        raise BadRequest(f"the form could not be read: {exc}") from None
    return Form(tuple(pairs))


@dataclass
class FieldErrors:
    """Validation messages per form field, plus those that belong to no field."""

    by_field: dict[str, list[str]] = field(default_factory=dict)
    general: list[str] = field(default_factory=list)

    def add(self, name: str, message: str) -> None:
        self.by_field.setdefault(name, []).append(message)

    def __bool__(self) -> bool:
        return bool(self.by_field or self.general)

    @classmethod
    def of(cls, error: ValidationError, fields: Iterable[str]) -> FieldErrors:
        """Spread a service's ValidationError over the form's fields."""
        known = set(fields)
        errors = cls()
        for detail in error.details or [{"field": "", "message": error.message}]:
            name = str(detail.get("field") or "")
            message = str(detail.get("message") or error.message)
            if name in known:
                errors.add(name, message)
            elif name:
                errors.general.append(f"{name}: {message}")
            else:
                # A problem of the whole input, such as a broken validation rule.
                rule = detail.get("rule")
                errors.general.append(f"{message} (rule {rule})" if rule else message)
        return errors


def lines(value: str) -> list[str]:
    """Names typed one per line or separated by commas."""
    return [part.strip() for part in value.replace(",", "\n").splitlines() if part.strip()]


def blank_to_none(values: Mapping[str, str]) -> dict[str, Any]:
    return {k: (v.strip() or None) for k, v in values.items()}
