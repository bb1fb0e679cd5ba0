"""Conveyor: queues, workers, records and a back-office for wiring systems together."""

from __future__ import annotations

__version__ = "0.1.0"

__all__ = ["__version__"]
