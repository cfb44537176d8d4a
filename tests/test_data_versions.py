"""Data versions kept in the store, the result cache keyed by them, and commit listeners.

A table's version is raised by the transaction that adds rows to it, once per
transaction, so every expected version below is counted by hand: 0 for a new
store, plus one per commit that added rows to that table.
"""

from __future__ import annotations

import json
import logging
import queue
import threading
import uuid
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import pyarrow as pa
import pytest

from banking_analytics import BankingPerformanceAnalytics, EventStatus
from banking_analytics.events import SCHEMAS
from banking_analytics.ingest import GroupCommitWriter, IngestPipeline, decode_records
from banking_analytics.metrics import MetricService, TimeWindow
from banking_analytics.store import (
    DERIVED_TABLES,
    EVENT_TABLES,
    QUARANTINE,
    CondensedTable,
    Engine,
    open_engine,
)
from banking_analytics.vocabulary import EventType
from sample_events import NOW, behavior_events

BEHAVIOR = SCHEMAS[EventType.BEHAVIOR].table
#: The tables a small write of behaviour events changes: the events (their sessions wait
#: for a reader).
BEHAVIOR_WRITE = {BEHAVIOR}
ATTEMPTS = SCHEMAS[EventType.CONNECTION_ATTEMPT].table
SYNCS = SCHEMAS[EventType.SYNC_RUN].table
LAST_HOUR = TimeWindow(NOW - timedelta(hours=1), NOW + timedelta(minutes=1), "last hour")
#: How long a test waits for a listener's call before failing (they come within milliseconds).
DELIVERY_TIMEOUT_S = 30


def attempts(n: int, outcome: str = "success") -> list[dict[str, object]]:
    """``n`` connection attempts with fresh ids, in the last hour."""
    return [
        {
            "event_type": "connection_attempt",
            "event_id": str(uuid.uuid4()),
            "occurred_at": (NOW - timedelta(minutes=30, seconds=i)).isoformat(),
            "user_id": f"u{i}",
            "attempt_id": f"a{uuid.uuid4().hex[:8]}",
            "aggregator": "plaid",
            "institution_id": "ins_1",
            "feature": "account_linking",
            "flow": "new",
            "started_at": (NOW - timedelta(minutes=31, seconds=i)).isoformat(),
            "outcome": outcome,
        }
        for i in range(n)
    ]


def bad_event() -> dict[str, object]:
    """An event that is rejected (and quarantined): a behaviour event without a feature."""
    return {"event_type": "behavior", "user_id": "u1", "action": "open"}


def fresh_versions(**changes: int) -> dict[str, int]:
    """Every event table's version (and those of the tables the store derives from them)
    in a store where only ``changes`` were written: a condensed table's version is raised
    with its source's; the sessions, not read, have merged nothing."""
    versions = {table: changes.get(table, 0) for table in EVENT_TABLES}
    derived = {
        d.table.name: versions[d.source.name] if isinstance(d, CondensedTable) else 0
        for d in DERIVED_TABLES
    }
    return versions | derived


@pytest.fixture
def second(store_url: str) -> Iterator[MetricService]:
    """A metric service on a second engine opened on the same store: for PostgreSQL its
    own connections, as another process or API replica would have; for DuckDB a second
    handle in this process (DuckDB lets one process write a file)."""
    with open_engine(store_url) as engine:
        yield MetricService(engine)


# -- the versions ------------------------------------------------------------------------------


def test_a_new_store_starts_every_table_at_version_zero(
    analytics: BankingPerformanceAnalytics,
) -> None:
    assert analytics.metrics.versions() == fresh_versions()
    assert analytics.metrics.versions([QUARANTINE.name]) == {QUARANTINE.name: 0}
    assert analytics.metrics.versions([]) == {}


def test_reads_and_batches_of_duplicates_leave_the_versions_alone(
    analytics: BankingPerformanceAnalytics,
) -> None:
    batch = behavior_events(50)
    analytics.ingest(batch)
    assert analytics.metrics.versions() == fresh_versions(**{BEHAVIOR: 1})
    analytics.query_metrics(["feature_interactions", "connection_attempts"], LAST_HOUR)
    analytics.analyze_connection_performance(LAST_HOUR)
    analytics.performance_dashboard(LAST_HOUR)
    results = analytics.ingest(batch)  # every event a duplicate: nothing added
    assert {r.status for r in results} == {EventStatus.DUPLICATE}
    assert analytics.metrics.versions() == fresh_versions(**{BEHAVIOR: 1})
    assert analytics.metrics.versions([QUARANTINE.name]) == {QUARANTINE.name: 0}


def test_adding_rows_raises_the_version_of_those_tables_only(
    analytics: BankingPerformanceAnalytics,
) -> None:
    analytics.ingest(behavior_events(10))
    analytics.ingest(behavior_events(10))
    assert analytics.metrics.versions() == fresh_versions(**{BEHAVIOR: 2})
    analytics.ingest(attempts(3))
    assert analytics.metrics.versions() == fresh_versions(**{BEHAVIOR: 2, ATTEMPTS: 1})
    # One transaction adding rows to two tables and the quarantine raises each once.
    results = analytics.ingest([*behavior_events(2), *attempts(2), bad_event()])
    assert [r.status for r in results][-1] is EventStatus.REJECTED
    assert analytics.metrics.versions() == fresh_versions(**{BEHAVIOR: 3, ATTEMPTS: 2})
    assert analytics.metrics.versions([QUARANTINE.name, SYNCS]) == {QUARANTINE.name: 1, SYNCS: 0}
    # A batch of only rejected events changes the quarantine alone.
    analytics.ingest([bad_event()])
    assert analytics.metrics.versions([QUARANTINE.name, BEHAVIOR]) == {
        QUARANTINE.name: 2,
        BEHAVIOR: 3,
    }


def test_a_table_without_a_version_is_an_error(analytics: BankingPerformanceAnalytics) -> None:
    with pytest.raises(ValueError, match=r"no data version for table.* behaviour_events"):
        analytics.metrics.versions([BEHAVIOR, "behaviour_events"])


def test_another_engine_on_the_store_sees_each_new_version(
    analytics: BankingPerformanceAnalytics, second: MetricService
) -> None:
    assert second.versions() == fresh_versions()
    analytics.ingest(attempts(5))
    assert second.versions() == fresh_versions(**{ATTEMPTS: 1})
    analytics.record_user_behavior(user_id="u1", feature="budget_tracking", action="open")
    assert second.versions() == fresh_versions(**{ATTEMPTS: 1, BEHAVIOR: 1})


def test_readers_never_see_new_rows_with_an_old_version(engine: Engine, store_url: str) -> None:
    """Each commit adds 10 rows and raises the version by one, so any reading of both in one
    statement (one snapshot) finds rows = 10 x version, whenever it runs during the writes."""
    pipeline = IngestPipeline(engine)
    done = threading.Event()
    readings: list[tuple[int, int]] = []

    def read() -> None:
        with open_engine(store_url) as reader:
            while not done.is_set():
                row = reader.query(
                    f"SELECT (SELECT count(*) FROM {BEHAVIOR}) AS n, (SELECT version FROM "
                    f"data_versions WHERE table_name = '{BEHAVIOR}') AS v"
                ).to_pylist()[0]
                readings.append((int(row["n"]), int(row["v"])))

    thread = threading.Thread(target=read)
    thread.start()
    try:
        for i in range(30):
            pipeline.write(decode_records(behavior_events(10), 10 * i, 32_768, "test"))
    finally:
        done.set()
        thread.join()
    assert readings
    assert [(n, v) for n, v in readings if n != 10 * v] == []
    assert MetricService(engine).versions([BEHAVIOR]) == {BEHAVIOR: 30}


def test_a_store_made_before_versions_gets_them_when_opened(store_url: str) -> None:
    with BankingPerformanceAnalytics.open(store_url) as analytics:
        analytics.ingest(behavior_events(4))
        with analytics.engine.begin() as tx:  # now as an earlier release left it
            tx.execute("DROP TABLE data_versions")
        assert analytics.engine.table_columns("data_versions") == []
    with BankingPerformanceAnalytics.open(store_url) as analytics:
        assert analytics.metrics.versions() == fresh_versions()
        found = analytics.query_metrics(["feature_interactions"], LAST_HOUR).single()
        assert found["feature_interactions"] == 4
        analytics.ingest(behavior_events(1))
        assert analytics.metrics.versions() == fresh_versions(**{BEHAVIOR: 1})


def test_a_table_whose_version_went_missing_is_an_error_until_migrated(engine: Engine) -> None:
    """Never a stale answer: without its version row, a table's version cannot be read."""
    pipeline = IngestPipeline(engine)
    with engine.begin() as tx:
        tx.execute(f"DELETE FROM data_versions WHERE table_name = '{BEHAVIOR}'")
    pipeline.write(decode_records(behavior_events(2), 0, 32_768, "test"))
    with pytest.raises(ValueError, match="no data version"):
        MetricService(engine).versions([BEHAVIOR])
    pipeline = IngestPipeline(engine)  # migrates the store again
    pipeline.write(decode_records(behavior_events(2), 2, 32_768, "test"))
    assert MetricService(engine).versions([BEHAVIOR]) == {BEHAVIOR: 1}


# -- the cache ---------------------------------------------------------------------------------


def test_a_cached_answer_is_reused_while_its_version_holds(
    analytics: BankingPerformanceAnalytics,
) -> None:
    analytics.ingest(attempts(4))
    first = analytics.query_metrics(["connection_attempts"], LAST_HOUR)
    assert (first.cached, first.single()["connection_attempts"]) == (0, 4)
    again = analytics.query_metrics(["connection_attempts"], LAST_HOUR)
    assert (again.cached, again.single()["connection_attempts"]) == (1, 4)
    # Behaviour events and rejected events leave the connection attempts' version alone.
    analytics.ingest([*behavior_events(3), bad_event()])
    still = analytics.query_metrics(["connection_attempts"], LAST_HOUR)
    assert (still.cached, still.single()["connection_attempts"]) == (1, 4)
    analytics.ingest(attempts(2))
    after = analytics.query_metrics(["connection_attempts"], LAST_HOUR)
    assert (after.cached, after.single()["connection_attempts"]) == (0, 6)


def test_a_write_through_another_engine_invalidates_the_cache(
    analytics: BankingPerformanceAnalytics, store_url: str
) -> None:
    """Two API replicas on one store: what one writes, the other's cached answers see."""
    analytics.ingest(attempts(20))
    before = analytics.analyze_connection_performance(LAST_HOUR)
    assert before["success_rate"]["average"] == pytest.approx(1.0)
    with BankingPerformanceAnalytics.open(store_url) as replica:
        failures = attempts(5, "failure")
        for event in failures:
            event["error_category"] = "institution"
        replica.ingest(failures)
    after = analytics.analyze_connection_performance(LAST_HOUR)
    assert after["attempts"] == 25
    assert after["success_rate"]["average"] == pytest.approx(20 / 25)


# -- commit listeners --------------------------------------------------------------------------


class Heard:
    """A listener that keeps what it is told, with what another engine saw at that moment."""

    def __init__(self, witness: MetricService | None = None) -> None:
        self.calls: queue.Queue[tuple[frozenset[str], dict[str, int] | None]] = queue.Queue()
        self._witness = witness

    def __call__(self, tables: frozenset[str]) -> None:
        seen = None if self._witness is None else self._witness.versions()
        self.calls.put((tables, seen))

    def next(self) -> frozenset[str]:
        tables, _ = self.calls.get(timeout=DELIVERY_TIMEOUT_S)
        return tables

    def next_with_versions(self) -> tuple[frozenset[str], dict[str, int] | None]:
        return self.calls.get(timeout=DELIVERY_TIMEOUT_S)


def test_listeners_hear_exactly_the_changed_tables_after_the_commit(
    analytics: BankingPerformanceAnalytics, second: MetricService
) -> None:
    heard = Heard(witness=second)
    analytics.on_commit(heard)
    analytics.ingest(behavior_events(3))
    # When the listener runs, the commit is visible to every other reader of the store.
    assert heard.next_with_versions() == (BEHAVIOR_WRITE, fresh_versions(**{BEHAVIOR: 1}))
    analytics.ingest([*attempts(1), bad_event()])
    assert heard.next() == {ATTEMPTS, QUARANTINE.name}
    batch = behavior_events(2)
    analytics.ingest(batch)
    assert heard.next() == BEHAVIOR_WRITE
    analytics.ingest(batch)  # every event a duplicate
    analytics.ingest(attempts(1))
    # Had the duplicates called the listener, it would hear behaviour events first, or
    # with the attempts (calls during a busy listener are merged).
    assert heard.next() == {ATTEMPTS}
    assert heard.calls.empty()


def test_every_write_path_of_the_facade_calls_the_listeners(
    analytics: BankingPerformanceAnalytics, tmp_path: Path
) -> None:
    heard = Heard()
    analytics.on_commit(heard)
    analytics.record_connection_attempt(**attempts(1)[0])  # group commit, one event
    assert heard.next() == {ATTEMPTS}
    analytics.submit_batch(behavior_events(2)).results()  # group commit, a batch
    assert heard.next() == BEHAVIOR_WRITE
    table = pa.Table.from_pylist(behavior_events(2))
    analytics.ingest_arrow(table, event_type=EventType.BEHAVIOR)  # straight to the pipeline
    assert heard.next() == BEHAVIOR_WRITE
    path = tmp_path / "events.jsonl"
    path.write_text("".join(json.dumps(e) + "\n" for e in [*attempts(3), bad_event()]))
    analytics.ingest_file(path, chunk_events=2, transaction_events=4)  # write_many
    assert heard.next() == {ATTEMPTS, QUARANTINE.name}
    assert heard.calls.empty()


def test_the_group_commit_writer_takes_listeners_too(engine: Engine) -> None:
    pipeline = IngestPipeline(engine)
    writer = GroupCommitWriter(pipeline)
    heard = Heard()
    try:
        writer.on_commit(heard)
        writer.submit(decode_records(attempts(2), 0, 32_768, "test")).result()
        assert heard.next() == {ATTEMPTS}
    finally:
        writer.close()
        pipeline.close()


def test_a_listener_that_raises_fails_nothing_and_is_logged(
    analytics: BankingPerformanceAnalytics, caplog: pytest.LogCaptureFixture
) -> None:
    def broken(tables: frozenset[str]) -> None:
        raise RuntimeError(f"cannot handle {sorted(tables)}")

    analytics.on_commit(broken)
    heard = Heard()
    analytics.on_commit(heard)
    with caplog.at_level(logging.ERROR, logger="banking_analytics.ingest"):
        for _ in range(3):
            results = analytics.ingest(behavior_events(5))
            assert {r.status for r in results} == {EventStatus.ACCEPTED}
            assert heard.next() == BEHAVIOR_WRITE  # the next listener is still called
        analytics.close()  # every call is over: the log has all three failures
    failures = [r for r in caplog.records if "commit listener" in r.getMessage()]
    assert len(failures) == 3
    assert all(r.exc_info and "cannot handle" in str(r.exc_info[1]) for r in failures)


def test_a_removed_listener_is_not_called_again(engine: Engine) -> None:
    pipeline = IngestPipeline(engine)
    kept, removed = Heard(), Heard()
    pipeline.on_commit(kept)
    remove = pipeline.on_commit(removed)
    pipeline.write(decode_records(attempts(1), 0, 32_768, "test"))
    assert (kept.next(), removed.next()) == ({ATTEMPTS}, {ATTEMPTS})
    remove()
    remove()  # a second time changes nothing
    pipeline.write(decode_records(behavior_events(1), 0, 32_768, "test"))
    assert kept.next() == BEHAVIOR_WRITE
    pipeline.close()  # every call is over
    assert removed.calls.empty()


def test_closing_the_pipeline_delivers_every_commit_first(engine: Engine) -> None:
    pipeline = IngestPipeline(engine)
    calls: list[frozenset[str]] = []
    pipeline.on_commit(calls.append)
    pipeline.write(decode_records(attempts(1), 0, 32_768, "test"))
    pipeline.close()
    assert calls == [{ATTEMPTS}]
    with pytest.raises(RuntimeError, match="closed"):
        pipeline.on_commit(calls.append)
