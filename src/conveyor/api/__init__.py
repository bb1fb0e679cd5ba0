"""The HTTP API: `create_api(platform)`; `conveyor.server` serves it with the back-office."""

from __future__ import annotations

from conveyor.api.app import create_api

__all__ = ["create_api"]
