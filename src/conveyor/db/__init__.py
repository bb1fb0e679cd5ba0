"""The platform database: one engine, explicit read and write transactions."""

from __future__ import annotations

from conveyor.db.engine import Database, after_commit, async_url
from conveyor.db.pipeline import flush, pipelined

__all__ = ["Database", "after_commit", "async_url", "flush", "pipelined"]
