"""`Storage`: the ZStorage service a Platform owns."""

from __future__ import annotations

from conveyor.db import Database
from conveyor.storage.alter import Fields
from conveyor.storage.catalog import Catalog
from conveyor.storage.page_store import PageStore
from conveyor.storage.records import Records
from conveyor.storage.tables import Tables


class Storage:
    """Tables (`tables`), their fields (`fields`), records (`records`) and custom
    pages (`pages`).

    All share one catalogue cache. Append to `records.hooks` to act inside the
    transaction of every record write.
    """

    def __init__(self, db: Database) -> None:
        self.catalog = Catalog(db.dialect)
        self.tables = Tables(db, self.catalog)
        self.pages = PageStore(db, self.catalog)
        self.fields = Fields(self.tables, on_rename=[self.pages.rename_field])
        self.records = Records(db, self.catalog)

    async def close(self) -> None:
        await self.records.close()
