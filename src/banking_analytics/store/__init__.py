"""Where events live: the engine interface and its implementations."""

from banking_analytics.store._engine import Engine, StoreURLError, WriteTransaction, open_engine
from banking_analytics.store._tables import ALL_TABLES, EVENT_TABLES, QUARANTINE, Column, TableDef

__all__ = [
    "ALL_TABLES",
    "EVENT_TABLES",
    "QUARANTINE",
    "Column",
    "Engine",
    "StoreURLError",
    "TableDef",
    "WriteTransaction",
    "open_engine",
]
