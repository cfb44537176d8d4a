"""``submit_batch`` and done-callbacks: how an event loop waits for a group commit."""

from __future__ import annotations

import threading

from banking_analytics import BankingPerformanceAnalytics, EventStatus
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
