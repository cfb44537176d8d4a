"""Idempotency, normalisation and derived fields, each against a hand-worked case."""

from __future__ import annotations

import json
import threading
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from banking_analytics import (
    BankingFeature,
    BankingPerformanceAnalytics,
    BatchTooLargeError,
    EventRejectedError,
    EventStatus,
    IngestLimits,
    PerformanceMetric,
)
from banking_analytics.ingest import IngestPipeline, decode_records
from banking_analytics.store import WriteTransaction, open_engine
from sample_events import NOW, behavior_events


def count(analytics: BankingPerformanceAnalytics, table: str = "behavior_events") -> int:
    return int(analytics.engine.query(f"SELECT count(*) AS n FROM {table}")["n"][0].as_py())


def test_same_batch_twice_is_stored_once(analytics: BankingPerformanceAnalytics) -> None:
    batch = behavior_events(300)
    first = analytics.ingest(batch)
    second = analytics.ingest(batch)
    assert {r.status for r in first} == {EventStatus.ACCEPTED}
    assert {r.status for r in second} == {EventStatus.DUPLICATE}
    assert [r.event_id for r in second] == [e["event_id"] for e in batch]
    assert count(analytics) == 300


def test_same_batch_from_two_threads_at_once_is_stored_once(
    analytics: BankingPerformanceAnalytics,
) -> None:
    batch = behavior_events(1000)
    results: list[list[EventStatus]] = []
    start = threading.Barrier(2)

    def send() -> None:
        start.wait()
        results.append([r.status for r in analytics.ingest(batch)])

    threads = [threading.Thread(target=send) for _ in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert count(analytics) == 1000
    # Each event is accepted exactly once across the two senders.
    for i in range(1000):
        assert sorted(r[i] for r in results) == [EventStatus.ACCEPTED, EventStatus.DUPLICATE]


def test_duplicates_within_a_batch_keep_the_first(analytics: BankingPerformanceAnalytics) -> None:
    (event,) = behavior_events(1)
    changed = {**event, "action": "second_copy"}
    results = analytics.ingest([event, changed])
    assert [r.status for r in results] == [EventStatus.ACCEPTED, EventStatus.DUPLICATE]
    actions = analytics.engine.query("SELECT action FROM behavior_events")["action"].to_pylist()
    assert actions == ["open"]


def _metric_with_id(event_id: object) -> dict[str, object]:
    return {
        "event_type": "performance_metric",
        "event_id": event_id,
        "user_id": "user-1",
        "metric_type": "connection_success_rate",
        "feature": "account_linking",
        "value": 0.9,
        "occurred_at": NOW.isoformat(),
    }


def test_an_event_id_names_one_event_whatever_its_type(
    analytics: BankingPerformanceAnalytics,
) -> None:
    # Stored first as a behavior event: the same id as a performance metric, in a later
    # batch, is a duplicate and is not stored (docs/events.md, "Event ids").
    (event,) = behavior_events(1)
    analytics.ingest([event])
    (again,) = analytics.ingest([_metric_with_id(str(event["event_id"]).upper())])
    assert again.status is EventStatus.DUPLICATE
    assert count(analytics, "performance_metric_events") == 0
    # Within one batch the first position wins, whichever table it goes to.
    (other,) = behavior_events(1)
    results = analytics.ingest([_metric_with_id(other["event_id"]), other])
    assert [r.status for r in results] == [EventStatus.ACCEPTED, EventStatus.DUPLICATE]
    assert [r.event_type for r in results] == ["performance_metric", "behavior"]
    assert count(analytics, "performance_metric_events") == 1
    assert count(analytics) == 1


def test_event_ids_are_case_insensitive(analytics: BankingPerformanceAnalytics) -> None:
    (event,) = behavior_events(1)
    analytics.ingest([event])
    (again,) = analytics.ingest([{**event, "event_id": str(event["event_id"]).upper()}])
    assert again.status is EventStatus.DUPLICATE


def test_retry_via_file_and_arrow_paths_is_deduplicated(
    analytics: BankingPerformanceAnalytics,
) -> None:
    batch = behavior_events(50)
    analytics.ingest(batch)
    table = pa.Table.from_pylist(
        [{**e, "occurred_at": datetime.fromisoformat(str(e["occurred_at"]))} for e in batch]
    )
    outcome = analytics.ingest_arrow(table)
    assert outcome.count(EventStatus.DUPLICATE) == 50
    assert count(analytics) == 50


def test_server_generates_missing_event_ids(analytics: BankingPerformanceAnalytics) -> None:
    metric_id = analytics.record_performance_metric(
        PerformanceMetric.CONNECTION_SUCCESS_RATE,
        BankingFeature.ACCOUNT_LINKING,
        0.95,
        user_id="user123",
    )
    assert uuid.UUID(metric_id).version == 4
    stored = analytics.engine.query("SELECT CAST(event_id AS VARCHAR) AS id, value, feature "
                                    "FROM performance_metric_events").to_pylist()  # fmt: skip
    assert stored == [{"id": metric_id, "value": 0.95, "feature": "account_linking"}]


def test_record_raises_with_the_reason_and_quarantines(
    analytics: BankingPerformanceAnalytics,
) -> None:
    with pytest.raises(EventRejectedError, match="feature") as caught:
        analytics.record_performance_metric("connection_success_rate", "nope", 1.0)
    assert caught.value.result.errors[0].code == "not_allowed"
    assert analytics.info().quarantined == 1


def test_clock_skew_correction_hand_worked(store_url: str) -> None:
    """Client clock 2 h fast: occurred 10:00:00, sent 10:00:05 (client), received 08:00:07.

    occurred_at = received_at - (sent_at - occurred_at) = 08:00:07 - 5 s = 08:00:02,
    and every other client time shifts by the same -1:59:58.
    """
    received = datetime(2026, 3, 1, 8, 0, 7, tzinfo=UTC)
    event = {
        "event_type": "connection_attempt",
        "attempt_id": "a1",
        "aggregator": "plaid",
        "institution_id": "ins_1",
        "feature": "account_linking",
        "flow": "new",
        "outcome": "failure",
        "error_code": "INSTITUTION_DOWN",
        "occurred_at": "2026-03-01T10:00:00Z",
        "started_at": "2026-03-01T09:59:50Z",
        "credentials_submitted_at": "2026-03-01T09:59:55Z",
        "ended_at": "2026-03-01T09:59:58.250Z",
        "sent_at": "2026-03-01T10:00:05Z",
    }
    with open_engine(store_url) as engine:
        pipeline = IngestPipeline(engine, clock=lambda: received)
        outcome = pipeline.write(decode_records([event], 0, 32768, "test"))
        row = engine.query("SELECT * FROM connection_attempt_events").to_pylist()[0]
    assert outcome.result(0).flags == ("skew_corrected",)
    shift = timedelta(hours=-1, minutes=-59, seconds=-58)
    assert row["occurred_at"] == datetime(2026, 3, 1, 8, 0, 2, tzinfo=UTC)
    assert row["started_at"] == datetime(2026, 3, 1, 9, 59, 50, tzinfo=UTC) + shift
    assert row["received_at"] == received
    assert row["sent_at"] == datetime(2026, 3, 1, 10, 0, 5, tzinfo=UTC)
    # latency from credential submit to outcome: 58.25 - 55 = 3.25 s
    assert row["latency_ms"] == 3250.0
    # INSTITUTION_DOWN decides the category even though the client sent none.
    assert row["error_category"] == "institution"


def test_error_code_wins_over_a_misleading_type_and_client_category(store_url: str) -> None:
    base = {
        "event_type": "sync_run",
        "connection_id": "item-1",
        "aggregator": "plaid",
        "institution_id": "ins_1",
        "feature": "transaction_sync",
        "trigger": "scheduled",
        "started_at": NOW.isoformat(),
        "outcome": "failure",
    }
    cases = [
        ({"error_code": "INSTITUTION_REGISTRATION_REQUIRED", "error_type": "INSTITUTION_ERROR",
          "error_category": "institution"}, "integration"),
        ({"error_type": "API_ERROR", "error_code": "SOMETHING_NEW"}, "aggregator"),
        ({"error_category": "rate_limited"}, "rate_limited"),
        ({}, "unknown"),
    ]  # fmt: skip
    with open_engine(store_url) as engine:
        pipeline = IngestPipeline(engine)
        pipeline.write(decode_records([{**base, **c} for c, _ in cases], 0, 32768, "test"))
        got = engine.query("SELECT error_category FROM sync_run_events")["error_category"]
    assert sorted(got.to_pylist()) == sorted(expected for _, expected in cases)


def test_late_events_are_accepted_and_flagged(analytics: BankingPerformanceAnalytics) -> None:
    (e,) = behavior_events(1)
    (result,) = analytics.ingest([{**e, "occurred_at": (NOW - timedelta(days=30)).isoformat()}])
    assert result.status is EventStatus.ACCEPTED
    assert result.flags == ("late",)


def test_batch_size_limit_is_a_clear_error(store_url: str) -> None:
    with BankingPerformanceAnalytics.open(store_url, limits=IngestLimits(max_batch_events=10)) as a:
        with pytest.raises(BatchTooLargeError, match="11 events in one batch; the limit is 10"):
            a.ingest(behavior_events(11))
        assert a.info().total_events == 0


def test_a_failed_commit_reaches_every_waiting_caller(store_url: str) -> None:
    analytics = BankingPerformanceAnalytics.open(store_url)
    analytics.engine.close()  # the store goes away under the writer
    pending = [analytics.submit(e) for e in behavior_events(5)]
    for p in pending:
        with pytest.raises(RuntimeError, match="closed"):
            p.result(timeout=30)
    analytics.close()  # still safe after the store went away


def test_decoding_in_worker_processes_gives_the_same_report(
    analytics: BankingPerformanceAnalytics, tmp_path: Path
) -> None:
    path = tmp_path / "e.jsonl"
    lines = [json.dumps(e) for e in behavior_events(30)]
    lines[7] = '{"event_type": "behavior", "feature": "nope"}'
    path.write_text("\n".join(lines))
    report = analytics.ingest_file(path, chunk_events=10, decode_workers=1)
    assert (report.accepted, report.rejected) == (29, 1)
    assert report.rejections[0][0] == 8
    assert "feature" in report.rejections[0][1]
    assert analytics.quarantine()[0]["raw"] == lines[7]


@pytest.mark.parametrize("workers", [0, 1])
@pytest.mark.parametrize("ending", ["\n", "\r\n"], ids=["lf", "crlf"])
def test_line_numbers_hold_across_pieces_whatever_the_line_ends(
    analytics: BankingPerformanceAnalytics, tmp_path: Path, workers: int, ending: str
) -> None:
    lines = [json.dumps(e) for e in behavior_events(60)]
    lines[44] = ""  # a blank line far into the file
    lines[51] = '{"event_type": "behavior", "feature": "nope"}'
    path = tmp_path / "e.jsonl"
    path.write_bytes((ending.join(lines) + ending).encode())
    report = analytics.ingest_file(path, chunk_events=5, decode_workers=workers)
    assert (report.accepted, report.rejected) == (58, 2)
    assert [line for line, _ in report.rejections] == [45, 52]
    assert "empty line" in report.rejections[0][1]
    raws = {row["position"]: row["raw"] for row in analytics.quarantine()}
    assert raws[52] == lines[51]


@pytest.mark.parametrize("per_transaction", [None, 12, 1000], ids=["per-chunk", "12", "whole"])
@pytest.mark.parametrize("fmt", ["jsonl", "parquet"])
def test_chunks_sharing_a_transaction_are_checked_and_deduplicated_as_one_batch(
    analytics: BankingPerformanceAnalytics,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    fmt: str,
    per_transaction: int | None,
) -> None:
    events = behavior_events(30)
    for i, event in enumerate(events):
        event["action"] = f"action_{i}"
    events[20]["event_id"] = events[3]["event_id"]  # a repeat three chunks later
    events[7]["feature"] = "nope"
    path = tmp_path / f"e.{fmt}"
    if fmt == "jsonl":
        path.write_text("\n".join(json.dumps(e) for e in events))
    else:
        pq.write_table(pa.Table.from_pylist(events), path)
    inserts: list[int] = []
    insert_events = WriteTransaction.insert_events

    def counting(
        self: WriteTransaction, table: Any, rows: pa.Table, window: Any, **options: Any
    ) -> Any:
        inserts.append(rows.num_rows)
        return insert_events(self, table, rows, window, **options)

    monkeypatch.setattr(WriteTransaction, "insert_events", counting)
    progress: list[tuple[int, int]] = []
    report = analytics.ingest_file(
        path,
        chunk_events=5,
        transaction_events=per_transaction,
        on_progress=lambda done, n: progress.append((done, n)),
    )
    assert (report.accepted, report.duplicate, report.rejected) == (28, 1, 1)
    assert report.rejections == [(8, report.rejections[0][1])]
    assert "feature" in report.rejections[0][1]
    stored = analytics.engine.query(
        "SELECT CAST(event_id AS VARCHAR) AS event_id, action FROM behavior_events"
    ).to_pylist()
    repeated = [row["action"] for row in stored if row["event_id"] == events[3]["event_id"]]
    assert repeated == ["action_3"]  # the first copy wins
    assert count(analytics) == 28
    # One insert per transaction, of its valid events less the repeats within it.
    ends = [n for _, n in progress]
    assert ends == sorted(ends)
    assert ends[-1] == 30
    assert len(ends) > 2
    expected, start = [], 0
    for end in ends:
        if per_transaction is None or end - start >= per_transaction or end == 30:
            inside = set(range(start, end)) - {7}
            expected.append(len(inside - {20} if 3 in inside else inside))
            start = end
    assert inserts == expected
    if per_transaction == 1000:
        assert inserts == [28]


def test_batches_written_together_must_be_consecutive(store_url: str) -> None:
    with open_engine(store_url) as engine:
        pipeline = IngestPipeline(engine)
        first = decode_records(behavior_events(3), 1, 32_768, "test")
        gap = decode_records(behavior_events(3), 5, 32_768, "test")
        with pytest.raises(ValueError, match="consecutive"):
            pipeline.write_many([first, gap])
        assert pipeline.write_many([first, decode_records(behavior_events(2), 4, 32_768, "t")])
