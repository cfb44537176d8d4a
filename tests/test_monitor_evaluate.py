"""The evaluator over a real store, on every engine: a hand-worked set of link attempts,
its figures checked against pandas, alert states through time (a controllable clock),
a restart, a rule change, history, the metric cache, and a failing query."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import pandas as pd
import pytest

from banking_analytics import BankingPerformanceAnalytics, EventStatus
from banking_analytics.monitor import AlertState, Rule, RuleNotFoundError

T0 = datetime(2026, 11, 2, 12, 0, tzinfo=UTC)
MINUTE = timedelta(minutes=1)
#: When the events happened: inside every 30-minute window ending 30 to 40 minutes on.
EVENTS_AT = T0 + timedelta(minutes=20)

RULE = {
    "name": "success_low",
    "metric": "connection_success_rate",
    "window": "30m",
    "by": ["institution"],
    "condition": "below",
    "warning": 0.9,
    "critical": 0.5,
    "for": "2m",
    "min_sample": 20,
    "labels": {"team": "integrations"},
    "annotations": {"summary": "{{ $labels.institution }}: {{ $value | percent }}"},
}


def attempt(institution: str, outcome: str, category: str | None, at: datetime) -> dict[str, Any]:
    key = uuid.uuid4().hex[:12]
    return {
        "event_type": "connection_attempt",
        "event_id": str(uuid.uuid4()),
        "occurred_at": at.isoformat(),
        "user_id": f"u_{key}",
        "attempt_id": f"a_{key}",
        "aggregator": "plaid",
        "institution_id": institution,
        "feature": "account_linking",
        "flow": "new",
        "started_at": at.isoformat(),
        "outcome": outcome,
        "latency_ms": 1500.0,
        **({"error_category": category} if category else {}),
    }


def attempts(institution_id: str, at: datetime, **counts: int) -> list[dict[str, Any]]:
    """``success=n``, ``institution=n``, ``user_action_required=n``... attempts, a second apart."""
    events = []
    for kind, n in counts.items():
        outcome, category = ("success", None) if kind == "success" else ("failure", kind)
        events += [attempt(institution_id, outcome, category, at) for _ in range(n)]
    return [
        {**e, "occurred_at": (at + i * timedelta(seconds=1)).isoformat()}
        for i, e in enumerate(events)
    ]


def hand_worked() -> list[dict[str, Any]]:
    """ins_a: 22 of 25 counted attempts succeed (0.88: warning; 2 user errors are not
    counted); ins_b: 8 of 20 (0.40: critical); ins_c: 5 attempts, under the sample of 20."""
    return (
        attempts(
            "ins_a", EVENTS_AT, success=22, institution=2, aggregator=1, user_action_required=2
        )
        + attempts("ins_b", EVENTS_AT, success=8, institution=12)
        + attempts("ins_c", EVENTS_AT, success=5)
    )


def pandas_success_rates(events: list[dict[str, Any]]) -> dict[str, float]:
    """Successes ÷ (successes + institution + aggregator failures), per institution."""
    frame = pd.DataFrame(events)
    counted = frame[
        (frame.outcome == "success") | frame.error_category.isin(["institution", "aggregator"])
    ]
    rates = counted.groupby("institution_id").outcome.apply(lambda s: (s == "success").mean())
    sizes = counted.groupby("institution_id").size()
    return {k: float(v) for k, v in rates.items() if sizes[k] >= 20}


def states(analytics: BankingPerformanceAnalytics) -> dict[str, tuple[str, str | None]]:
    return {
        a.labels["institution"]: (a.state, a.severity)
        for a in analytics.monitor.alerts(states=list(AlertState))
    }


def test_alerts_follow_the_store_through_time_restarts_and_rule_changes(store_url: str) -> None:
    events = hand_worked()
    with BankingPerformanceAnalytics.open(store_url) as analytics:
        assert {r.status for r in analytics.ingest(events)} == {EventStatus.ACCEPTED}
        monitor = analytics.monitor
        [stored] = monitor.apply([Rule.from_dict(RULE)], "test")
        assert (stored.version, stored.change.value) == (1, "created")

        first = monitor.evaluate(T0 + 30 * MINUTE)
        assert [(e.instances, e.transitions, e.error) for e in first] == [(3, 3, None)]
        assert states(analytics) == {
            "ins_a": ("pending", "warning"),
            "ins_b": ("pending", "critical"),
            "ins_c": ("pending", None),  # no data yet: pending like a breach (Grafana)
        }
        values = {a.labels["institution"]: a.value for a in monitor.alerts()}
        assert values == {"ins_a": 22 / 25, "ins_b": 8 / 20, "ins_c": None}
        assert {k: v for k, v in values.items() if v is not None} == pytest.approx(
            pandas_success_rates(events)
        )
        # One minute on: still pending (for = 2m). Two: firing; ins_c settles in nodata.
        monitor.evaluate(T0 + 31 * MINUTE)
        assert {s for s, _ in states(analytics).values()} == {"pending"}
        monitor.evaluate(T0 + 32 * MINUTE)
        assert states(analytics) == {
            "ins_a": ("firing", "warning"),
            "ins_b": ("firing", "critical"),
            "ins_c": ("nodata", None),
        }
        [b] = [a for a in monitor.alerts() if a.labels["institution"] == "ins_b"]
        assert b.labels == {
            "alertname": "success_low",
            "team": "integrations",
            "institution": "ins_b",
            "severity": "critical",
        }
        assert b.annotations == {"summary": "ins_b: 40%"}
        assert (b.active_at, b.fired_at) == (T0 + 30 * MINUTE, T0 + 32 * MINUTE)

    # The state is in the store: a new process carries on where this one stopped.
    with BankingPerformanceAnalytics.open(store_url) as analytics:
        monitor = analytics.monitor
        # ins_b recovers to (8 + 40) / (20 + 40) = 0.8: warning, the same alert.
        recovery = attempts("ins_b", T0 + 32 * MINUTE, success=40)
        analytics.ingest(recovery)
        monitor.evaluate(T0 + 33 * MINUTE)
        [b] = [a for a in monitor.alerts() if a.labels["institution"] == "ins_b"]
        assert (b.state, b.severity, b.value) == ("firing", "warning", pytest.approx(0.8))
        assert b.value == pytest.approx(pandas_success_rates(events + recovery)["ins_b"])
        assert (b.active_at, b.fired_at) == (T0 + 30 * MINUTE, T0 + 32 * MINUTE)

        history = monitor.history(rule="success_low")
        ins_b = [
            (h.evaluated_at - T0, h.previous_state, h.state, h.severity)
            for h in reversed(history)
            if h.labels == {"institution": "ins_b"}
        ]
        assert ins_b == [
            (30 * MINUTE, "inactive", "pending", "critical"),
            (32 * MINUTE, "pending", "firing", "critical"),
            (33 * MINUTE, "firing", "firing", "warning"),
        ]
        every = monitor.history(rule="success_low", transitions_only=False)
        assert len(every) == 4 * 3  # each instance, each of the four evaluations
        window = monitor.history(since=T0 + 31 * MINUTE, until=T0 + 33 * MINUTE)
        assert {h.evaluated_at for h in window} == {T0 + 32 * MINUTE}

        # An annotation-only change keeps the instances; any other change resets them.
        reworded = Rule.from_dict({**RULE, "annotations": {"summary": "{{ $value }}"}})
        assert monitor.apply([reworded], "test")[0].version == 2
        assert len(monitor.alerts()) == 3
        assert monitor.apply([reworded], "test")[0].change.value == "unchanged"
        stricter = Rule.from_dict({**RULE, "critical": 0.3})
        assert monitor.apply([stricter], "test")[0].version == 3
        assert monitor.alerts(states=list(AlertState)) == []
        resets = [h for h in monitor.history(rule="success_low") if h.observation == "reset"]
        assert sorted((h.labels["institution"], h.previous_state) for h in resets) == [
            ("ins_a", "firing"),
            ("ins_b", "firing"),
            ("ins_c", "nodata"),
        ]
        assert [v.version for v in monitor.store.versions("success_low")] == [3, 2, 1]
        monitor.store.delete("success_low", "test")
        assert monitor.rules() == []
        with pytest.raises(RuleNotFoundError):
            monitor.store.rule("success_low")


def test_rules_asking_the_same_question_share_one_answer_until_the_data_changes(
    analytics: BankingPerformanceAnalytics,
) -> None:
    analytics.ingest(hand_worked())
    monitor = analytics.monitor
    twin = {**RULE, "name": "success_low_twin", "for": "0"}
    monitor.apply([Rule.from_dict(RULE), Rule.from_dict(twin)], "test")
    at = T0 + 35 * MINUTE
    first, second = monitor.evaluate(at)
    assert (first.cached, second.cached) == (0, 1)
    assert [e.cached for e in monitor.evaluate(at)] == [1, 1]
    analytics.ingest(attempts("ins_a", EVENTS_AT, success=1))
    assert [e.cached for e in monitor.evaluate(at)] == [0, 1]


def test_a_failing_query_puts_the_rule_in_error_and_it_recovers(
    analytics: BankingPerformanceAnalytics,
) -> None:
    analytics.ingest(hand_worked())
    monitor = analytics.monitor
    monitor.apply([Rule.from_dict({**RULE, "for": "0"})], "test")
    monitor.evaluate(T0 + 30 * MINUTE)
    with analytics.engine.begin() as tx:
        tx.execute('ALTER TABLE "connection_attempt_events" RENAME TO "moved_away"')
    [failed] = monitor.evaluate(T0 + 31 * MINUTE)
    assert failed.error is not None
    assert "connection_attempt_events" in failed.error
    assert {a.state for a in monitor.alerts(states=list(AlertState))} == {"error"}
    with analytics.engine.begin() as tx:
        tx.execute('ALTER TABLE "moved_away" RENAME TO "connection_attempt_events"')
    monitor.evaluate(T0 + 32 * MINUTE)
    assert states(analytics) == {
        "ins_a": ("firing", "warning"),
        "ins_b": ("firing", "critical"),
        "ins_c": ("nodata", None),
    }


def test_a_rule_failing_before_it_knew_any_instance_errs_as_one_and_recovers(
    analytics: BankingPerformanceAnalytics,
) -> None:
    analytics.ingest(hand_worked())
    monitor = analytics.monitor
    monitor.apply([Rule.from_dict({**RULE, "for": "0"})], "test")
    with analytics.engine.begin() as tx:
        tx.execute('ALTER TABLE "connection_attempt_events" RENAME TO "moved_away"')
    monitor.evaluate(T0 + 30 * MINUTE)
    assert [(a.labels, a.state) for a in monitor.alerts()] == [
        ({"alertname": "success_low", "team": "integrations"}, "error")
    ]
    with analytics.engine.begin() as tx:
        tx.execute('ALTER TABLE "moved_away" RENAME TO "connection_attempt_events"')
    monitor.evaluate(T0 + 31 * MINUTE)
    assert [(a.labels.get("institution"), a.state) for a in monitor.alerts()] == [
        ("ins_a", "firing"),
        ("ins_b", "firing"),
        ("ins_c", "nodata"),
    ]
    rule_level = [h for h in monitor.history() if "institution" not in h.labels]
    assert [(h.evaluated_at - T0, h.previous_state, h.state) for h in rule_level] == [
        (31 * MINUTE, "error", "inactive"),
        (30 * MINUTE, "inactive", "error"),
    ]
