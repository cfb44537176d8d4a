"""SQL text both engines share: quoted identifiers and the statements of a migration."""

from __future__ import annotations

from collections.abc import Collection, Iterable, Mapping

from banking_analytics.events import Kind
from banking_analytics.store._tables import Column, CondensedTable, TableDef

__all__ = ["column_list", "condense_statements", "migration_statements", "quote"]


def quote(name: str) -> str:
    """A double-quoted identifier (the same rule in DuckDB and PostgreSQL)."""
    return '"' + name.replace('"', '""') + '"'


def column_list(names: Iterable[str]) -> str:
    return ", ".join(quote(n) for n in names)


def _ddl_column(col: Column, types: Mapping[Kind, str]) -> str:
    return f"{quote(col.name)} {types[col.kind]}{'' if col.nullable else ' NOT NULL'}"


def migration_statements(
    table: TableDef, existing: Collection[str], types: Mapping[Kind, str]
) -> list[str]:
    """What brings a stored table (with ``existing`` columns, none if absent) up to ``table``."""
    name = quote(table.name)
    if not existing:
        parts = [_ddl_column(c, types) for c in table.columns]
        if table.primary_key:
            parts.append(f"PRIMARY KEY ({column_list(table.primary_key)})")
        return [f"CREATE TABLE {name} ({', '.join(parts)})"]
    # Added columns are nullable, so stored rows stay valid.
    return [
        f"ALTER TABLE {name} ADD COLUMN {quote(c.name)} {types[c.kind]}"
        for c in table.columns
        if c.name not in existing
    ]


def condense_statements(condensed: CondensedTable, keys: str | None) -> tuple[str, str]:
    """The DELETE and the INSERT that condense again the keys ``keys`` selects (a condition
    on the key column; None: every key) from all their rows in the source."""
    where = "" if keys is None else f" WHERE {keys}"
    table, columns = quote(condensed.table.name), column_list(condensed.table.column_names)
    changed = " OR ".join(
        f"({term}) IS DISTINCT FROM LAG({term}) OVER w" for term in condensed.terms
    )
    window = f"PARTITION BY {quote(condensed.key)} ORDER BY {column_list(condensed.order)}"
    insert = (
        f"INSERT INTO {table} ({columns}) SELECT {columns} FROM ("
        f"SELECT {columns}, ROW_NUMBER() OVER w = 1 OR {changed} AS kept "
        f"FROM {quote(condensed.source.name)}{where} WINDOW w AS ({window})) AS ordered "
        "WHERE kept"
    )
    return f"DELETE FROM {table}{where}", insert
