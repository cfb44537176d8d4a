"""``submit_batch`` and done-callbacks: how an event loop waits for a group commit."""

from __future__ import annotations

import threading
import time

import pytest

from banking_analytics import BankingPerformanceAnalytics, EventStatus
from banking_analytics.ingest import _pipeline as pipeline_module
from sample_events import behavior_events


def test_the_callback_runs_once_after_the_commit_and_at_once_when_late(
    analytics: BankingPerformanceAnalytics,
) -> None:
    pending = analytics.submit_batch(behavior_events(3))
    called = threading.Event()
    seen_done: list[bool] = []

    def on_done() -> None:
        seen_done.append(pending.done())
        called.set()

    pending.add_done_callback(on_done)
    assert called.wait(30)
    assert seen_done == [True]
    assert [r.status for r in pending.results(0)] == [EventStatus.ACCEPTED] * 3
    late: list[int] = []
    pending.add_done_callback(lambda: late.append(threading.get_ident()))
    assert late == [threading.get_ident()]  # already committed: called in the caller's thread
    assert seen_done == [True]


def test_a_rejected_event_in_a_submitted_batch_leaves_the_others(
    analytics: BankingPerformanceAnalytics,
) -> None:
    events = behavior_events(2)
    events.insert(1, {"event_type": "behavior", "feature": "nope"})
    results = analytics.submit_batch(events).results(30)
    assert [r.status for r in results] == [
        EventStatus.ACCEPTED,
        EventStatus.REJECTED,
        EventStatus.ACCEPTED,
    ]


@pytest.mark.duckdb
@pytest.mark.parametrize("store_url", ["duckdb"], indirect=True)
def test_a_batch_that_breaks_its_group_commit_fails_alone(
    analytics: BankingPerformanceAnalytics, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Two callers share a group; writing the group fails because of one of them: the
    other's events are still stored and acknowledged, and only the culprit hears of it."""
    original = pipeline_module.validate

    def validate_or_explode(schema, table, *args, **kwargs):  # type: ignore[no-untyped-def]
        if "explode" in table.column("action").to_pylist():
            raise RuntimeError("validator broke on this batch")
        return original(schema, table, *args, **kwargs)

    monkeypatch.setattr(pipeline_module, "validate", validate_or_explode)
    lock = analytics.engine._write_lock  # type: ignore[attr-defined]
    with lock:  # the writer blocks on the first group while the next one gathers
        first = analytics.submit_batch(behavior_events(1))
        time.sleep(0.2)
        innocent = analytics.submit_batch(behavior_events(2))
        culprit = analytics.submit_batch([{**behavior_events(1)[0], "action": "explode"}])
    assert [r.status for r in first.results(30)] == [EventStatus.ACCEPTED]
    assert [r.status for r in innocent.results(30)] == [EventStatus.ACCEPTED] * 2
    with pytest.raises(RuntimeError, match="validator broke"):
        culprit.results(30)
    stored = analytics.engine.query("SELECT count(*) AS n FROM behavior_events")
    assert stored["n"][0].as_py() == 3
