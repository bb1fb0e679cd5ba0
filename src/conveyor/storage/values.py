"""Field values: from JSON and query strings to Python, and back to JSON and CEL."""

from __future__ import annotations

import math
import re
from datetime import UTC, date, datetime, time
from decimal import Decimal, InvalidOperation
from typing import Any
from urllib.parse import urlsplit

import orjson

from conveyor.storage.fields import INT64, LENGTH_BOUNDED, Field, FieldType

#: A pragmatic address check: one @, no spaces, a dotted domain.
EMAIL_RE = re.compile(
    r"^[^@\s]{1,64}@[A-Za-z0-9](?:[A-Za-z0-9-]*[A-Za-z0-9])?(?:\.[A-Za-z0-9-]+)+$"
)
DATE_RE = re.compile(r"^[0-9]{4}-[0-9]{2}-[0-9]{2}$")
INTEGER_RE = re.compile(r"^[+-]?[0-9]{1,19}$")
MAX_EMAIL = 254
MAX_URL = 2048
MAX_JSON_DEPTH = 32
#: The largest value of a json field, encoded (a record's whole body is bounded too).
MAX_JSON_BYTES = 256 * 1024
FLOAT_DIGITS = 15  # what a double holds exactly


class Invalid(ValueError):
    """A value does not fit its field; the message is meant for the client."""


def coerce(field: Field, value: Any) -> Any:
    """The Python value to store for a JSON `value`, or `Invalid`. None stays None."""
    if value is None:
        return None
    converted = _CONVERTERS[field.type](field, value)
    check_options(field, converted)
    return converted


def check_options(field: Field, value: Any) -> None:
    if field.type in LENGTH_BOUNDED:
        size = len(value)
        if field.min is not None and size < int(field.min):
            raise Invalid(f"must be at least {field.min} characters long")
        if field.max is not None and size > int(field.max):
            raise Invalid(f"must be at most {field.max} characters long")
        if field.pattern is not None and re.fullmatch(field.pattern, value) is None:
            raise Invalid(f"must match the pattern {field.pattern}")
    elif field.type in (FieldType.INTEGER, FieldType.DECIMAL):
        if field.min_value is not None and value < field.min_value:
            raise Invalid(f"must be at least {field.min}")
        if field.max_value is not None and value > field.max_value:
            raise Invalid(f"must be at most {field.max}")
    elif field.type is FieldType.SELECT and value not in (field.choices or ()):
        raise Invalid(f"must be one of: {', '.join(field.choices or ())}")


def _text(field: Field, value: Any) -> str:
    if not isinstance(value, str):
        raise Invalid("must be a string")
    if "\x00" in value:
        raise Invalid("must not contain NUL characters")
    return value


def _integer(field: Field, value: Any) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise Invalid("must be an integer")
    if not INT64[0] <= value <= INT64[1]:
        raise Invalid("is out of range for a 64-bit integer")
    return value


def _reference(field: Field, value: Any) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or not 0 < value <= INT64[1]:
        raise Invalid(f"must be the id (a positive integer) of a record of {field.table}")
    return value


def _decimal(field: Field, value: Any) -> Decimal:
    if isinstance(value, bool) or not isinstance(value, int | float | str):
        raise Invalid('must be a decimal number, as a string ("12.50") or a number')
    if isinstance(value, float) and not math.isfinite(value):
        raise Invalid("must be a finite number")
    if isinstance(value, float) and len(Decimal(repr(value)).as_tuple().digits) > FLOAT_DIGITS:
        # Beyond 15 digits the number the client wrote may not be the one received.
        raise Invalid(f"send decimals of more than {FLOAT_DIGITS} digits as a string")
    try:
        number = Decimal(str(value).strip())
    except InvalidOperation:
        raise Invalid('must be a decimal number such as "12.50"') from None
    if not number.is_finite():
        raise Invalid("must be a finite number")
    scale, precision = field.scale or 0, field.precision or 18
    if number and number.adjusted() >= precision - scale:
        raise Invalid(f"has more than {precision - scale} digits before the decimal point")
    try:
        quantized = number.quantize(Decimal(1).scaleb(-scale))
    except InvalidOperation:
        raise Invalid(f"has more than {scale} decimal places") from None
    if quantized != number:
        raise Invalid(f"has more than {scale} decimal places")
    number = quantized
    if len(number.as_tuple().digits) > precision:
        raise Invalid(f"has more than {precision} digits ({precision - scale} before the point)")
    return number


def _boolean(field: Field, value: Any) -> bool:
    if not isinstance(value, bool):
        raise Invalid("must be true or false")
    return value


def _date(field: Field, value: Any) -> date:
    if not isinstance(value, str) or not DATE_RE.match(value):
        raise Invalid('must be a date like "2024-12-31"')
    try:
        return date.fromisoformat(value)
    except ValueError:
        raise Invalid("is not a valid date") from None


def _datetime(field: Field, value: Any) -> datetime:
    if not isinstance(value, str) or len(value) > 64 or not value[:4].isdigit():
        raise Invalid("must be an ISO 8601 date and time with a timezone")
    try:
        parsed = datetime.fromisoformat(value)
    except ValueError:
        raise Invalid("must be an ISO 8601 date and time with a timezone") from None
    if parsed.tzinfo is None:
        raise Invalid("must include a timezone, e.g. 2024-12-31T10:00:00Z or +02:00")
    try:
        return parsed.astimezone(UTC)
    except OverflowError:
        raise Invalid("is out of range") from None


def _json(field: Field, value: Any) -> Any:
    _check_json(value, 0)
    size = len(orjson.dumps(value))
    if size > MAX_JSON_BYTES:
        raise Invalid(f"is {size} bytes of JSON; a json field holds at most {MAX_JSON_BYTES}")
    return value


def _check_json(value: Any, depth: int) -> None:
    if depth > MAX_JSON_DEPTH:
        raise Invalid(f"nests deeper than {MAX_JSON_DEPTH} levels")
    if isinstance(value, bool) or value is None or isinstance(value, str):
        return
    if isinstance(value, int):
        if not INT64[0] <= value <= INT64[1]:
            raise Invalid("holds an integer that does not fit in 64 bits")
    elif isinstance(value, float):
        if not math.isfinite(value):
            raise Invalid("holds NaN or Infinity, which JSON does not allow")
    elif isinstance(value, list):
        for item in value:
            _check_json(item, depth + 1)
    elif isinstance(value, dict):
        for item in value.values():
            _check_json(item, depth + 1)
    else:
        raise Invalid("is not a JSON value")


def _email(field: Field, value: Any) -> str:
    text = _text(field, value)
    if len(text) > MAX_EMAIL or not EMAIL_RE.match(text):
        raise Invalid("must be an email address")
    return text


def _url(field: Field, value: Any) -> str:
    text = _text(field, value)
    parts = urlsplit(text) if len(text) <= MAX_URL and text.isprintable() else None
    if parts is None or parts.scheme not in ("http", "https") or not parts.netloc:
        raise Invalid("must be an http or https URL")
    return text


def _select(field: Field, value: Any) -> str:
    return _text(field, value)


_CONVERTERS = {
    FieldType.TEXT: _text,
    FieldType.INTEGER: _integer,
    FieldType.DECIMAL: _decimal,
    FieldType.BOOLEAN: _boolean,
    FieldType.DATE: _date,
    FieldType.DATETIME: _datetime,
    FieldType.JSON: _json,
    FieldType.EMAIL: _email,
    FieldType.URL: _url,
    FieldType.SELECT: _select,
    FieldType.REFERENCE: _reference,
}


def from_text(field: Field, raw: str) -> Any:
    """A value written in a query string (`?idade=20`), converted for `field`."""
    if field.type not in _TEXT_TYPES and not raw.isascii():
        # Python reads Arabic-Indic or fullwidth digits as numbers; a query means ASCII.
        raise Invalid("must be written with ASCII characters")
    if field.type in (FieldType.INTEGER, FieldType.REFERENCE):
        if not INTEGER_RE.match(raw):
            raise Invalid("must be an integer")
        return _CONVERTERS[field.type](field, int(raw))
    if field.type is FieldType.BOOLEAN:
        lowered = raw.lower()
        if lowered not in ("true", "false", "1", "0"):
            raise Invalid("must be true or false")
        return lowered in ("true", "1")
    if field.type is FieldType.JSON:
        raise Invalid("json fields can only be filtered with [isnull]")
    if field.type in _TEXT_TYPES:
        return _text(field, raw)
    return _CONVERTERS[field.type](field, raw)


_TEXT_TYPES = (FieldType.TEXT, FieldType.EMAIL, FieldType.URL, FieldType.SELECT)


def to_json(field: Field, value: Any) -> Any:
    if value is None:
        return None
    if isinstance(value, Decimal):
        return str(value)
    if isinstance(value, datetime):
        return value.astimezone(UTC).isoformat()
    if isinstance(value, date):
        return value.isoformat()
    return value


def to_cel(value: Any) -> Any:
    """A value as CEL rules see it: dates become timestamps at midnight UTC."""
    if isinstance(value, date) and not isinstance(value, datetime):
        return datetime.combine(value, time(), UTC)
    return value


def decode(field: Field, value: Any) -> Any:
    """A value written by `to_json`, back in Python, without checking the field's options."""
    if value is None:
        return None
    if field.type is FieldType.DECIMAL:
        if not isinstance(value, str):
            raise Invalid("must be a decimal string")
        try:
            number = Decimal(value)
        except InvalidOperation:
            raise Invalid("must be a decimal string") from None
        if not number.is_finite():
            raise Invalid("must be finite")
        return number
    return _CONVERTERS[field.type](field, value)
