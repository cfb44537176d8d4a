"""The embedded default engine: one DuckDB file."""

from __future__ import annotations

import os
import re
import threading
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from datetime import datetime
from pathlib import Path
from typing import Any

import duckdb
import pyarrow as pa
import pyarrow.compute as pc

from banking_analytics.events import Kind
from banking_analytics.store._engine import Engine, WriteTransaction
from banking_analytics.store._errors import StatementTimeoutError, StoreLockedError
from banking_analytics.store._sql import (
    NEW_ROWS,
    StoreSQL,
    column_list,
    derive_statements,
    migration_statements,
    quote,
)
from banking_analytics.store._tables import DerivedTable, TableDef
from banking_analytics.store._versions import with_data_versions
from banking_analytics.store._watchdog import Watchdog

__all__ = ["DuckDBEngine"]

_COLUMN_TYPES: dict[Kind, str] = {
    Kind.IDENTIFIER: "VARCHAR",
    Kind.TEXT: "VARCHAR",
    Kind.ENUM: "VARCHAR",
    Kind.UUID: "UUID",
    Kind.JSON: "JSON",
    Kind.FLOAT: "DOUBLE",
    Kind.INTEGER: "BIGINT",
    Kind.BOOLEAN: "BOOLEAN",
    Kind.TIMESTAMP: "TIMESTAMPTZ",
}

CHECKPOINT_THRESHOLD = "256MB"


class _DuckDBSQL(StoreSQL):
    placeholder = "?"
    # Row ids are ranges of blocks: deleting by them skips the blocks outside the range.
    row_key = "rowid"

    def value_at(self, value: str, order: Sequence[str], *, last: bool = False) -> str:
        # The engine's own aggregate: no list built per group.
        key = order[0] if len(order) == 1 else f"({', '.join(order)})"
        return f"{'ARG_MAX_NULL' if last else 'ARG_MIN_NULL'}({value}, {key})"

    def slice_of(self, timestamp: str, seconds: int) -> str:
        return f"EPOCH_US({timestamp}) // {seconds * 1_000_000}"


_DUCKDB_SQL = _DuckDBSQL()
#: How long closing waits for reads under way to end.
_CLOSE_WAIT_S = 60.0
#: Reader cursors kept idle for reuse; more concurrent readers make and drop their own.
_MAX_IDLE_READERS = 8

# Arrow carries UUIDs and JSON as strings; these kinds need a cast on the way in.
_CAST_ON_INSERT = {Kind.UUID, Kind.JSON}


#: How DuckDB answers a statement that returns no rows: the count of rows it changed
#: (INSERT, UPDATE, DELETE without RETURNING; CREATE), or whether it succeeded (SET, DROP...).
_STATUS_COLUMNS = (pa.schema([("Count", pa.int64())]), pa.schema([("Success", pa.bool_())]))


def _is_status(sql: str, answer: pa.Table) -> bool:
    """Whether ``answer`` is DuckDB's status of a statement that returns no rows.

    A SELECT answers rows, whatever their names; only a RETURNING list of one
    BIGINT column named ``Count`` would be mistaken for a status.
    """
    return (
        any(answer.schema.equals(status) for status in _STATUS_COLUMNS)
        and duckdb.extract_statements(sql)[0].type != duckdb.StatementType.SELECT
    )


_file_write_locks: dict[str, threading.Lock] = {}
_file_write_locks_guard = threading.Lock()


def _write_lock_of(path: str) -> threading.Lock:
    """The write lock of a database: one per file, shared by this process's engines on it.

    Engines opening the same file share one DuckDB database, where two write
    transactions may both commit (appends never conflict), so a read followed by
    a write that depends on it would race without a lock common to both.
    """
    if path == ":memory:":
        return threading.Lock()
    with _file_write_locks_guard:
        return _file_write_locks.setdefault(os.path.realpath(path), threading.Lock())


def _select_list(table: TableDef) -> str:
    return ", ".join(
        f"CAST({quote(c.name)} AS {_COLUMN_TYPES[c.kind]})"
        if c.kind in _CAST_ON_INSERT
        else quote(c.name)
        for c in table.columns
    )


class _DuckDBTransaction(WriteTransaction):
    placeholder = "?"

    def __init__(self, cursor: duckdb.DuckDBPyConnection) -> None:
        super().__init__()
        self._cur = cursor

    def _insert_new(
        self,
        table: TableDef,
        rows: pa.Table,
        low: datetime,
        high: datetime,
        id_tables: Sequence[TableDef],
    ) -> pa.ChunkedArray:
        incoming = rows.select(list(table.column_names))
        self._cur.register("_incoming", incoming)
        try:
            # One semi-join over all the tables (the incoming ids are hashed once); the
            # time bound, pushed into each, lets DuckDB skip row groups by their zone maps.
            stored_ids = " UNION ALL ".join(
                f"SELECT event_id, occurred_at FROM {quote(t.name)}" for t in id_tables
            )
            stored = self._cur.sql(
                f"SELECT CAST(event_id AS VARCHAR) AS event_id FROM ({stored_ids}) "
                "WHERE occurred_at BETWEEN ? AND ? "
                "AND event_id IN (SELECT CAST(event_id AS UUID) FROM _incoming)",
                params=[low, high],
            ).to_arrow_table()
            if stored.num_rows == 0:  # the usual case: no need to match the ids
                is_new = pa.chunked_array([pa.repeat(pa.scalar(True), rows.num_rows)])
            else:
                is_new = pc.invert(pc.is_in(rows["event_id"], value_set=stored["event_id"]))
                self._cur.unregister("_incoming")
                self._cur.register("_incoming", incoming.filter(is_new))
            # A plain INSERT, not one with RETURNING: only then does DuckDB write the
            # full row groups of a large transaction straight into the database file
            # instead of into the WAL (0.9 s less per million events at commit).
            self._insert_from(table, "_incoming")
        finally:
            self._cur.unregister("_incoming")
        return is_new

    def _append(self, table: TableDef, rows: pa.Table) -> None:
        self._cur.register("_rows", rows.select(list(table.column_names)))
        try:
            self._insert_from(table, "_rows")
        finally:
            self._cur.unregister("_rows")

    def _insert_from(self, table: TableDef, registered: str) -> None:
        """Insert every row of the Arrow table registered as ``registered``."""
        self._cur.execute(
            f"INSERT INTO {quote(table.name)} ({column_list(table.column_names)}) "
            f"SELECT {_select_list(table)} FROM {registered}"
        )

    def execute(self, sql: str, params: Sequence[Any] = ()) -> pa.Table:
        answer = self._cur.sql(sql, params=list(params) or None).to_arrow_table()
        return pa.table({}) if _is_status(sql, answer) else answer

    def _run(self, sql: str, params: Sequence[Any]) -> None:
        self._cur.execute(sql, list(params))

    def _derive(self, derived: DerivedTable, new: pa.Table | None) -> None:
        if new is not None:
            self._cur.register(NEW_ROWS, new)
        try:
            for sql, params in derive_statements(derived, new, _DUCKDB_SQL):
                self._cur.execute(sql, params)
        finally:
            if new is not None:
                self._cur.unregister(NEW_ROWS)

    def lock(self, table: TableDef) -> None:
        # Nothing to take: a database's write transactions already run one at a time
        # (the write lock its engines share), and DuckDB lets only one process open a
        # file for writing.
        pass


#: DuckDB's message when another process holds a file's lock names the holder's PID.
_LOCK_HOLDER_PID = re.compile(r"\(PID (\d+)\)")


def _connect(path: str) -> duckdb.DuckDBPyConnection:
    """Open a DuckDB file; a file another process holds is :class:`StoreLockedError`."""
    try:
        return duckdb.connect(path)
    except duckdb.IOException as exc:
        if "Could not set lock" not in str(exc):
            raise
        pid = _LOCK_HOLDER_PID.search(str(exc))
        raise StoreLockedError(
            str(Path(path).resolve()), int(pid.group(1)) if pid else None
        ) from None


class DuckDBEngine(Engine):
    """DuckDB in one file (or in memory). One writer at a time per file; readers in parallel.

    DuckDB writes its WAL and fsyncs it at every commit, so a committed
    transaction survives the process being killed.
    """

    dialect = "duckdb"
    timezone_names_sql = "SELECT name FROM pg_timezone_names()"

    def __init__(self, url: str, path: str) -> None:
        self.url = url
        if path != ":memory:":
            Path(path).parent.mkdir(parents=True, exist_ok=True)
        self._con = _connect(path)
        # DuckDB checkpoints whenever the WAL passes 16 MB; during bulk loads that
        # costs ~60% of the write time. At 256 MB a crash replays at most that much
        # WAL on reopen (measured: 0.8 s for 150 MB).
        self._con.execute(f"SET checkpoint_threshold = '{CHECKPOINT_THRESHOLD}'")
        self._write_lock = _write_lock_of(path)
        self._closed = False
        self._readers_lock = threading.Lock()
        self._writer_cursor = self._cursor()
        # Reader cursors kept for reuse: making one and setting its time zone costs
        # about as much as a small dashboard query.
        self._idle_readers: list[duckdb.DuckDBPyConnection] = []
        # DuckDB has no statement timeout of its own (see Engine.statement_timeout).
        self._watchdog = Watchdog(f"duckdb-watchdog {url}")

    def _cursor(self) -> duckdb.DuckDBPyConnection:
        """A cursor of its own for the calling thread (DuckDB cursors are not shared)."""
        # Under the readers' lock: closing sets ``_closed`` under it, and a connection
        # closed while another thread makes or sets up a cursor of it refuses ("busy").
        with self._readers_lock:
            if self._closed:
                raise RuntimeError(f"store {self.url} is closed")
            cur = self._con.cursor()
            cur.execute("SET TimeZone = 'UTC'")
            # The Python client's progress bar (on by default, per cursor) prints to the
            # terminal of whatever program embeds the store, and it takes the GIL while a
            # query runs: with Python busy in other threads (a dashboard's parts), the
            # 15-minute sync counts took 247 ms instead of 171 (54 ms on an idle process).
            cur.execute("SET enable_progress_bar = false")
        return cur

    def migrate(self, tables: Sequence[TableDef]) -> None:
        with self._transaction() as cur:
            created = []
            for table in with_data_versions(tables):
                existing = set(self._columns(cur, table.name))
                created += [] if existing else [table.name]
                for statement in migration_statements(table, existing, _COLUMN_TYPES):
                    cur.execute(statement)
            tx = _DuckDBTransaction(cur)
            tx.derive_created(created)
            tx.seed_versions(tables)

    @staticmethod
    def _columns(cur: duckdb.DuckDBPyConnection, table: str) -> list[str]:
        rows = cur.execute(
            "SELECT column_name FROM information_schema.columns "
            "WHERE table_name = ? ORDER BY ordinal_position",
            [table],
        ).fetchall()
        return [str(r[0]) for r in rows]

    def table_columns(self, table: str) -> list[str]:
        cur = self._cursor()
        try:
            return self._columns(cur, table)
        finally:
            cur.close()

    @contextmanager
    def _transaction(self) -> Iterator[duckdb.DuckDBPyConnection]:
        with self._write_lock:
            if self._closed:
                raise RuntimeError(f"store {self.url} is closed")
            cur = self._writer_cursor
            cur.execute("BEGIN TRANSACTION")
            try:
                yield cur
            except BaseException:
                cur.execute("ROLLBACK")
                raise
            else:
                cur.execute("COMMIT")

    @contextmanager
    def _begin(self) -> Iterator[WriteTransaction]:
        with self._transaction() as cur:
            yield _DuckDBTransaction(cur)

    def query(self, sql: str, params: Sequence[Any] = ()) -> pa.Table:
        with self._readers_lock:
            cur = self._idle_readers.pop() if self._idle_readers else None
        if cur is None:
            cur = self._cursor()
        seconds = self.statement_timeout
        watch = None if seconds is None else self._watchdog.watch(seconds, cur.interrupt)
        try:
            return cur.sql(sql, params=list(params) or None).to_arrow_table()
        except duckdb.ConnectionException:
            if not self._closed:
                raise
            # A read that began as another thread closed the store.
            raise RuntimeError(f"store {self.url} is closed") from None
        except duckdb.InterruptException:
            if watch is None or not watch.fired:
                raise
            raise StatementTimeoutError(watch.seconds) from None
        finally:
            if watch is not None:
                self._watchdog.finish(watch)
            with self._readers_lock:
                # A cursor the watchdog interrupted is not trusted with another query.
                keep = (
                    not self._closed
                    and len(self._idle_readers) < _MAX_IDLE_READERS
                    and not (watch is not None and watch.fired)
                )
                if keep:
                    self._idle_readers.append(cur)
            if not keep:
                cur.close()

    def close(self) -> None:
        # The write lock: a transaction under way (another thread's) ends first.
        with self._write_lock:
            if self._closed:
                return
            with self._readers_lock:
                self._closed = True
                idle, self._idle_readers = self._idle_readers, []
            for cur in idle:
                cur.close()
            self._writer_cursor.close()
            self._close_connection()
            self._watchdog.close()

    def _close_connection(self) -> None:
        """Close the connection once no read started before closing still runs: DuckDB
        refuses to close a connection while a cursor of it runs a query ("busy"), and no
        new one can start (``_closed`` is set)."""
        deadline = time.monotonic() + _CLOSE_WAIT_S
        while True:
            try:
                self._con.close()
                return
            except duckdb.ResourceInUseException:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.01)
