"""Threshold rules on metrics that have a figure per day (rolling active users, the revenue
ledger's): read with a day bucket, the latest day of the window compared, on every engine."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from banking_analytics import BankingPerformanceAnalytics, EventStatus
from banking_analytics.monitor import Rule, RuleError

#: A Tuesday, noon: its day (UTC) is the window's last.
NOW = datetime(2026, 3, 10, 12, tzinfo=UTC)


def used(user: str, at: datetime) -> dict[str, Any]:
    return {
        "event_type": "behavior",
        "event_id": str(uuid.uuid4()),
        "user_id": user,
        "feature": "budget_tracking",
        "action": "open",
        "occurred_at": at.isoformat(),
    }


def subscribed(customer: str, at: datetime, unit_amount: int) -> dict[str, Any]:
    return {
        "event_type": "subscription",
        "event_id": str(uuid.uuid4()),
        "user_id": customer,
        "subscription_id": f"sub_{customer}",
        "occurred_at": at.isoformat(),
        "kind": "subscribed",
        "status": "active",
        "plan": "premium",
        "tier": "premium",
        "unit_amount": unit_amount,
        "interval": "month",
        "currency": "USD",
    }


def evaluated(analytics: BankingPerformanceAnalytics, rule: dict[str, Any]) -> tuple[Any, ...]:
    analytics.monitor.apply([Rule.from_dict(rule)], changed_by="test")
    (report,) = analytics.monitor.evaluate(NOW)
    assert report.error is None, report.error
    (alert,) = analytics.monitor.alerts()
    return alert.state, alert.severity, alert.value


def test_rolling_users_and_mrr_are_compared_at_the_windows_last_day(store_url: str) -> None:
    day = timedelta(days=1)
    events = [
        *(used(user, NOW - 2 * day) for user in ("a", "b", "c")),  # 8 March
        used("d", NOW - day),  # 9 March
        used("e", NOW - 9 * day),  # 1 March: outside 4-10 March
        used("f", NOW - timedelta(hours=3)),  # 10 March, 09:00
        subscribed("c1", datetime(2026, 2, 1, tzinfo=UTC), 1000),
        subscribed("c2", NOW - timedelta(hours=4), 2500),  # 10 March, 08:00
    ]
    with BankingPerformanceAnalytics.open(store_url) as analytics:
        results = analytics.ingest(events)
        rejected = [r.errors for r in results if r.status is not EventStatus.ACCEPTED]
        assert not rejected, rejected
        # Weekly active users on 10 March (4-10 March): a, b, c, d and f; on 9 March 4.
        wau = {"name": "wau_low", "metric": "weekly_active_users", "window": "2d"}
        assert evaluated(
            analytics, {**wau, "condition": "below", "warning": 6, "critical": 4.5}
        ) == ("firing", "warning", 5.0)
        analytics.monitor.delete("wau_low", Rule, "test")
        # MRR at the end of 10 March: $10 + $25, in cents; on 9 March only $10.
        mrr = {"name": "mrr_low", "metric": "mrr", "window": "3d", "filters": {"currency": "USD"}}
        assert evaluated(analytics, {**mrr, "condition": "below", "critical": 5000}) == (
            "firing",
            "critical",
            3500.0,
        )


def test_per_day_metrics_are_compared_by_value_and_not_judged_for_anomalies() -> None:
    base = {"name": "r", "metric": "monthly_active_users", "window": "1d"}
    with pytest.raises(RuleError, match="compare: monthly_active_users has a figure per day"):
        Rule.from_dict({**base, "condition": "below", "critical": 10, "compare": "change"})
    with pytest.raises(RuleError, match="metric: mrr has a figure per day"):
        Rule.from_dict({**base, "metric": "mrr", "condition": "anomaly", "severity": "warning"})
