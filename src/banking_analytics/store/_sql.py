"""SQL text both engines share: quoted identifiers and the statements of a migration."""

from __future__ import annotations

from collections.abc import Collection, Iterable, Mapping, Sequence
from datetime import datetime
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


class StoreSQL:
    """The parts of the derivations' SQL that differ between engines, in PostgreSQL's
    words; an engine overrides what it says otherwise."""

    placeholder = "%s"

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
    :data:`NEW_ROWS`; None: derive it from the whole source, the table being empty."""
    relation = None if new is None else NEW_ROWS
    if isinstance(derived, CondensedTable):
        return [(statement, []) for statement in _condense_statements(derived, relation)]
    if isinstance(derived, SessionsTable):
        low = None if new is None else pc.min(new["occurred_at"]).as_py()
        return session_statements(derived, relation, low, sql)
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
    sessions: SessionsTable, new: str | None, low: datetime | None, sql: StoreSQL
) -> list[tuple[str, list[Any]]]:
    """The statements that merge the events of ``new`` (None: the whole source) into the
    stored sessions.

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
    figures are merged from its parts', and it replaces the stored parts.
    """
    gap = f"INTERVAL '{int(sessions.gap.total_seconds())} seconds'"
    source = quote(sessions.source.name)
    table, columns = quote(sessions.table.name), column_list(sessions.table.column_names)
    events = new or source
    bit = " ".join(f"WHEN '{f}' THEN {1 << i}" for i, f in enumerate(sessions.features))
    by_time = ["occurred_at", "event_id"]
    new_parts = (
        "SELECT user_id, session_id, MIN(occurred_at) AS started_at, "
        f"{sql.value_at('event_id', by_time)} AS first_event_id, "
        "MAX(occurred_at) AS last_at, "
        f"{sql.value_at('event_id', by_time, last=True)} AS last_event_id, "
        f"{sql.value_at('duration_s', by_time, last=True)} AS last_duration_s, "
        "COUNT(*) AS events, "
        f"BIT_OR(CASE feature {bit} ELSE 0 END) AS features, "
        f"{sql.value_at('device', by_time)} AS device, "
        f"{sql.value_at('platform', by_time)} AS platform, "
        "FALSE AS stored "
        f"FROM {events} GROUP BY user_id, session_id, CASE WHEN session_id IS NULL THEN "
        f"{sql.slice_of('occurred_at', int(sessions.gap.total_seconds()))} END"
    )
    parts = new_parts
    params: list[Any] = []
    if new is not None and low is not None:
        stored = ", ".join(f"s.{quote(c)}" for c in sessions.table.column_names)
        # The bound on ``last_at`` alone lets DuckDB skip row groups by their zone maps.
        parts = (
            f"WITH bounds AS (SELECT user_id, MIN(occurred_at) AS low, "
            f"MAX(occurred_at) AS high FROM {new} WHERE session_id IS NULL GROUP BY user_id), "
            f"clients AS (SELECT DISTINCT user_id, session_id FROM {new} "
            "WHERE session_id IS NOT NULL) "
            f"SELECT {stored}, TRUE AS stored FROM {table} s "
            "JOIN bounds n ON s.user_id = n.user_id "
            f"WHERE s.session_id IS NULL AND s.last_at > {sql.placeholder} "
            f"AND s.last_at + {gap} > n.low AND s.started_at - {gap} < n.high "
            f"UNION ALL SELECT {stored}, TRUE FROM {table} s "
            "JOIN clients n ON s.user_id = n.user_id AND s.session_id = n.session_id "
            f"UNION ALL {new_parts}"
        )
        params = [low - sessions.gap]
    ordered = "PARTITION BY user_id, session_id ORDER BY started_at, first_event_id"
    first, last = ["started_at", "first_event_id"], ["last_at", "last_event_id"]
    merged = (
        f"INSERT INTO {table} ({columns}) "
        "SELECT user_id, session_id, MIN(started_at), "
        f"{sql.value_at('first_event_id', first)}, MAX(last_at), "
        f"{sql.value_at('last_event_id', last, last=True)}, "
        f"{sql.value_at('last_duration_s', last, last=True)}, SUM(events), BIT_OR(features), "
        f"{sql.value_at('device', first)}, {sql.value_at('platform', first)} "
        "FROM (SELECT *, SUM(starts) OVER (" + ordered + " ROWS UNBOUNDED PRECEDING) AS n "
        "FROM (SELECT *, CASE WHEN session_id IS NOT NULL OR started_at < MAX(last_at) OVER ("
        + ordered
        + f" ROWS BETWEEN UNBOUNDED PRECEDING AND 1 PRECEDING) + {gap} THEN 0 ELSE 1 END "
        f"AS starts FROM {_PARTS}) AS marked) AS numbered GROUP BY user_id, session_id, n"
    )
    return [
        (f"CREATE TEMPORARY TABLE {_PARTS} AS {parts}", params),
        (
            f"DELETE FROM {table} WHERE first_event_id IN "
            f"(SELECT first_event_id FROM {_PARTS} WHERE stored)",
            [],
        ),
        (merged, []),
        (f"DROP TABLE {_PARTS}", []),
    ]
