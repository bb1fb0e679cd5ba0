"""Bearer-key authentication and scope checks, as FastAPI dependencies."""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from fastapi import Request

from conveyor.exceptions import Forbidden, Unauthenticated
from conveyor.keys import ApiKey, Scope
from conveyor.platform import Platform


def platform_of(request: Request) -> Platform:
    platform: Platform = request.app.state.platform
    return platform


async def authenticate(request: Request) -> ApiKey:
    header = request.headers.get("authorization")
    if not header:
        raise Unauthenticated()
    scheme, _, token = header.partition(" ")
    if scheme.lower() != "bearer" or not token:
        raise Unauthenticated()
    return await platform_of(request).keys.authenticate(token.strip())


def require(scope: Scope) -> Callable[[Request], Awaitable[ApiKey]]:
    """A dependency: the calling key, which must hold `scope`."""

    async def dependency(request: Request) -> ApiKey:
        key = await authenticate(request)
        if not key.allows(scope):
            raise Forbidden(f"this API key lacks the {scope.value!r} scope")
        return key

    return dependency
