from __future__ import annotations

from datetime import UTC, datetime

import pytest

from conveyor.exceptions import ValidationError
from conveyor.keys import ApiKey, Scope, parse_scopes


def key(*scopes: Scope, queues: tuple[str, ...] | None = None) -> ApiKey:
    return ApiKey("0" * 16, "k", frozenset(scopes), queues, datetime.now(UTC), None, None)


def test_admin_implies_every_scope() -> None:
    assert all(key(Scope.ADMIN).allows(scope) for scope in Scope)


def test_storage_write_implies_read_but_not_publish() -> None:
    writer = key(Scope.STORAGE_WRITE)
    assert writer.allows(Scope.STORAGE_READ)
    assert not writer.allows(Scope.PUBLISH)
    assert not key(Scope.STORAGE_READ).allows(Scope.STORAGE_WRITE)


def test_publish_keys_can_be_limited_to_queues() -> None:
    limited = key(Scope.PUBLISH, queues=("orders",))
    assert limited.may_publish_to("orders")
    assert not limited.may_publish_to("payments")
    assert key(Scope.PUBLISH).may_publish_to("payments")
    assert not key(Scope.STORAGE_READ).may_publish_to("orders")
    assert key(Scope.ADMIN).may_publish_to("anything")


def test_unknown_or_missing_scopes_are_refused() -> None:
    assert parse_scopes(["publish", "admin"]) == {Scope.PUBLISH, Scope.ADMIN}
    with pytest.raises(ValidationError, match="unknown scope 'root'"):
        parse_scopes(["root"])
    with pytest.raises(ValidationError, match="at least one"):
        parse_scopes([])
