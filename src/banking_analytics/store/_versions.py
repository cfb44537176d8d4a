"""The statements that keep data versions (see :data:`DATA_VERSIONS`).

Written as text, not built with sqlglot: ingestion imports the store, and a
process that only ingests should not pay for importing a SQL compiler.
"""

from __future__ import annotations

from collections.abc import Sequence
from functools import lru_cache

from banking_analytics.store._sql import column_list, quote
from banking_analytics.store._tables import DATA_VERSIONS, TableDef

__all__ = ["bump_version_sql", "seed_version_sql", "with_data_versions"]


def with_data_versions(tables: Sequence[TableDef]) -> list[TableDef]:
    """The tables a migration creates: ``tables``, and the versions table if one is versioned."""
    if any(t.versioned for t in tables) and DATA_VERSIONS not in tables:
        return [*tables, DATA_VERSIONS]
    return list(tables)


def _insert(placeholder: str) -> str:
    """One version row, its table's name and version given as parameters."""
    return (
        f"INSERT INTO {quote(DATA_VERSIONS.name)} ({column_list(DATA_VERSIONS.column_names)}) "
        f"VALUES ({placeholder}, {placeholder})"
    )


@lru_cache(maxsize=4)
def seed_version_sql(placeholder: str) -> str:
    """Gives a table (parameters: its name, 0) a version unless it has one."""
    return f"{_insert(placeholder)} ON CONFLICT DO NOTHING"


@lru_cache(maxsize=4)
def bump_version_sql(placeholder: str) -> str:
    """Raises a table's version (parameters: its name, 1) by one; a table without one gets 1.

    An upsert rather than an UPDATE, so that a table whose version row is missing
    (created by an older release and not migrated since) still gets a version.
    """
    version = quote("version")
    return (
        f"{_insert(placeholder)} ON CONFLICT ({quote('table_name')}) "
        f"DO UPDATE SET {version} = {quote(DATA_VERSIONS.name)}.{version} + 1"
    )
