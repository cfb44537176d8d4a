"""SQL text both engines share: quoted identifiers, the statements of a migration, and
those that keep the derived tables (what differs between the engines: :class:`StoreSQL`)."""

from __future__ import annotations

from collections.abc import Collection, Iterable, Mapping, Sequence
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc

from banking_analytics.events import Kind
from banking_analytics.store._tables import (
    Column,
    CondensedTable,
    DerivedTable,
    SessionsTable,
    TableDef,
)

__all__ = [
    "NEW_ROWS",
    "StoreSQL",
    "column_list",
    "count_sql",
    "create_table_sql",
    "derive_statements",
    "migration_statements",
    "quote",
]

#: The name a write transaction gives the new rows of a derived table's source.
NEW_ROWS = "_new_rows"


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
        return [create_table_sql(table, types)]
    # Added columns are nullable, so stored rows stay valid.
    return [
        f"ALTER TABLE {name} ADD COLUMN {quote(c.name)} {types[c.kind]}"
        for c in table.columns
        if c.name not in existing
    ]


def create_table_sql(table: TableDef, types: Mapping[Kind, str], *, temporary: bool = False) -> str:
    """The CREATE TABLE of ``table`` (a temporary one: dropped with the connection)."""
    parts = [_ddl_column(c, types) for c in table.columns]
    if table.primary_key:
        parts.append(f"PRIMARY KEY ({column_list(table.primary_key)})")
    kind = "TEMPORARY TABLE" if temporary else "TABLE"
    return f"CREATE {kind} {quote(table.name)} ({', '.join(parts)})"


def count_sql(table: TableDef) -> str:
    """How many rows ``table`` holds, as the column ``n``."""
    return f"SELECT COUNT(*) AS n FROM {quote(table.name)}"


class StoreSQL:
    """The parts of the derivations' SQL that differ between engines, in PostgreSQL's
    words; an engine overrides what it says otherwise."""

    placeholder = "%s"
    #: What names a stored row for as long as a transaction runs.
    row_key = "first_event_id"

    def value_at(self, value: str, order: Sequence[str], *, last: bool = False) -> str:
        """An aggregate: ``value`` on the group's first row by ``order`` (last with
        ``last``); the order must not tie."""
        keys = ", ".join(f"{key} DESC" if last else key for key in order)
        return f"(ARRAY_AGG({value} ORDER BY {keys}))[1]"

    def slice_of(self, timestamp: str, seconds: int) -> str:
        """The number of the ``seconds``-wide slice of time from the epoch holding
        ``timestamp``, exactly (PostgreSQL's epoch is a numeric)."""
        return f"FLOOR(EXTRACT(EPOCH FROM {timestamp}) / {seconds})"


def derive_statements(
    derived: DerivedTable, new: pa.Table | None, sql: StoreSQL
) -> list[tuple[str, list[Any]]]:
    """The statements, with their parameters, that bring ``derived`` up to date with the
    source rows ``new`` added in this transaction, which the engine names
    :data:`NEW_ROWS`; None: that derive it again from the whole source."""
    relation = None if new is None else NEW_ROWS
    if isinstance(derived, CondensedTable):
        return [(statement, []) for statement in _condense_statements(derived, relation)]
    if isinstance(derived, SessionsTable):
        return session_statements(derived, new, sql)
    raise TypeError(f"no derivation for {type(derived).__name__}")


def _condense_statements(condensed: CondensedTable, new: str | None) -> tuple[str, str]:
    """The DELETE and the INSERT that condense again the keys of the rows of ``new`` (None:
    every key) from all their rows in the source."""
    key = quote(condensed.key)
    where = "" if new is None else f" WHERE {key} IN (SELECT {key} FROM {new})"
    table, columns = quote(condensed.table.name), column_list(condensed.table.column_names)
    changed = " OR ".join(
        f"({term}) IS DISTINCT FROM LAG({term}) OVER w" for term in condensed.terms
    )
    window = f"PARTITION BY {key} ORDER BY {column_list(condensed.order)}"
    insert = (
        f"INSERT INTO {table} ({columns}) SELECT {columns} FROM ("
        f"SELECT {columns}, ROW_NUMBER() OVER w = 1 OR {changed} AS kept "
        f"FROM {quote(condensed.source.name)}{where} WINDOW w AS ({window})) AS ordered "
        "WHERE kept"
    )
    return f"DELETE FROM {table}{where}", insert


_PARTS = "_session_parts"


def session_statements(
    sessions: SessionsTable, new: pa.Table | None, sql: StoreSQL
) -> list[tuple[str, list[Any]]]:
    """The statements that merge the events ``new`` (the engine's :data:`NEW_ROWS`) into
    the stored sessions; None: that replace them by the sessions of the whole source.

    Sessions are merged as parts: a part is a run of a user's events known to lie in one
    session, with its first and last event's time and figures. The new events make parts
    of their own: a client session's events, and each ``gap``-wide slice of time's events
    without one (all less than ``gap`` apart: one session). A stored session is a part
    too, taken out when a new part may join it: one of its client session, or one of the
    user's ending less than ``gap`` before the user's earliest new event and starting
    less than ``gap`` after the latest. The user's parts without a client session id,
    in order of their first event, chain as events do: a part starts a session unless it
    starts less than ``gap`` after the latest end of the parts before it (a new event
    inside a stored session joins it; one that bridges two merges them). Each session's
    figures are merged from its parts', and it replaces the stored parts. Sessions are
    written in order of their end, so that a lookup of the latest skips the older blocks
    of a table by their zone maps (DuckDB) as new events mostly continue the latest.
    """
    seconds = int(sessions.gap.total_seconds())
    gap = f"INTERVAL '{seconds} seconds'"
    table, columns = quote(sessions.table.name), column_list(sessions.table.column_names)
    bit = " ".join(f"WHEN '{f}' THEN {1 << i}" for i, f in enumerate(sessions.features))
    event_id = "CAST(event_id AS UUID)"
    by_time = ["occurred_at", event_id]
    new_parts = (
        "SELECT user_id, session_id, MIN(occurred_at) AS started_at, "
        f"{sql.value_at(event_id, by_time)} AS first_event_id, "
        "MAX(occurred_at) AS last_at, "
        f"{sql.value_at(event_id, by_time, last=True)} AS last_event_id, "
        f"{sql.value_at('duration_s', by_time, last=True)} AS last_duration_s, "
        "COUNT(*) AS events, "
        f"BIT_OR(CASE feature {bit} ELSE 0 END) AS features, "
        f"{sql.value_at('device', by_time)} AS device, "
        f"{sql.value_at('platform', by_time)} AS platform"
    )
    slices = (
        "GROUP BY user_id, session_id, CASE WHEN session_id IS NULL THEN "
        f"{sql.slice_of('occurred_at', seconds)} END"
    )
    ordered = "PARTITION BY user_id, session_id ORDER BY started_at, first_event_id"
    first, last = ["started_at", "first_event_id"], ["last_at", "last_event_id"]

    def merged(parts: str) -> str:
        return (
            f"INSERT INTO {table} ({columns}) "
            "SELECT user_id, session_id, MIN(started_at), "
            f"{sql.value_at('first_event_id', first)}, MAX(last_at), "
            f"{sql.value_at('last_event_id', last, last=True)}, "
            f"{sql.value_at('last_duration_s', last, last=True)}, SUM(events), "
            f"BIT_OR(features), {sql.value_at('device', first)}, "
            f"{sql.value_at('platform', first)} "
            f"FROM (SELECT *, SUM(starts) OVER ({ordered} ROWS UNBOUNDED PRECEDING) AS n "
            "FROM (SELECT *, CASE WHEN session_id IS NOT NULL OR started_at < MAX(last_at) "
            f"OVER ({ordered} ROWS BETWEEN UNBOUNDED PRECEDING AND 1 PRECEDING) + {gap} "
            f"THEN 0 ELSE 1 END AS starts FROM {parts}) AS marked) AS numbered "
            "GROUP BY user_id, session_id, n ORDER BY MAX(last_at)"
        )

    # Sessions are a user's: an event without a user is in none.
    mine = "WHERE user_id IS NOT NULL"
    if new is None:
        whole = f"({new_parts} FROM {quote(sessions.source.name)} {mine} {slices}) AS p"
        # Every event is merged: none waits any longer.
        waiting = f"DELETE FROM {quote(sessions.waiting.name)}"
        return [(f"DELETE FROM {table}", []), (waiting, []), (merged(whole), [])]
    stored = ", ".join(f"s.{quote(c)}" for c in sessions.table.column_names)
    taken = f"SELECT {stored}, s.{sql.row_key} AS stored_key FROM {table} s"
    found = [f"{new_parts}, NULL AS stored_key FROM {NEW_ROWS} {mine} {slices}"]
    params: list[Any] = []
    without_id = pc.is_null(new["session_id"])
    if pc.any(without_id).as_py():
        # The bound on ``last_at`` alone lets DuckDB skip blocks by their zone maps.
        found.insert(
            0,
            f"{taken} JOIN (SELECT user_id, MIN(occurred_at) AS low, MAX(occurred_at) AS high "
            f"FROM {NEW_ROWS} WHERE session_id IS NULL GROUP BY user_id) n "
            f"ON s.user_id = n.user_id WHERE s.session_id IS NULL "
            f"AND s.last_at > {sql.placeholder} "
            f"AND s.last_at + {gap} > n.low AND s.started_at - {gap} < n.high",
        )
        params.append(pc.min(new.filter(without_id)["occurred_at"]).as_py() - sessions.gap)
    if not pc.all(without_id).as_py():
        found.insert(
            0,
            f"{taken} JOIN (SELECT DISTINCT user_id, session_id FROM {NEW_ROWS} "
            "WHERE session_id IS NOT NULL) n "
            "ON s.user_id = n.user_id AND s.session_id = n.session_id",
        )
    return [
        (f"CREATE TEMPORARY TABLE {_PARTS} AS {' UNION ALL '.join(found)}", params),
        (
            f"DELETE FROM {table} WHERE {sql.row_key} IN "
            f"(SELECT stored_key FROM {_PARTS} WHERE stored_key IS NOT NULL)",
            [],
        ),
        (merged(_PARTS), []),
        (f"DROP TABLE {_PARTS}", []),
    ]
