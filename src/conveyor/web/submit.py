"""The back-office's form pattern, once: call a service with what a form says; when it
refuses (invalid input, a conflict), show the form again with the reasons beside its
fields (422); else go on (most often: redirect to the page of what was saved)."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Iterable
from typing import TypeVar

from starlette.responses import Response

from conveyor.exceptions import Conflict, ValidationError
from conveyor.web.forms import FieldErrors

T = TypeVar("T")
#: What a service may answer to a form: its input is invalid, or it conflicts.
Refusal = ValidationError | Conflict
#: A response, or what gives one when awaited (a page that reads the database).
Answer = Response | Awaitable[Response]


def field_errors(
    fields: Iterable[str], *, conflict_field: str | None = None
) -> Callable[[Refusal], FieldErrors]:
    """Reasons spread over the form's `fields`. A conflict goes beside `conflict_field`
    (a unique name taken), else beside the field its details name, else above the form."""
    known = set(fields)

    def explain(error: Refusal) -> FieldErrors:
        if isinstance(error, ValidationError):
            return FieldErrors.of(error, known)
        errors = FieldErrors()
        named = [d.get("field") for d in error.details or [] if isinstance(d, dict)]
        field = conflict_field or (str(named[0]) if named and named[0] in known else None)
        if field is None:
            errors.general.append(error.message)
        else:
            errors.add(field, error.message)
        return errors

    return explain


async def submit(
    call: Awaitable[T],
    *,
    explain: Callable[[Refusal], FieldErrors],
    again: Callable[[FieldErrors], Answer],
    then: Callable[[T], Answer],
    refusals: tuple[type[Refusal], ...] = (ValidationError, Conflict),
) -> Response:
    """`then(result)` of the service's `call`; `again(reasons)` when it refuses (one of
    `refusals`), the reasons explained by `explain`."""
    try:
        result = await call
    except refusals as error:
        return await _answer(again(explain(error)))
    return await _answer(then(result))


async def _answer(answer: Answer) -> Response:
    return answer if isinstance(answer, Response) else await answer
