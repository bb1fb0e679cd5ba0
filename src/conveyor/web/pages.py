"""What every view module shares: the page guard, navigation entries and partial requests."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated

from fastapi import Depends, Request
from starlette.responses import RedirectResponse

from conveyor.platform import Platform
from conveyor.sessions import Session
from conveyor.web.auth import check_csrf, current_session
from conveyor.web.forms import Form, read_form

#: Signed-in pages declare `session: SignedIn`; without a session they redirect to login.
SignedIn = Annotated[Session, Depends(current_session)]

#: Header sent by `app.js` when it wants a fragment instead of a whole page.
PARTIAL_HEADER = "x-partial"


@dataclass(frozen=True)
class NavItem:
    label: str
    path: str
    #: One line for the dashboard's list of areas.
    description: str = ""


def platform_of(request: Request) -> Platform:
    platform: Platform = request.app.state.platform
    return platform


def wants_partial(request: Request) -> bool:
    return request.headers.get(PARTIAL_HEADER) == "1"


async def posted(request: Request, session: Session) -> Form:
    """The form of a signed-in POST, after its CSRF token is checked (403 otherwise)."""
    form = await read_form(request)
    check_csrf(request, session, form)
    return form


def see_other(path: str) -> RedirectResponse:
    """Post/redirect/get: after a change, the browser loads the page it should show."""
    return RedirectResponse(path, status_code=303)
