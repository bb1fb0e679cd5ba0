"""What every view module shares: the page guard, navigation entries and partial requests."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated

from fastapi import Depends, Request
from starlette.responses import RedirectResponse

from conveyor.exceptions import Forbidden
from conveyor.platform import Platform
from conveyor.sessions import Session
from conveyor.web.auth import check_csrf, current_session
from conveyor.web.forms import Form, read_form

#: Signed-in pages declare `session: SignedIn`; without a session they redirect to login.
SignedIn = Annotated[Session, Depends(current_session)]


async def admin_session(session: SignedIn) -> Session:
    """The session of an admin; an operator gets a 403 page."""
    if not session.user.is_admin:
        raise Forbidden("only admins manage API keys and users; ask an admin")
    return session


#: Pages for admins only (API keys, users) declare `session: AdminOnly`.
AdminOnly = Annotated[Session, Depends(admin_session)]

#: Header sent by `app.js` when it wants a fragment instead of a whole page.
PARTIAL_HEADER = "x-partial"


@dataclass(frozen=True)
class NavItem:
    label: str
    path: str
    #: One line for the dashboard's list of areas.
    description: str = ""
    #: Shown to admins only (operators get a 403 there).
    admin_only: bool = False


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
