"""What only the PostgreSQL engine has: URLs and passwords, indexes, several writers, types."""

from __future__ import annotations

import socket
import subprocess
import sys
import threading
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime

import psycopg
import pyarrow as pa
import pytest

from banking_analytics import BankingPerformanceAnalytics
from banking_analytics.events import Kind, arrow_type
from banking_analytics.store import (
    ALL_TABLES,
    BEHAVIOR_SESSIONS,
    EVENT_TABLES,
    SUBSCRIPTION_CHANGES,
    Engine,
    StoreUnavailableError,
    StoreURLError,
    open_engine,
)
from banking_analytics.store._postgres_url import mask_password, parse_postgres_url
from postgres_server import missing, start_throwaway_cluster
from sample_events import behavior_events

pytestmark = pytest.mark.postgres

SOURCE, CHANGES = SUBSCRIPTION_CHANGES.source.name, SUBSCRIPTION_CHANGES.table.name
SECRET = "s3cr#t?"  # libpq takes # and ? in a password as they are


@pytest.fixture
def pg_url(postgres_store_url: str) -> str:
    return postgres_store_url


@pytest.fixture
def engine(pg_url: str) -> Iterator[Engine]:
    with open_engine(pg_url) as e:
        yield e


def with_password(url: str, password: str) -> str:
    return url.replace("postgresql://postgres@", f"postgresql://postgres:{password}@", 1)


# -- URLs ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("url", "masked"),
    [
        ("postgresql://u:pw@h:5432/db?schema=s", "postgresql://u:***@h:5432/db?schema=s"),
        ("postgres://u@h/db?password=pw&sslmode=disable",
         "postgres://u@h/db?password=***&sslmode=disable"),
        ("postgresql://h/db", "postgresql://h/db"),
    ],
)  # fmt: skip
def test_passwords_are_masked(url: str, masked: str) -> None:
    assert mask_password(url) == masked


def test_schema_parameter_is_ours_and_the_rest_goes_to_libpq() -> None:
    parsed = parse_postgres_url("postgresql://u:p%2Bq@h:1/db?sslmode=disable&schema=a%20b&x=1+2")
    assert parsed.schema == "a b"
    assert parsed.conninfo == "postgresql://u:p%2Bq@h:1/db?sslmode=disable&x=1+2"
    assert parsed.password == "p+q"
    assert parsed.masked == "postgresql://u:***@h:1/db?sslmode=disable&schema=a%20b&x=1+2"


@pytest.mark.parametrize(
    ("url", "message"),
    [
        ("postgresql://h/db?schema=a&schema=b", "at most one non-empty schema"),
        ("postgresql://h/db?schema=", "at most one non-empty schema"),
        (f"postgresql://u:{SECRET}@h/db?bogus=1", 'invalid URI query parameter: "bogus"'),
    ],
)
def test_malformed_urls_are_url_errors(url: str, message: str) -> None:
    with pytest.raises(StoreURLError, match=message) as caught:
        open_engine(url)
    assert SECRET not in str(caught.value)


@contextmanager
def port_nobody_listens_on() -> Iterator[int]:
    """A local port that refuses connections: bound, never listening."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        yield sock.getsockname()[1]


def test_unreachable_server_is_a_clear_error_without_the_password() -> None:
    with port_nobody_listens_on() as port:
        url = f"postgresql://postgres:{SECRET}@127.0.0.1:{port}/test?connect_timeout=5"
        with pytest.raises(StoreUnavailableError, match="cannot connect to") as caught:
            open_engine(url)
    assert SECRET not in str(caught.value)
    assert f"postgresql://postgres:***@127.0.0.1:{port}/test" in str(caught.value)


def test_a_refused_login_does_not_show_the_password(pg_url: str) -> None:
    url = with_password(pg_url, SECRET).replace("//postgres:", "//nobody_here:", 1)
    with pytest.raises(StoreUnavailableError, match="nobody_here") as caught:
        open_engine(url)
    assert SECRET not in str(caught.value)


def test_engine_shows_only_the_masked_url(pg_url: str) -> None:
    with open_engine(with_password(pg_url, SECRET)) as engine:
        assert SECRET not in engine.url
        assert SECRET not in repr(engine)
        assert "postgres:***@" in engine.url


# -- psycopg stays optional ---------------------------------------------------------------


def test_without_psycopg_a_postgresql_url_says_what_to_install(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setitem(sys.modules, "psycopg", None)
    monkeypatch.delitem(sys.modules, "banking_analytics.store._postgres", raising=False)
    monkeypatch.delitem(sys.modules, "banking_analytics.store._postgres_results", raising=False)
    with pytest.raises(StoreURLError, match=r"pip install 'banking-analytics\[postgres\]'"):
        open_engine("postgresql://postgres@127.0.0.1:5432/test")


def test_the_library_imports_and_runs_on_duckdb_without_psycopg() -> None:
    script = (
        "import sys; sys.modules['psycopg'] = None\n"
        "from banking_analytics import BankingPerformanceAnalytics\n"
        "with BankingPerformanceAnalytics.open('duckdb:///:memory:') as a:\n"
        "    a.record_user_behavior('u1', 'budget_tracking', 'open')\n"
        "    print(a.info().total_events)\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, check=False, timeout=60
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "1"


# -- schema, indexes, migration -----------------------------------------------------------


def test_migrate_creates_the_schema_the_tables_and_their_indexes(pg_url: str) -> None:
    schema = parse_postgres_url(pg_url).schema
    with open_engine(pg_url) as engine:
        engine.migrate(ALL_TABLES)
        engine.migrate(ALL_TABLES)  # a second time changes nothing
        indexes = engine.query(
            "SELECT tablename, indexdef FROM pg_indexes WHERE schemaname = %s", [schema]
        ).to_pylist()
    defs = {(i["tablename"], i["indexdef"].split(" USING ")[1]) for i in indexes}
    expected = {
        (t, f"btree ({column})") for t in EVENT_TABLES for column in ("event_id", "occurred_at")
    }
    expected.add(("data_versions", "btree (table_name)"))  # its primary key
    # Looked up by subscription when the store condenses a subscription's events again.
    expected |= {(t, "btree (subscription_id)") for t in (SOURCE, CHANGES)}
    # Sessions: those of the users new events belong to, one by its first event (to
    # replace it), those ending after the earliest new event.
    expected |= {
        (BEHAVIOR_SESSIONS.table.name, f"btree ({c})")
        for c in ("user_id", "first_event_id", "last_at")
    }
    assert defs == expected
    # A store made before a table's lookup index gets it when it is migrated again.
    with open_engine(pg_url) as engine:
        with engine.begin() as tx:
            tx.execute(f'DROP INDEX "{SOURCE}_subscription_id_idx"')
        engine.migrate(ALL_TABLES)
        again = engine.query(
            "SELECT indexdef FROM pg_indexes WHERE schemaname = %s AND tablename = %s",
            [schema, SOURCE],
        ).to_pylist()
    assert sum("(subscription_id)" in i["indexdef"] for i in again) == 1


def test_several_processes_may_open_a_new_store_at_once(pg_url: str) -> None:
    errors: list[BaseException] = []
    start = threading.Barrier(4)

    def open_and_migrate() -> None:
        try:
            start.wait()
            with open_engine(pg_url) as engine:
                engine.migrate(ALL_TABLES)
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=open_and_migrate) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []


def test_tables_of_another_schema_are_invisible(engine: Engine, pg_url: str) -> None:
    engine.migrate(ALL_TABLES)
    other = pg_url.rsplit("schema=", 1)[0] + f"schema=o_{uuid.uuid4().hex[:10]}"
    try:
        with open_engine(other) as elsewhere:
            assert elsewhere.table_columns("behavior_events") == []
    finally:
        with psycopg.connect(other.split("?")[0], autocommit=True) as conn:
            conn.execute(f'DROP SCHEMA IF EXISTS "{other.rsplit("=", 1)[1]}" CASCADE')


def test_writes_are_synchronous_whatever_the_connection_asks(pg_url: str) -> None:
    relaxed = f"{pg_url}&options=-c%20synchronous_commit%3Doff"
    with open_engine(relaxed) as engine:
        assert engine.query("SHOW synchronous_commit").to_pylist() == [
            {"synchronous_commit": "off"}
        ]
        writer = engine._writer  # type: ignore[attr-defined]
        assert writer.execute("SHOW synchronous_commit").fetchone() == ("on",)


# -- several writers ----------------------------------------------------------------------


def test_two_engines_writing_the_same_batch_at_once_store_it_once(pg_url: str) -> None:
    """Two API replicas sharing one store: the advisory lock makes their writes take turns."""
    batch = behavior_events(2000)
    replicas = [BankingPerformanceAnalytics.open(pg_url) for _ in range(2)]
    start = threading.Barrier(len(replicas))
    accepted: list[int] = []

    def write(replica: BankingPerformanceAnalytics) -> None:
        start.wait()
        accepted.append(sum(r.status == "accepted" for r in replica.ingest(batch)))

    threads = [threading.Thread(target=write, args=(r,)) for r in replicas]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    stored = replicas[0].info().total_events
    for r in replicas:
        r.close()
    assert sorted(accepted) == [0, len(batch)]
    assert stored == len(batch)


# -- reading ------------------------------------------------------------------------------


def test_result_types_follow_the_columns_not_the_values(engine: Engine) -> None:
    engine.migrate(ALL_TABLES)
    typed = engine.query(
        "SELECT sum(records_added) AS total, avg(records_added) AS mean, "
        "count(*) AS n, max(occurred_at) - min(occurred_at) AS span, "
        "round(2.5::numeric, 1) AS rounded, 7::numeric AS whole, "
        "array_agg(expected_interval_s) AS intervals FROM sync_run_events"
    )
    assert typed.schema.types == [
        pa.float64(),  # no values: float64
        pa.float64(),
        pa.int64(),
        pa.duration("us"),
        pa.float64(),
        pa.int64(),
        pa.list_(pa.float64()),
    ]
    sums = engine.query("SELECT sum(x) AS s, avg(x) AS a FROM (VALUES (1::bigint), (3)) v(x)")
    assert sums.to_pylist() == [{"s": 4, "a": 2.0}]
    assert sums.schema.types == [pa.int64(), pa.float64()]
    when = engine.query("SELECT %s::timestamptz AS t", [datetime(2026, 3, 1, 1, tzinfo=UTC)])
    assert when.schema.types == [arrow_type(Kind.TIMESTAMP)]


def terminate(pg_url: str, pid: int) -> None:
    with psycopg.connect(pg_url.split("?")[0], autocommit=True) as admin:
        admin.execute("SELECT pg_terminate_backend(%s)", [pid])


def test_a_reader_connection_the_server_dropped_is_replaced(engine: Engine, pg_url: str) -> None:
    terminate(pg_url, engine.query("SELECT pg_backend_pid() AS pid")["pid"][0].as_py())
    assert engine.query("SELECT 1 AS one")["one"].to_pylist() == [1]


def test_a_writer_connection_the_server_dropped_is_replaced(pg_url: str) -> None:
    with BankingPerformanceAnalytics.open(pg_url) as analytics:
        analytics.record_user_behavior("u1", "budget_tracking", "open")
        terminate(pg_url, analytics.engine._writer.info.backend_pid)  # type: ignore[attr-defined]
        analytics.record_user_behavior("u1", "budget_tracking", "open")
        assert analytics.info().total_events == 2


# -- the throwaway cluster the suite falls back to -----------------------------------------


def test_a_throwaway_cluster_starts_accepts_connections_and_stops() -> None:
    """The fallback of the suite's server discovery, forced (as root it goes through runuser)."""
    try:
        cluster = start_throwaway_cluster()
    except RuntimeError as exc:
        missing(f"cannot start a throwaway cluster: {exc}")
    try:
        with psycopg.connect(cluster.url, connect_timeout=10) as conn:
            assert conn.execute("SELECT current_user").fetchone() == ("postgres",)
        with open_engine(f"{cluster.url}?schema=throwaway") as engine:
            engine.migrate(ALL_TABLES)
            assert engine.table_columns("behavior_events")
    finally:
        cluster.stop()
    assert not cluster.directory.exists()
    with pytest.raises(psycopg.OperationalError):
        psycopg.connect(cluster.url, connect_timeout=5).close()
