"""Deleting every dead letter of a queue, on any backend, a page at a time."""

from __future__ import annotations

from conveyor.queues.base import QueueBackend

PAGE = 500


async def purge_dead_letters(backend: QueueBackend) -> int:
    """Delete all of the queue's dead letters; the number deleted. Letters that die
    meanwhile may be deleted too; the loop ends when a page deletes nothing."""
    deleted = 0
    while True:
        page = await backend.dead_letters(limit=PAGE)
        if not page.items:
            return deleted
        count = await backend.delete_dead_letters([letter.id for letter in page.items])
        if count == 0:
            return deleted
        deleted += count
