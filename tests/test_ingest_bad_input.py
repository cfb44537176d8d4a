"""Bad input gets a clear reason naming the field, lands in quarantine, and harms no neighbour."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from banking_analytics import BankingPerformanceAnalytics, EventStatus

NOW = datetime.now(UTC)


def behavior(**overrides: Any) -> dict[str, Any]:
    event = {
        "event_type": "behavior",
        "user_id": "user-1",
        "feature": "spending_analysis",
        "action": "view_report",
        "duration_s": 45.2,
        "success": True,
        "occurred_at": (NOW - timedelta(minutes=1)).isoformat(),
    }
    event.update(overrides)
    return {k: v for k, v in event.items() if v is not Ellipsis}


def attempt(**overrides: Any) -> dict[str, Any]:
    event = {
        "event_type": "connection_attempt",
        "user_id": "user-1",
        "attempt_id": "att-1",
        "aggregator": "plaid",
        "institution_id": "ins_3",
        "institution_name": "First Platypus Bank",
        "feature": "account_linking",
        "flow": "new",
        "started_at": (NOW - timedelta(seconds=30)).isoformat(),
        "ended_at": (NOW - timedelta(seconds=20)).isoformat(),
        "outcome": "success",
    }
    event.update(overrides)
    return event


GOOD = behavior()
OLD, FUTURE = "1900-01-01T00:00:00Z", "2999-01-01T00:00:00Z"
BAD_CHARS = "invalid_characters"

# (case id, event, field named, error code)
BAD_EVENTS: list[tuple[str, dict[str, Any], str | None, str]] = [
    ("wrong type number", behavior(duration_s="abc"), "duration_s", "wrong_type"),
    ("wrong type bool", behavior(success="yes"), "success", "wrong_type"),
    ("unknown enum", behavior(feature="teleportation"), "feature", "not_allowed"),
    ("unknown event type", {"event_type": "bogus"}, "event_type", "not_allowed"),
    ("missing event type", {"feature": "spending_analysis"}, "event_type", "missing"),
    ("missing required", behavior(feature=...), "feature", "missing"),
    ("negative duration", behavior(duration_s=-1), "duration_s", "out_of_range"),
    ("unknown field", behavior(colour="red"), "colour", "unknown_field"),
    ("absurd past", behavior(occurred_at=OLD), "occurred_at", "too_old"),
    ("absurd future", behavior(occurred_at=FUTURE), "occurred_at", "in_future"),
    ("sql in identifier", behavior(user_id="1; DROP TABLE x; --"), "user_id", "invalid_format"),
    ("identifier too long", behavior(user_id="u" * 500), "user_id", "too_long"),
    ("bad uuid", behavior(event_id="not-a-uuid"), "event_id", "invalid_uuid"),
    ("bidi override", attempt(institution_name="Bank\u202e"), "institution_name", BAD_CHARS),
    ("nul byte", attempt(institution_name="Bank\x00"), "institution_name", BAD_CHARS),
    ("zero width", attempt(institution_name="Ba\u200bnk"), "institution_name", BAD_CHARS),
    ("ended before start", attempt(ended_at="2000-01-01T00:00:00Z"), "ended_at", "out_of_order"),
    ("properties not object", behavior(properties=[1, 2]), "properties", "wrong_type"),
    ("nul in properties", behavior(properties={"k\x00": "v\x00"}), "properties", BAD_CHARS),
    ("oversize", behavior(properties={"blob": "x" * 40_000}), None, "too_large"),
    ("not an object", [1, 2], None, "not_an_object"),  # type: ignore[list-item]
]  # fmt: skip


def _named(result: Any, field: str | None, code: str) -> None:
    assert result.status is EventStatus.REJECTED, result
    assert (field, code) in [(e.field, e.code) for e in result.errors], result.errors
    assert result.reason
    assert field is None or field in result.reason


@pytest.mark.parametrize(
    ("case", "event", "field", "code"), BAD_EVENTS, ids=[c[0] for c in BAD_EVENTS]
)
def test_bad_event_through_library_is_named_and_quarantined(
    analytics: BankingPerformanceAnalytics, case: str, event: Any, field: str | None, code: str
) -> None:
    good_before, good_after = behavior(), behavior(action="open_budget")
    results = analytics.ingest([good_before, event, good_after])
    assert [r.status for r in results] == [
        EventStatus.ACCEPTED,
        EventStatus.REJECTED,
        EventStatus.ACCEPTED,
    ]
    _named(results[1], field, code)
    quarantined = analytics.quarantine()
    assert len(quarantined) == 1
    assert quarantined[0]["position"] == 1
    assert quarantined[0]["reason"] == results[1].reason
    assert json.loads(quarantined[0]["errors"])[0]["code"] == results[1].errors[0].code
    assert quarantined[0]["raw"]
    assert analytics.info().total_events == 2


@pytest.mark.parametrize(
    ("case", "event", "field", "code"), BAD_EVENTS, ids=[c[0] for c in BAD_EVENTS]
)
def test_bad_event_in_json_lines_names_its_line(
    analytics: BankingPerformanceAnalytics,
    tmp_path: Path,
    case: str,
    event: Any,
    field: str | None,
    code: str,
) -> None:
    path = tmp_path / "events.jsonl"
    lines = [json.dumps(GOOD), json.dumps(event), json.dumps(behavior(action="x"))]
    path.write_text("\n".join(lines) + "\n")
    report = analytics.ingest_file(path)
    assert (report.accepted, report.rejected) == (2, 1)
    ((line, reason),) = report.rejections
    assert line == 2
    assert field is None or field in reason
    assert analytics.quarantine()[0]["source"] == "file:events.jsonl"


def test_nan_and_infinity_are_rejected_on_every_path(
    analytics: BankingPerformanceAnalytics, tmp_path: Path
) -> None:
    for value in (float("nan"), float("inf"), float("-inf")):
        (result,) = analytics.ingest([behavior(duration_s=value)])
        _named(result, "duration_s", "not_finite")
    # JSON has no NaN literal; a number too large for a double is out of range.
    path = tmp_path / "e.jsonl"
    path.write_text('{"event_type":"behavior","user_id":"u","feature":"goal_setting",'
                    '"action":"a","duration_s":NaN}\n'
                    '{"event_type":"behavior","user_id":"u","feature":"goal_setting",'
                    '"action":"a","duration_s":1e999}\n')  # fmt: skip
    report = analytics.ingest_file(path)
    assert report.rejected == 2
    assert "malformed JSON" in report.rejections[0][1]
    assert "duration_s" in report.rejections[1][1]
    table = pa.table({"event_type": ["behavior"] * 2, "user_id": ["u", "u"],
                      "feature": ["goal_setting"] * 2, "action": ["a", "a"],
                      "duration_s": [float("nan"), float("inf")]})  # fmt: skip
    outcome = analytics.ingest_arrow(table)
    assert [r.reason for r in outcome.results()] == ["duration_s: must be a finite number"] * 2


def test_malformed_json_and_blank_lines_are_reported_by_line(
    analytics: BankingPerformanceAnalytics, tmp_path: Path
) -> None:
    path = tmp_path / "e.jsonl"
    path.write_text(json.dumps(GOOD) + '\n{"event_type": "behavior",\n\n' + json.dumps(GOOD))
    report = analytics.ingest_file(path)
    assert report.accepted == 2  # without an event_id each line is a new event
    assert [line for line, _ in report.rejections] == [2, 3]
    assert "malformed JSON" in report.rejections[0][1]
    assert "empty line" in report.rejections[1][1]


def test_sql_looking_free_text_is_stored_verbatim_not_executed(
    analytics: BankingPerformanceAnalytics,
) -> None:
    name = "Robert'); DROP TABLE connection_attempt_events;-- Société Générale 🏦"
    (result,) = analytics.ingest([attempt(institution_name=name)])
    assert result.status is EventStatus.ACCEPTED
    stored = analytics.engine.query("SELECT institution_name FROM connection_attempt_events")
    assert stored["institution_name"].to_pylist() == [name]


def test_nul_characters_are_quarantined_as_replacement_characters(
    analytics: BankingPerformanceAnalytics, tmp_path: Path
) -> None:
    """PostgreSQL text and jsonb cannot hold NUL: quarantine keeps U+FFFD in its place."""
    path = tmp_path / "e.jsonl"
    bad_line = b'{"event_type": "behavior", "user_id": "a\x00b"}'
    path.write_bytes(bad_line + b"\n" + json.dumps(GOOD).encode())
    report = analytics.ingest_file(path)
    assert (report.accepted, report.rejected) == (1, 1)
    (result,) = analytics.ingest([behavior(**{"col\x00our": 1})])
    assert result.errors[0].field == "col\x00our"  # the answer names the field as sent
    by_file, by_call = sorted(analytics.quarantine(), key=lambda q: q["source"])
    assert by_file["raw"] == '{"event_type": "behavior", "user_id": "a\ufffdb"}'
    assert json.loads(by_call["errors"])[0]["field"] == "col\ufffdour"
    assert by_call["reason"].startswith("col\ufffdour: ")


def test_lone_surrogates_are_rejected_not_crashing(analytics: BankingPerformanceAnalytics) -> None:
    (result,) = analytics.ingest([attempt(institution_name="Bank \ud800")])
    assert result.status is EventStatus.REJECTED
    assert "\\ud800" in analytics.quarantine()[0]["raw"]


def test_absurd_time_spans_are_judged_not_crashing(analytics: BankingPerformanceAnalytics) -> None:
    """Found by fuzzing the API: an attempt from year 221 to 2089 overflowed the latency
    derivation and failed its whole group commit, neighbours included."""
    absurd = attempt(started_at="0221-12-18T18:37:52-02:42", ended_at="2089-08-11T09:30:01Z")
    results = analytics.ingest([behavior(), absurd, behavior()])
    assert [r.status for r in results] == [
        EventStatus.ACCEPTED,
        EventStatus.REJECTED,
        EventStatus.ACCEPTED,
    ]
    assert results[1].errors[0].field in {"occurred_at", "started_at", "ended_at"}


def test_paths_agree_on_what_they_reject(
    analytics: BankingPerformanceAnalytics, tmp_path: Path
) -> None:
    """Records, JSON Lines and Parquet reject the same representable bad events the same way."""
    events = [GOOD] + [
        event
        for _, event, _, code in BAD_EVENTS
        if isinstance(event, dict)
        and event.get("event_type") == "behavior"
        and code not in ("wrong_type", "unknown_field", "too_large")
    ]
    by_records = analytics.ingest(events)
    jsonl = tmp_path / "e.jsonl"
    jsonl.write_text("\n".join(json.dumps(e) for e in events))
    by_json = analytics.ingest_file(jsonl)
    # from_pylist takes its columns from the first row, so give every row every key.
    keys = sorted({k for e in events for k in e})
    rows = [{k: e.get(k) for k in keys} for e in events]
    for row in rows:
        row["occurred_at"] = datetime.fromisoformat(row["occurred_at"].replace("Z", "+00:00"))
    parquet = tmp_path / "e.parquet"
    pq.write_table(pa.Table.from_pylist(rows), parquet)
    by_parquet = analytics.ingest_file(parquet)

    def codes(reasons: list[tuple[int, str]]) -> list[str]:
        return [reason for _, reason in reasons]

    record_reasons = [r.reason for r in by_records if r.reason]
    assert codes(by_json.rejections) == record_reasons
    assert codes(by_parquet.rejections) == record_reasons
