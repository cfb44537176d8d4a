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
    """Raises a table's version (parameter: its name) by one.

    A plain UPDATE, the cheapest statement that does it: on DuckDB an upsert
    added 3.5 ms to a one-event transaction of 3.1 ms, the UPDATE 0.8 ms. The
    migration gives every versioned table its row; a table without one keeps
    no version and reading it is an error, never a stale answer.
    """
    version = quote("version")
    return (
        f"UPDATE {quote(DATA_VERSIONS.name)} SET {version} = {version} + 1 "
        f"WHERE {quote('table_name')} = {placeholder}"
    )
