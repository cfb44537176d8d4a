"""The engine interface every store implements, and opening one from a URL."""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Collection, Iterator, Sequence
from contextlib import AbstractContextManager, contextmanager
from datetime import datetime, timedelta
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc

from banking_analytics.store._errors import StoreURLError
from banking_analytics.store._postgres_url import POSTGRES_SCHEMES, mask_password
from banking_analytics.store._sql import count_sql, quote
from banking_analytics.store._tables import DERIVED_TABLES, DerivedTable, SessionsTable, TableDef
from banking_analytics.store._versions import bump_version_sql, seed_version_sql

__all__ = ["Engine", "WriteTransaction", "open_engine"]


class WriteTransaction(ABC):
    """Writes inside one transaction; nothing is visible or durable before commit.

    Rows added to a versioned table with :meth:`insert_events` or :meth:`append`
    raise its data version, in this transaction (rows written with
    :meth:`execute` do not: versioned tables take rows through those two).
    """

    #: How the engine's SQL marks a positional parameter (see :meth:`Engine.query`).
    placeholder: str

    def __init__(self) -> None:
        self._grown: set[str] = set()
        #: The rows added to each derived table's source (the columns it reads), by the
        #: derived table's name.
        self._touched: dict[str, list[pa.Table]] = {}

    @property
    def changed_tables(self) -> frozenset[str]:
        """The versioned tables this transaction has added rows to."""
        return frozenset(self._grown)

    def insert_events(
        self,
        table: TableDef,
        rows: pa.Table,
        dedup_window: timedelta,
        *,
        unique_across: Sequence[TableDef] = (),
    ) -> pa.ChunkedArray:
        """Insert rows whose ``event_id`` is not stored yet; return a boolean mask of the new ones.

        Rows must have the table's columns (Arrow types of their kinds) and unique
        event ids. A stored event with the same id and an ``occurred_at`` within
        ``dedup_window`` of the batch's time range makes a row a duplicate, in
        ``table`` or in any of ``unique_across`` (tables sharing its ids).
        """
        if rows.num_rows == 0:
            return pa.chunked_array([pa.array([], pa.bool_())])
        bounds = pc.min_max(rows["occurred_at"])
        low = bounds["min"].as_py() - dedup_window
        high = bounds["max"].as_py() + dedup_window
        is_new = self._insert_new(table, rows, low, high, (table, *unique_across))
        if table.versioned and pc.any(is_new).as_py():
            self._grown.add(table.name)
            self._touch(table, rows.filter(is_new))
        return is_new

    @abstractmethod
    def _insert_new(
        self,
        table: TableDef,
        rows: pa.Table,
        low: datetime,
        high: datetime,
        id_tables: Sequence[TableDef],
    ) -> pa.ChunkedArray:
        """Insert the (non-empty) rows whose id is not stored with ``low <= occurred_at <= high``
        in any of ``id_tables`` (``table`` among them).

        Returns the mask of the rows inserted.
        """

    def append(self, table: TableDef, rows: pa.Table) -> None:
        """Append rows as they are (no deduplication)."""
        if rows.num_rows == 0:
            return
        self._append(table, rows)
        if table.versioned:
            self._grown.add(table.name)
        self._touch(table, rows)

    @abstractmethod
    def _append(self, table: TableDef, rows: pa.Table) -> None:
        """Append the (non-empty) rows as they are."""

    @abstractmethod
    def execute(self, sql: str, params: Sequence[Any] = ()) -> pa.Table:
        """Run one statement in this transaction and return the rows it answers.

        ``sql``, ``params`` and the result's types are as for :meth:`Engine.query`.
        The statement sees this transaction's earlier writes. One that answers no
        rows (an UPDATE without RETURNING, DDL) gives a table without columns.
        """

    @abstractmethod
    def lock(self, table: TableDef) -> None:
        """Until this transaction ends, no other transaction that locks ``table`` runs.

        Any process's. What makes a read followed by a write that depends on it
        (the next number of a sequence, which ids are stored) safe: lock, then read.
        """

    @abstractmethod
    def _run(self, sql: str, params: Sequence[Any]) -> None:
        """Run a statement whose answer is not needed: no result to convert, and
        cheaper than :meth:`execute` for the statements of every commit."""

    def _touch(self, table: TableDef, rows: pa.Table) -> None:
        """Note the rows added to a derived table's source."""
        for derived in DERIVED_TABLES:
            if derived.source.name == table.name:
                new = rows.select(list(derived.reads))
                self._touched.setdefault(derived.table.name, []).append(new)

    def _derive_touched(self) -> None:
        """Bring every derived table up to date with the rows this transaction added to
        its source (a sessions table: once enough of them wait)."""
        for derived in DERIVED_TABLES:
            added = self._touched.pop(derived.table.name, None)
            if not added:
                continue
            # Writers of the source take turns here: each derives from every row
            # committed before it, and its own.
            self.lock(derived.table)
            new = pa.concat_tables(added).combine_chunks()
            if isinstance(derived, SessionsTable):
                waiting = int(self.execute(count_sql(derived.waiting))["n"][0].as_py())
                if waiting + new.num_rows < derived.merge_at:
                    self._append(derived.waiting, new)
                    continue
                new = pa.concat_tables([new, self._take_waiting(derived, new.schema)])
            self._derive(derived, new)
            self._grown.add(derived.table.name)

    def merge_waiting(self, sessions: SessionsTable) -> None:
        """Merge the events waiting for ``sessions`` into it."""
        self.lock(sessions.table)
        waiting = self._take_waiting(sessions, None)
        if waiting.num_rows:
            self._derive(sessions, waiting)
            self._grown.add(sessions.table.name)

    def _take_waiting(self, sessions: SessionsTable, schema: pa.Schema | None) -> pa.Table:
        """The events waiting for ``sessions`` (in ``schema``), no longer waiting."""
        waiting = self.execute(f"SELECT * FROM {quote(sessions.waiting.name)}")
        self._run(f"DELETE FROM {quote(sessions.waiting.name)}", [])
        return waiting if schema is None else waiting.select(schema.names).cast(schema)

    def derive_created(self, created: Collection[str]) -> None:
        """Derive each derived table among ``created`` (just made by a migration: a store
        written before it existed) again from its whole source."""
        for derived in DERIVED_TABLES:
            if derived.table.name in created:
                self._derive(derived, None)

    @abstractmethod
    def _derive(self, derived: DerivedTable, new: pa.Table | None) -> None:
        """Run ``derived``'s statements (see
        :func:`~banking_analytics.store._sql.derive_statements`) over the source rows
        ``new`` added in this transaction (None: the whole source)."""

    def seed_versions(self, tables: Sequence[TableDef]) -> None:
        """Give each versioned table among ``tables`` a version (0) unless it has one."""
        for table in tables:
            if table.versioned:
                self._run(seed_version_sql(self.placeholder), [table.name, 0])

    def _bump_versions(self) -> None:
        """Raise the version of every table this transaction added rows to.

        Tables in name order, so that two transactions never wait for each other's
        version rows in opposite orders (a deadlock, on PostgreSQL).
        """
        for name in sorted(self._grown):
            self._run(bump_version_sql(self.placeholder), [name])


class Engine(ABC):
    """A place events are stored and queried: DuckDB, PostgreSQL, Spark."""

    #: sqlglot dialect name of the engine's SQL.
    dialect: str
    url: str
    _statement_timeout: float | None = None

    @property
    def statement_timeout(self) -> float | None:
        """Seconds a read (:meth:`query`) may run before the engine stops it and raises
        :class:`StatementTimeoutError`; None (the default) lets reads run to the end.

        Writes are never stopped: an ingest transaction that has started finishes.
        """
        return self._statement_timeout

    @statement_timeout.setter
    def statement_timeout(self, seconds: float | None) -> None:
        if seconds is not None and not seconds > 0:
            raise ValueError(f"statement_timeout must be positive seconds or None, got {seconds}")
        self._statement_timeout = seconds

    #: Lists the engine's tz database: one row per name it accepts, in a column ``name``.
    timezone_names_sql: str

    @abstractmethod
    def migrate(self, tables: Sequence[TableDef]) -> None:
        """Create missing tables and add missing columns (schemas only grow).

        When a table is versioned, also the data versions table, with a version for
        each versioned table that has none.
        """

    @contextmanager
    def begin(self) -> Iterator[WriteTransaction]:
        """A write transaction: committed durably on normal exit, rolled back on error.

        Just before it commits, each derived table whose source it added rows to is
        brought up to date with them, and the data version of each versioned table it
        added rows to (those derived tables too) is raised in it: a reader sees the new
        rows, the derived ones and the new versions together, or none of them.
        """
        with self._begin() as tx:
            yield tx
            tx._derive_touched()
            tx._bump_versions()

    def bring_up_to_date(self, tables: Collection[str]) -> None:
        """Merge the events waiting for each sessions table among ``tables`` (see
        :class:`~banking_analytics.store.SessionsTable`): what a reader of one does first."""
        for derived in DERIVED_TABLES:
            if isinstance(derived, SessionsTable) and derived.table.name in tables:
                found = self.query(count_sql(derived.waiting))
                if found["n"][0].as_py():
                    with self.begin() as tx:
                        tx.merge_waiting(derived)

    @abstractmethod
    def _begin(self) -> AbstractContextManager[WriteTransaction]:
        """A write transaction, as :meth:`begin` gives it, without the versions."""

    @abstractmethod
    def query(self, sql: str, params: Sequence[Any] = ()) -> pa.Table:
        """Run a read query; safe from any thread, and may run while a write is in progress.

        ``sql`` is in the engine's :attr:`dialect`, with positional placeholders
        as that sqlglot dialect renders ``sqlglot.exp.Placeholder()``: ``?`` for
        DuckDB, ``%s`` for PostgreSQL. Timestamps come back as
        ``timestamp[us, tz=UTC]``, UUIDs and JSON as strings.
        """

    def timezone_names(self) -> frozenset[str]:
        """The timezone names the engine's SQL accepts (its own tz database's)."""
        return frozenset(self.query(self.timezone_names_sql).column("name").to_pylist())

    @abstractmethod
    def table_columns(self, table: str) -> list[str]:
        """Column names of a stored table, or an empty list if it does not exist."""

    @abstractmethod
    def close(self) -> None:
        """Release the store; later calls fail."""

    def __enter__(self) -> Engine:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def open_engine(url: str, *, max_readers: int | None = None) -> Engine:
    """Open the engine a URL names.

    ``duckdb:///path/file.duckdb``, ``duckdb:///:memory:``, or
    ``postgresql://user:password@host:port/database?schema=NAME`` (also ``postgres://``).
    ``max_readers`` bounds the read connections a PostgreSQL store holds (reads
    beyond it wait for one); DuckDB's reads share one in-process database.
    """
    scheme, sep, rest = url.partition("://")
    shown = mask_password(url)
    if not sep:
        raise StoreURLError(f"store URL {shown!r} has no scheme; try duckdb:///path/file.duckdb")
    if scheme == "duckdb":
        from banking_analytics.store._duckdb import DuckDBEngine

        return DuckDBEngine(url, _duckdb_path(url, rest))
    if scheme in POSTGRES_SCHEMES:
        return _open_postgres(url, max_readers)
    raise StoreURLError(
        f"no engine for scheme {scheme!r} in {shown!r}; supported: duckdb, postgresql"
    )


def _open_postgres(url: str, max_readers: int | None) -> Engine:
    try:
        from banking_analytics.store._postgres import PostgresEngine
    except ModuleNotFoundError as exc:
        if not (exc.name or "").startswith("psycopg"):
            raise
        raise StoreURLError(
            "PostgreSQL stores need psycopg: pip install 'banking-analytics[postgres]'"
        ) from None
    return PostgresEngine(url, max_readers=max_readers)


def _duckdb_path(url: str, rest: str) -> str:
    # duckdb:///relative.duckdb and duckdb:////abs/path.duckdb, as SQLAlchemy spells file URLs.
    if not rest.startswith("/") or rest == "/":
        raise StoreURLError(f"DuckDB URL {url!r} must look like duckdb:///path/file.duckdb")
    path = rest[1:]
    return path
