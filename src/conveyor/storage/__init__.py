"""ZStorage: user-defined tables of records, with validation rules, queries and search."""

from __future__ import annotations

from conveyor.storage.fields import Field, FieldType
from conveyor.storage.model import TableDef
from conveyor.storage.records import Event, Record, Records, WriteHook
from conveyor.storage.rules import Rule
from conveyor.storage.service import Storage

__all__ = [
    "Event",
    "Field",
    "FieldType",
    "Record",
    "Records",
    "Rule",
    "Storage",
    "TableDef",
    "WriteHook",
]
