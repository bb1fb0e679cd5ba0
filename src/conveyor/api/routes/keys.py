"""`/api/v1/me` and API key management (scope `admin`)."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated

from fastapi import Depends, Request
from pydantic import BaseModel, Field

from conveyor.api.auth import authenticate, platform_of, require
from conveyor.api.routing import Router
from conveyor.keys import ApiKey, Scope

router = Router(prefix="/api/v1", tags=["keys"])
Admin = Annotated[ApiKey, Depends(require(Scope.ADMIN))]


class Me(BaseModel):
    id: str
    name: str
    scopes: list[Scope]
    queues: list[str] | None


class KeyOut(Me):
    prefix: str
    created_at: datetime
    last_used_at: datetime | None
    revoked_at: datetime | None

    @classmethod
    def of(cls, key: ApiKey) -> KeyOut:
        return cls(
            id=key.id,
            name=key.name,
            scopes=sorted(key.scopes),
            queues=list(key.queues) if key.queues is not None else None,
            prefix=key.prefix,
            created_at=key.created_at,
            last_used_at=key.last_used_at,
            revoked_at=key.revoked_at,
        )


class NewKey(BaseModel):
    name: str = Field(min_length=1, max_length=200)
    scopes: list[str] = Field(min_length=1)
    queues: list[str] | None = None


class CreatedKey(KeyOut):
    key: str = Field(description="The key itself. It is shown once, now, and never again.")


class KeyList(BaseModel):
    items: list[KeyOut]


@router.get("/me", response_model=Me, summary="The calling API key")
async def me(key: Annotated[ApiKey, Depends(authenticate)]) -> Me:
    queues = list(key.queues) if key.queues is not None else None
    return Me(id=key.id, name=key.name, scopes=sorted(key.scopes), queues=queues)


@router.get("/keys", response_model=KeyList, summary="List API keys")
async def list_keys(request: Request, _: Admin) -> KeyList:
    return KeyList(items=[KeyOut.of(k) for k in await platform_of(request).keys.list()])


@router.post("/keys", response_model=CreatedKey, status_code=201, summary="Create an API key")
async def create_key(request: Request, body: NewKey, _: Admin) -> CreatedKey:
    key, token = await platform_of(request).keys.create(body.name, body.scopes, body.queues)
    return CreatedKey(**KeyOut.of(key).model_dump(), key=token)


@router.delete("/keys/{keyid}", response_model=KeyOut, summary="Revoke an API key")
async def revoke_key(request: Request, keyid: str, _: Admin) -> KeyOut:
    return KeyOut.of(await platform_of(request).keys.revoke(keyid))
