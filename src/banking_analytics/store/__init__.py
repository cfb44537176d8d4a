"""Where events live: the engine interface and its implementations.

``banking_analytics.store.statements`` builds dialect-neutral statements on tables.
"""

from banking_analytics.store._engine import Engine, WriteTransaction, open_engine
from banking_analytics.store._errors import (
    StatementTimeoutError,
    StoreLockedError,
    StoreUnavailableError,
    StoreURLError,
)
from banking_analytics.store._tables import (
    ALL_TABLES,
    BEHAVIOR_SESSIONS,
    DATA_VERSIONS,
    DERIVED_TABLES,
    EVENT_TABLES,
    EXCHANGE_RATES,
    INSTITUTIONS,
    QUARANTINE,
    RATE_SCALE,
    SUBSCRIPTION_CHANGES,
    Column,
    CondensedTable,
    DerivedTable,
    SessionsTable,
    TableDef,
)

__all__ = [
    "ALL_TABLES",
    "BEHAVIOR_SESSIONS",
    "DATA_VERSIONS",
    "DERIVED_TABLES",
    "EVENT_TABLES",
    "EXCHANGE_RATES",
    "INSTITUTIONS",
    "QUARANTINE",
    "RATE_SCALE",
    "SUBSCRIPTION_CHANGES",
    "Column",
    "CondensedTable",
    "DerivedTable",
    "Engine",
    "SessionsTable",
    "StatementTimeoutError",
    "StoreLockedError",
    "StoreURLError",
    "StoreUnavailableError",
    "TableDef",
    "WriteTransaction",
    "open_engine",
]
