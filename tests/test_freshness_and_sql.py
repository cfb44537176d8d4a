"""Sync freshness against a hand-worked case, and compiled SQL against reviewed snapshots."""

from __future__ import annotations

import os
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from banking_analytics import BankingPerformanceAnalytics, EventStatus
from banking_analytics.analytics import RefreshState, refresh_state
from banking_analytics.metrics import MetricQuery, TimeWindow, compile_query, renderer_for
from test_metrics_handworked import sync_run

NOW = datetime(2026, 11, 2, 12, 0, tzinfo=UTC)
SNAPSHOTS = Path(__file__).parent / "snapshots"


def sync(
    connection: str, hours_ago: float, outcome: str, interval_h: float | None
) -> dict[str, Any]:
    return sync_run(
        NOW - timedelta(hours=hours_ago),
        connection,
        outcome,
        **({"error_category": "institution"} if outcome == "failure" else {}),
        **({"expected_interval_s": interval_h * 3600} if interval_h else {}),
    )


@pytest.mark.parametrize(
    ("freshness_h", "state"),
    [
        (0, RefreshState.NORMAL),
        (18, RefreshState.NORMAL),  # 1.5 x 12 h, inclusive
        (18.01, RefreshState.DELAYED),
        (48, RefreshState.DELAYED),  # 4 x 12 h, inclusive
        (48.01, RefreshState.STOPPED),
        (None, RefreshState.STOPPED),  # never refreshed
    ],
)
def test_refresh_state_thresholds(freshness_h: float | None, state: RefreshState) -> None:
    freshness = None if freshness_h is None else timedelta(hours=freshness_h)
    assert refresh_state(freshness, timedelta(hours=12)) is state


def test_sync_freshness_hand_worked(analytics: BankingPerformanceAnalytics) -> None:
    # Every 12 h: c1 refreshed 2 h ago (NORMAL); c2 last succeeded 30 h ago and failed
    # since (DELAYED: 30 > 18 and ≤ 48); c3 only failed (STOPPED); c4 reports no interval,
    # so 24 h is assumed, and last succeeded 20 h ago (NORMAL: ≤ 36 h).
    events = [
        sync("c1", 14, "success", 12),
        sync("c1", 2, "success", 12),
        sync("c2", 30, "success", 12),
        sync("c2", 5, "failure", 12),
        sync("c3", 3, "failure", 12),
        sync("c4", 20, "partial", None),
    ]
    assert {r.status for r in analytics.ingest(events)} == {EventStatus.ACCEPTED}
    fresh = analytics.sync_freshness("7d", now=NOW)
    assert fresh["connections"] == 4
    assert fresh["states"] == {"NORMAL": 2, "DELAYED": 1, "STOPPED": 1}
    by_connection = {c["connection_id"]: c for c in fresh["stalest"]}
    assert list(by_connection) == ["c3", "c2"]  # never refreshed first, then the latest
    assert by_connection["c2"]["freshness_s"] == 30 * 3600
    assert by_connection["c2"]["last_successful_sync"] == (NOW - timedelta(hours=30)).isoformat()
    group = fresh["by_institution"][0]
    assert (group["NORMAL"], group["DELAYED"], group["STOPPED"]) == (2, 1, 1)
    assert group["refresh_interval"] == "NORMAL"


QUERIES = {
    "success_rate_by_institution_hourly": MetricQuery.build(
        [
            "connection_success_rate",
            "connection_institution_error_share",
            "connection_latency_p95_ms",
            "link_conversion_rate",
        ],
        TimeWindow(NOW - timedelta(days=1), NOW),
        dimensions=["institution"],
        bucket="hour",
        filters={"aggregator": ["plaid", "mx"]},
    ),
    "feature_usage_daily_new_york": MetricQuery.build(
        ["feature_interactions", "unique_users", "feature_success_rate"],
        TimeWindow(NOW - timedelta(days=7), NOW),
        dimensions=["feature"],
        bucket="day",
        timezone="America/New_York",
    ),
    "health_counts_quarter_hour": MetricQuery.build(
        ["sync_successes", "sync_health_runs"],
        TimeWindow(NOW - timedelta(hours=6), NOW),
        dimensions=["institution", "aggregator", "feature"],
        bucket="15min",
    ),
    "connection_attempts_monthly_london": MetricQuery.build(
        ["connection_attempts", "connection_success_rate"],
        TimeWindow(NOW - timedelta(days=90), NOW),
        bucket="month",
        timezone="Europe/London",
    ),
    "net_revenue_quarterly_utc": MetricQuery.build(
        ["net_revenue"],
        TimeWindow(NOW - timedelta(days=365), NOW),
        dimensions=["currency"],
        bucket="quarter",
    ),
    "net_revenue_by_feature": MetricQuery.build(
        ["net_revenue"],
        TimeWindow(NOW - timedelta(days=30), NOW),
        dimensions=["attributed_feature", "currency"],
    ),
    "engagement_daily": MetricQuery.build(
        ["unique_users", "weekly_active_users", "dau_mau_stickiness", "paying_user_share"],
        TimeWindow(NOW - timedelta(days=14), NOW),
        bucket="day",
    ),
    "weekly_active_by_platform": MetricQuery.build(
        ["weekly_active_users"],
        TimeWindow(NOW - timedelta(days=14), NOW),
        dimensions=["platform"],
        filters={"feature": ["budget_tracking"]},
        bucket="day",
    ),
}


@pytest.mark.parametrize("dialect", ["duckdb", "postgres"])
@pytest.mark.parametrize("name", sorted(QUERIES))
def test_compiled_sql_matches_the_reviewed_snapshot(name: str, dialect: str) -> None:
    """Any change to generated SQL shows up here; BA_UPDATE_SNAPSHOTS=1 rewrites them."""
    compiled = compile_query(QUERIES[name], renderer_for(dialect))
    text = "\n\n".join(
        f"-- {c.source} (reads {', '.join(c.depends_on)})\n{c.sql};\n-- params: {len(c.params)}"
        for c in compiled
    )
    path = SNAPSHOTS / f"{name}.{dialect}.sql"
    if os.environ.get("BA_UPDATE_SNAPSHOTS") == "1":
        path.write_text(text + "\n")
    assert path.read_text() == text + "\n"
