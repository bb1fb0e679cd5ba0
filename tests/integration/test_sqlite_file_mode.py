"""Issue 19 item 11: the SQLite file (and so its journal files) is readable by its owner
only."""

from __future__ import annotations

import stat
from pathlib import Path

from conveyor.db import Database


async def test_the_sqlite_file_is_created_0600(tmp_path: Path) -> None:
    path = tmp_path / "data" / "conveyor.db"
    db = Database(f"sqlite:///{path}")
    try:
        async with db.write() as conn:
            await conn.exec_driver_sql("CREATE TABLE t (x INTEGER)")
            await conn.exec_driver_sql("INSERT INTO t VALUES (1)")
        for file in path.parent.iterdir():
            assert stat.S_IMODE(file.stat().st_mode) == 0o600, file
    finally:
        await db.close()


async def test_an_existing_readable_file_is_made_private(tmp_path: Path) -> None:
    path = tmp_path / "conveyor.db"
    path.touch(mode=0o644)
    path.chmod(0o644)
    db = Database(f"sqlite:///{path}")
    await db.close()
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
