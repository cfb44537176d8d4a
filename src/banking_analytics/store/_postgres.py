"""PostgreSQL: a shared store that several processes (API replicas) write and read.

Writes go through one connection per engine, in transactions that COPY the
rows in; reads take a connection of their own from a small idle list, so they
run in parallel with the writer and with each other. With ``max_readers`` the
engine holds at most that many read connections: a read beyond them waits for
one to come free (each read holds its connection for one statement only). A transaction-level
advisory lock per table makes writers of different processes take turns, so
the check for stored ids and the insert never interleave with another writer.
"""

from __future__ import annotations

import threading
import weakref
from collections.abc import Iterator, Sequence
from contextlib import ExitStack, contextmanager
from datetime import datetime
from typing import Any

import psycopg
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pa_csv
from psycopg.conninfo import conninfo_to_dict
from psycopg.pq import TransactionStatus
from psycopg.types.string import TextLoader

from banking_analytics.events import Kind
from banking_analytics.store._engine import Engine, WriteTransaction
from banking_analytics.store._errors import (
    StatementTimeoutError,
    StoreUnavailableError,
    StoreURLError,
)
from banking_analytics.store._postgres_results import rows_to_arrow
from banking_analytics.store._postgres_url import parse_postgres_url
from banking_analytics.store._sql import (
    NEW_ROWS,
    StoreSQL,
    column_list,
    create_table_sql,
    derive_statements,
    migration_statements,
    quote,
)
from banking_analytics.store._tables import DerivedTable, TableDef
from banking_analytics.store._versions import with_data_versions

__all__ = ["PostgresEngine"]

_COLUMN_TYPES: dict[Kind, str] = {
    Kind.IDENTIFIER: "text",
    Kind.TEXT: "text",
    Kind.ENUM: "text",
    Kind.UUID: "uuid",
    Kind.JSON: "jsonb",
    Kind.FLOAT: "double precision",
    Kind.INTEGER: "bigint",
    Kind.BOOLEAN: "boolean",
    Kind.TIMESTAMP: "timestamptz",
}

#: Idle reader connections kept for reuse; more concurrent readers connect and disconnect.
_MAX_IDLE_READERS = 8
#: Rows per CSV piece sent to COPY: bounds memory, and lets the server parse one piece
#: while the next is formatted.
_COPY_BATCH_ROWS = 50_000
#: First key of the two-key advisory lock taken while creating or migrating a schema's
#: tables (the second is the schema's name hashed).
_MIGRATION_LOCK = 0x62_61_6E_6B  # "bank"

Connection = psycopg.Connection[tuple[Any, ...]]


def _csv(batch: pa.RecordBatch) -> pa.Buffer:
    # Arrow quotes every string and leaves nulls empty, which is COPY's CSV rule:
    # "" is an empty string, an empty field is NULL.
    sink = pa.BufferOutputStream()
    pa_csv.write_csv(batch, sink, pa_csv.WriteOptions(include_header=False))
    return sink.getvalue()


def _without_time_zones(rows: pa.Table) -> pa.Table:
    """Timestamps as UTC wall time, which the writer's session (TimeZone UTC) reads back.

    Arrow writes zone-aware timestamps to CSV about 12 times slower than naive ones.
    """
    schema = pa.schema(
        [
            f.with_type(pa.timestamp(f.type.unit)) if pa.types.is_timestamp(f.type) else f
            for f in rows.schema
        ]
    )
    return rows.cast(schema)


def _copy(conn: Connection, table: TableDef, rows: pa.Table) -> None:
    """Append rows with one COPY (PostgreSQL parses each column into its type)."""
    if rows.num_rows == 0:
        return
    statement = (
        f"COPY {quote(table.name)} ({column_list(table.column_names)}) FROM STDIN (FORMAT csv)"
    )
    rows = _without_time_zones(rows.select(list(table.column_names)))
    with conn.cursor() as cur, cur.copy(statement) as copy:
        for batch in rows.to_batches(_COPY_BATCH_ROWS):
            copy.write(memoryview(_csv(batch)))


def _one_line(exc: Exception, password: str | None) -> str:
    """The driver's message on one line, without the password should it quote it."""
    message = " ".join(str(exc).split())
    return message.replace(password, "***") if password else message


def _uuid_array(ids: pa.ChunkedArray) -> str:
    """A uuid[] literal: one text parameter instead of one parameter per id."""
    return "{" + ",".join(ids.to_pylist()) + "}"


def _run(conn: Connection, sql: str, params: Sequence[Any]) -> pa.Table:
    with conn.cursor() as cur:
        # Without parameters psycopg leaves the text alone: a literal % stays a %.
        cur.execute(sql, list(params) or None)
        if cur.description is None:
            return pa.table({})
        return rows_to_arrow(cur.description, cur.fetchall())


#: PostgreSQL says the derivations' SQL as :class:`StoreSQL` writes it.
_POSTGRES_SQL = StoreSQL()


class _PostgresTransaction(WriteTransaction):
    placeholder = "%s"

    def __init__(self, conn: Connection) -> None:
        super().__init__()
        self._conn = conn

    def _insert_new(
        self,
        table: TableDef,
        rows: pa.Table,
        low: datetime,
        high: datetime,
        id_tables: Sequence[TableDef],
    ) -> pa.ChunkedArray:
        # No id can be stored by another process between our look-up and our COPY. Every
        # writer takes the locks in the same (name) order, so two cannot wait on each other.
        for locked in sorted(id_tables, key=lambda t: t.name):
            self.lock(locked)
        ids = _uuid_array(rows["event_id"])
        # The planner sees the ids and the window (nothing is prepared) and reads
        # whichever is smaller: the event_id index or the occurred_at range.
        stored = self._conn.execute(
            " UNION ALL ".join(
                f"SELECT event_id::text FROM {quote(t.name)} WHERE event_id = ANY(%s::uuid[]) "
                "AND occurred_at BETWEEN %s AND %s"
                for t in id_tables
            ),
            [ids, low, high] * len(id_tables),
        ).fetchall()
        duplicates = pa.array([event_id for (event_id,) in stored], pa.string())
        is_new = pc.invert(pc.is_in(rows["event_id"], value_set=duplicates))
        _copy(self._conn, table, rows.filter(is_new))
        return is_new

    def _append(self, table: TableDef, rows: pa.Table) -> None:
        _copy(self._conn, table, rows)

    def execute(self, sql: str, params: Sequence[Any] = ()) -> pa.Table:
        return _run(self._conn, sql, params)

    def _run(self, sql: str, params: Sequence[Any]) -> None:
        self._conn.execute(sql, list(params))

    def _derive(self, derived: DerivedTable, new: pa.Table | None) -> None:
        if new is not None:
            # The new rows, in a table of this transaction's own that the statements read.
            read = tuple(c for c in derived.source.columns if c.name in new.column_names)
            rows = TableDef(NEW_ROWS, read)
            self._conn.execute(create_table_sql(rows, _COLUMN_TYPES, temporary=True))
            _copy(self._conn, rows, new)
            self._conn.execute(f"ANALYZE {NEW_ROWS}")
        for sql, params in derive_statements(derived, new, _POSTGRES_SQL):
            self._conn.execute(sql, params)
        if new is not None:
            self._conn.execute(f"DROP TABLE {NEW_ROWS}")

    def lock(self, table: TableDef) -> None:
        # A transaction-level advisory lock keyed by the table's oid: held until commit
        # or rollback, by whichever connection of any process takes it first.
        self._conn.execute(
            "SELECT pg_advisory_xact_lock(%s::regclass::oid::bigint)", [quote(table.name)]
        )


class PostgresEngine(Engine):
    """PostgreSQL, in the database (and optionally the schema) a URL names.

    A transaction is durable once PostgreSQL has committed it: the engine makes
    sure its writes run with ``synchronous_commit`` on. Event tables get an
    index on ``event_id`` (deduplication) and one on ``occurred_at`` (time
    windows).
    """

    dialect = "postgres"
    timezone_names_sql = "SELECT name FROM pg_timezone_names"

    def __init__(self, url: str, *, max_readers: int | None = None) -> None:
        if max_readers is not None and max_readers < 1:
            raise ValueError(f"max_readers must be at least 1, got {max_readers}")
        target = parse_postgres_url(url)
        self.url = target.masked
        self._conninfo, self._password = target.conninfo, target.password
        try:
            conninfo_to_dict(self._conninfo)  # libpq's own check of the URL's parameters
        except psycopg.ProgrammingError as exc:
            raise StoreURLError(
                f"PostgreSQL URL {self.url!r}: {_one_line(exc, self._password)}"
            ) from None
        self._schema = target.schema
        self._idle: list[Connection] = []
        #: The statement timeout each reader's session was given (None: the server's own).
        self._session_timeouts: weakref.WeakKeyDictionary[Connection, float | None] = (
            weakref.WeakKeyDictionary()
        )
        # A connection is made only when none is idle, so holding a permit per read in
        # progress bounds the connections, idle ones included, by ``max_readers``.
        self._read_permits = (
            threading.BoundedSemaphore(max_readers) if max_readers is not None else None
        )
        self._pool_lock = threading.Lock()
        self._write_lock = threading.Lock()
        self._closed = False
        self._writer = self._connect(writer=True)
        if self._schema is not None:
            self._create_schema(self._schema)

    def __repr__(self) -> str:
        return f"PostgresEngine({self.url!r})"

    def _check_open(self) -> None:
        if self._closed:
            raise RuntimeError(f"store {self.url} is closed")

    def _connect(self, *, writer: bool = False) -> Connection:
        try:
            # No server-side prepared statements: their generic plans cannot see the
            # values (an id list, a time window) that decide the best plan.
            conn = psycopg.connect(self._conninfo, autocommit=True, prepare_threshold=None)
        except psycopg.OperationalError as exc:
            raise StoreUnavailableError(
                f"cannot connect to {self.url}: {_one_line(exc, self._password)}"
            ) from None
        for text_type in ("uuid", "json", "jsonb"):
            conn.adapters.register_loader(text_type, TextLoader)
        settings = [("TimeZone", "UTC")]
        if self._schema is not None:
            settings.append(("search_path", quote(self._schema)))
        if writer:
            # A server configured with synchronous_commit off acknowledges commits before
            # they reach disk; our "accepted" means durable, so not for our writes.
            settings.append(("synchronous_commit", "on"))
        conn.execute(
            "SELECT " + ", ".join(["set_config(%s, %s, false)"] * len(settings)),
            [value for setting in settings for value in setting],
        )
        return conn

    @staticmethod
    def _lock_schema(conn: Connection, schema_sql: str, params: Sequence[str] = ()) -> None:
        """Until commit, no other process creates or migrates this schema's tables.

        ``CREATE ... IF NOT EXISTS`` alone is not enough: two processes opening a
        new store at once would both try to create it.
        """
        conn.execute(
            f"SELECT pg_advisory_xact_lock(%s, hashtext({schema_sql}))", [_MIGRATION_LOCK, *params]
        )

    def _create_schema(self, schema: str) -> None:
        with self._transaction() as conn:
            self._lock_schema(conn, "%s", [schema])
            exists = conn.execute("SELECT 1 FROM pg_namespace WHERE nspname = %s", [schema])
            if exists.fetchone() is None:
                # Checked first: CREATE SCHEMA IF NOT EXISTS needs the CREATE right even
                # when the schema is there.
                conn.execute(f"CREATE SCHEMA IF NOT EXISTS {quote(schema)}")

    @contextmanager
    def _transaction(self) -> Iterator[Connection]:
        with self._write_lock, ExitStack() as stack:
            self._check_open()
            yield self._begin_on_writer(stack)

    def _begin_on_writer(self, stack: ExitStack) -> Connection:
        """BEGIN on the writer connection; on a new one if the server had dropped it."""
        try:
            stack.enter_context(self._writer.transaction())
        except psycopg.OperationalError:
            if not self._writer.broken:
                raise
            # Nothing was written yet, so starting again on a new connection is safe.
            self._writer = self._connect(writer=True)
            stack.enter_context(self._writer.transaction())
        return self._writer

    @contextmanager
    def _reader(self, *, fresh: bool = False) -> Iterator[Connection]:
        """A connection for reading (once one of the ``max_readers`` is free)."""
        if self._read_permits is None:
            with self._pooled(fresh=fresh) as conn:
                yield conn
            return
        with self._read_permits, self._pooled(fresh=fresh) as conn:
            yield conn

    @contextmanager
    def _pooled(self, *, fresh: bool) -> Iterator[Connection]:
        """An idle connection unless ``fresh`` (or none is idle), returned to the idle list."""
        with self._pool_lock:
            self._check_open()
            conn = self._idle.pop() if self._idle and not fresh else None
        if conn is None:
            conn = self._connect()
        try:
            self._apply_statement_timeout(conn)
            yield conn
        finally:
            keep = conn.info.transaction_status == TransactionStatus.IDLE
            with self._pool_lock:
                keep = keep and not self._closed and len(self._idle) < _MAX_IDLE_READERS
                if keep:
                    self._idle.append(conn)
            if not keep:
                conn.close()

    def _apply_statement_timeout(self, conn: Connection) -> None:
        """Give a reader's session the engine's statement timeout, if it has another one.

        A session setting, sent only when the timeout changed: every statement on the
        connection then carries it, at no extra round trip.
        """
        seconds = self.statement_timeout
        if self._session_timeouts.get(conn) == seconds:
            return
        if seconds is None:
            conn.execute("RESET statement_timeout")
        else:
            milliseconds = max(round(seconds * 1000), 1)
            conn.execute("SELECT set_config('statement_timeout', %s, false)", [str(milliseconds)])
        self._session_timeouts[conn] = seconds

    @staticmethod
    def _columns(conn: Connection, table: str) -> list[str]:
        rows = conn.execute(
            "SELECT column_name FROM information_schema.columns "
            "WHERE table_schema = current_schema() AND table_name = %s ORDER BY ordinal_position",
            [table],
        ).fetchall()
        return [str(r[0]) for r in rows]

    def migrate(self, tables: Sequence[TableDef]) -> None:
        with self._transaction() as conn:
            self._lock_schema(conn, "current_schema()")
            created = []
            for table in with_data_versions(tables):
                existing = self._columns(conn, table.name)
                created += [] if existing else [table.name]
                for statement in migration_statements(table, existing, _COLUMN_TYPES):
                    conn.execute(statement)
                # A stored table gets the indexes a later version looks its rows up by too
                # (asked first: creating one takes a lock that waits for the table's writers).
                indexed = {
                    str(row[0])
                    for row in conn.execute(
                        "SELECT indexname FROM pg_indexes "
                        "WHERE schemaname = current_schema() AND tablename = %s",
                        [table.name],
                    )
                }
                for column in table.indexed_columns:
                    if (index := f"{table.name}_{column}_idx") not in indexed:
                        conn.execute(
                            f"CREATE INDEX {quote(index)} ON {quote(table.name)} ({quote(column)})"
                        )
            tx = _PostgresTransaction(conn)
            tx.derive_created(created)
            tx.seed_versions(tables)

    def table_columns(self, table: str) -> list[str]:
        with self._reader() as conn:
            return self._columns(conn, table)

    @contextmanager
    def _begin(self) -> Iterator[WriteTransaction]:
        with self._transaction() as conn:
            yield _PostgresTransaction(conn)

    def query(self, sql: str, params: Sequence[Any] = ()) -> pa.Table:
        try:
            with self._reader() as conn:
                try:
                    return _run(conn, sql, params)
                except psycopg.OperationalError as exc:
                    if isinstance(exc, psycopg.errors.QueryCanceled) or not conn.broken:
                        raise
            # The server had dropped the connection (restart, idle timeout): reads are
            # safe to run again, on a new connection.
            with self._reader(fresh=True) as conn:
                return _run(conn, sql, params)
        except psycopg.errors.QueryCanceled:
            seconds = self.statement_timeout
            if seconds is None:
                raise
            raise StatementTimeoutError(seconds) from None

    def close(self) -> None:
        with self._write_lock, self._pool_lock:
            if self._closed:
                return
            self._closed = True
            idle, self._idle = self._idle, []
        for conn in [*idle, self._writer]:
            conn.close()
