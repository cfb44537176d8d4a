"""Every performance figure against a small case worked out by hand, on every engine."""

from __future__ import annotations

import itertools
import re
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any, NamedTuple

import pyarrow as pa
import pytest

from banking_analytics import BankingPerformanceAnalytics, EventStatus
from banking_analytics.metrics import (
    MetricQuery,
    MetricService,
    QueryError,
    TimeWindow,
    parse_time_period,
)
from banking_analytics.metrics._service import _Answer, _LRUCache  # the cache's accounting
from banking_analytics.vocabulary import ErrorCategory

T0 = datetime(2026, 11, 2, 12, 0, tzinfo=UTC)
NOW = T0 + timedelta(hours=1)
HOUR = TimeWindow(T0, NOW, "hand")
EARLIER = TimeWindow(T0 - timedelta(hours=1), T0, "hand, the hour before")

#: A zone whose clocks change, and one half an hour off whole hours.
ZONES = ["UTC", "America/New_York", "Asia/Kolkata"]


def attempt(i: int, outcome: str, **fields: Any) -> dict[str, Any]:
    return {
        "event_type": "connection_attempt",
        "event_id": str(uuid.uuid4()),
        "occurred_at": (T0 + timedelta(seconds=10 + i)).isoformat(),
        "user_id": f"u{i}",
        "attempt_id": f"a{i}",
        "aggregator": "plaid",
        "institution_id": "ins_1",
        "feature": "account_linking",
        "flow": "new",
        "started_at": (T0 + timedelta(seconds=i)).isoformat(),
        "outcome": outcome,
        **fields,
    }


def connection_attempts() -> list[dict[str, Any]]:
    """34 attempts: 20 successes, 4 institution, 2 aggregator (one a timeout), 3 user,
    1 client and 1 unknown failures, 2 abandoned, 1 pending.

    Latencies: success k (1..20) took 1000·k ms; the 11 failures took 100..1100 ms.
    Link sessions: each success has its own; u1 and u2 failed first in the sessions
    of successes 1 and 2; every other attempt has a session of its own: 32 sessions.
    """
    events = [
        attempt(k, "success", latency_ms=1000.0 * k, link_session_id=f"s{k}") for k in range(1, 21)
    ]
    failures = [
        ("institution", "ins_2", "mx"),
        ("institution", "ins_2", "mx"),
        ("institution", "ins_2", "mx"),
        ("institution", "ins_2", "mx"),
        ("aggregator", "ins_1", "plaid"),
        ("network_timeout", "ins_1", "plaid"),
        ("user_action_required", "ins_1", "plaid"),
        ("user_action_required", "ins_1", "plaid"),
        ("user_action_required", "ins_1", "plaid"),
        ("rate_limited", "ins_1", "plaid"),
        ("unknown", "ins_1", "plaid"),
    ]
    sessions = ["f1", "f2", "f3", "f4", "f5", "f6", "s1", "s2", "f9", "f10", "f11"]
    for j, ((category, institution, aggregator), session) in enumerate(
        zip(failures, sessions, strict=True)
    ):
        events.append(
            attempt(
                21 + j,
                "failure",
                error_category=category,
                institution_id=institution,
                aggregator=aggregator,
                latency_ms=100.0 * (j + 1),
                link_session_id=session,
            )
        )
    events += [
        attempt(40, "abandoned", link_session_id="x1"),
        attempt(41, "abandoned", link_session_id="x2"),
        attempt(42, "pending", link_session_id="x3"),
    ]
    return events


def behaviour() -> list[dict[str, Any]]:
    """24 interactions with spending_analysis: 18 succeed, 2 fail, 4 say nothing;
    durations 1..24 s; users u0..u5; sessions s0..s7."""
    success: list[bool | None] = [True] * 18 + [False] * 2 + [None] * 4
    return [
        {
            "event_type": "behavior",
            "event_id": str(uuid.uuid4()),
            "occurred_at": (T0 + timedelta(minutes=i)).isoformat(),
            "user_id": f"u{i % 6}",
            "session_id": f"s{i % 8}",
            "feature": "spending_analysis",
            "action": "view_report",
            "duration_s": float(i + 1),
            **({} if success[i] is None else {"success": success[i]}),
        }
        for i in range(24)
    ]


def sync_run(ended: datetime, connection: str, outcome: str, **fields: Any) -> dict[str, Any]:
    """A run of ins_1's transaction sync through Plaid, ending a minute after it started."""
    return {
        "event_type": "sync_run",
        "event_id": str(uuid.uuid4()),
        "occurred_at": ended.isoformat(),
        "user_id": "u1",
        "connection_id": connection,
        "aggregator": "plaid",
        "institution_id": "ins_1",
        "feature": "transaction_sync",
        "trigger": "scheduled",
        "started_at": (ended - timedelta(minutes=1)).isoformat(),
        "outcome": outcome,
        **fields,
    }


def syncs() -> list[dict[str, Any]]:
    """Connection c1: 3 successes and 1 failure; c2: 1 partial (counts as success)."""
    outcomes = [("c1", "success"), ("c1", "success"), ("c1", "success"), ("c1", "failure")]
    outcomes.append(("c2", "partial"))
    return [
        sync_run(
            T0 + timedelta(minutes=5 * i + 1),
            connection,
            outcome,
            **({"error_category": "institution"} if outcome == "failure" else {}),
        )
        for i, (connection, outcome) in enumerate(outcomes)
    ]


def earlier_syncs() -> list[dict[str, Any]]:
    """27 sync runs in the hour before T0 (``EARLIER``): run i starts at T0 - 60 + 2i min
    and ends a minute later.

    c3 (expects a sync every hour): runs 0 to 13 succeed, 14 to 16 are partial (17
    synced, the last ending at T0 - 27 min), 17 and 18 fail at the institution, 19 at
    the aggregator (ending at T0 - 21 min). c4 (every 6 hours): runs 20 to 26 fail as a
    network timeout, user action required, integration, rate limited, not ready,
    unknown and with no category, which ingestion records as unknown (the last ending
    at T0 - 7 min).
    """
    failures = [
        "institution",
        "institution",
        "aggregator",
        "network_timeout",
        "user_action_required",
        "integration",
        "rate_limited",
        "not_ready",
        "unknown",
        None,
    ]
    runs: list[tuple[str, str | None]] = [("success", None)] * 14 + [("partial", None)] * 3
    runs += [("failure", category) for category in failures]
    return [
        sync_run(
            T0 - timedelta(minutes=59 - 2 * i),
            "c3" if i < 20 else "c4",
            outcome,
            expected_interval_s=3600.0 if i < 20 else 21600.0,
            **({"error_category": category} if category else {}),
        )
        for i, (outcome, category) in enumerate(runs)
    ]


def reports() -> list[dict[str, Any]]:
    """Four client reports: success rates of 0.90, 0.95 and 1.00 for account linking and
    a latency of 1200 ms for transaction sync."""
    measured = [("connection_success_rate", "account_linking", v) for v in (0.90, 0.95, 1.00)]
    measured.append(("connection_latency", "transaction_sync", 1200.0))
    return [
        {
            "event_type": "performance_metric",
            "event_id": str(uuid.uuid4()),
            "occurred_at": (T0 + timedelta(minutes=30 + i)).isoformat(),
            "user_id": f"u{i}",
            "metric_type": metric_type,
            "feature": feature,
            "value": value,
        }
        for i, (metric_type, feature, value) in enumerate(measured)
    ]


#: The EUR payment is accepted once EUR has a rate to the reporting currency (USD).
EUR_RATES = [{"currency": "EUR", "valid_from": "2020-01-01", "rate": "1.08"}]


def payments() -> list[dict[str, Any]]:
    """Three USD payments of 999 and one refund of 999 for spending_analysis; 500 EUR."""
    rows = [("payment_succeeded", 999, "USD")] * 3 + [("refunded", 999, "USD")]
    rows.append(("payment_succeeded", 500, "EUR"))
    return [
        {
            "event_type": "subscription",
            "event_id": str(uuid.uuid4()),
            "occurred_at": (T0 + timedelta(minutes=i + 1)).isoformat(),
            "user_id": f"u{i}",
            "kind": kind,
            "subscription_id": f"sub{i}",
            "plan": "premium_monthly",
            "tier": "premium",
            "unit_amount": 999,
            "interval": "month",
            "currency": currency,
            "status": "active",
            "amount": amount,
            "attributed_feature": "spending_analysis",
        }
        for i, (kind, amount, currency) in enumerate(rows)
    ]


@pytest.fixture
def hand(analytics: BankingPerformanceAnalytics) -> BankingPerformanceAnalytics:
    events = connection_attempts() + behaviour() + syncs() + payments() + reports()
    analytics.load_exchange_rates(EUR_RATES)
    results = analytics.ingest(events + earlier_syncs())
    assert {r.status for r in results} == {EventStatus.ACCEPTED}, [
        r.reason for r in results if r.status is not EventStatus.ACCEPTED
    ]
    return analytics


def test_success_rate_breakdown_and_exclusions(hand: BankingPerformanceAnalytics) -> None:
    perf = hand.analyze_connection_performance(HOUR)
    rate = perf["success_rate"]
    assert rate["average"] == pytest.approx(20 / 26)
    assert rate["sample_size"] == 26
    breakdown = rate["breakdown"]
    assert breakdown == {
        "success": pytest.approx(20 / 26),
        "error_institution": pytest.approx(4 / 26),
        "error_aggregator": pytest.approx(2 / 26),
    }
    assert sum(breakdown.values()) == pytest.approx(1.0)
    assert rate["excluded"] == {
        "user_errors": 3,
        "abandoned": 2,
        "pending": 1,
        "client_errors": 1,
        "unattributed_failures": 1,
    }
    assert perf["attempts"] == 34
    # Nothing happened in the hour before.
    assert rate["previous_period"] is None
    assert rate["change"] is None


def test_latency_nearest_rank_percentiles(hand: BankingPerformanceAnalytics) -> None:
    latency = hand.analyze_connection_performance(HOUR)["latency"]
    # 31 completed attempts: 100..900, 1000 (failure), 1000, 1100, 2000..20000.
    assert latency["sample_size"] == 31
    assert latency["average_ms"] == pytest.approx((6600 + 210_000) / 31)
    assert latency["p50_ms"] == 5000  # ceil(0.50·31) = 16th
    assert latency["p95_ms"] == 19000  # ceil(0.95·31) = 30th
    assert latency["p99_ms"] == 20000  # ceil(0.99·31) = 31st
    success = latency["success_only"]
    assert success["sample_size"] == 20
    assert success["average_ms"] == pytest.approx(10500)
    assert (success["p50_ms"], success["p95_ms"], success["p99_ms"]) == (10000, 19000, 20000)


def test_link_conversion(hand: BankingPerformanceAnalytics) -> None:
    conversion = hand.analyze_connection_performance(HOUR)["link_conversion"]
    assert conversion["sessions"] == 32
    assert conversion["rate"] == pytest.approx(20 / 32)
    assert conversion["abandonment_rate"] == pytest.approx(2 / 32)


def test_breakdowns_say_insufficient_data_below_the_minimum_sample(
    hand: BankingPerformanceAnalytics,
) -> None:
    perf = hand.analyze_connection_performance(HOUR)
    by_aggregator = {row["aggregator"]: row for row in perf["by_aggregator"]}
    # plaid: 20 successes + 2 aggregator failures = 22 ≥ 20; mx: 4 institution failures.
    assert by_aggregator["plaid"]["success_rate"] == pytest.approx(20 / 22)
    assert by_aggregator["plaid"]["attempts"] == 30
    assert by_aggregator["mx"]["success_rate"] is None
    assert by_aggregator["mx"]["status"] == "insufficient_data"
    assert by_aggregator["mx"]["sample_size"] == 4


def test_error_rates_by_category(hand: BankingPerformanceAnalytics) -> None:
    errors = hand.analyze_error_rates(HOUR)
    connection = errors["connection"]
    assert connection["total"] == 34
    assert connection["failures"] == 11
    assert connection["error_rate"] == pytest.approx(11 / 34)
    by_category = connection["by_category"]
    assert by_category["institution"] == {
        "count": 4,
        "rate": pytest.approx(4 / 34),
        "responsible_party": "institution",
    }
    assert by_category["user_action_required"]["count"] == 3
    assert by_category["network_timeout"]["responsible_party"] == "aggregator"
    assert sum(c["count"] for c in by_category.values()) + connection["uncategorised"] == 11
    sync = errors["sync"]
    assert (sync["total"], sync["failures"]) == (5, 1)
    assert sync["by_category"]["institution"]["rate"] == pytest.approx(1 / 5)


def test_feature_usage(hand: BankingPerformanceAnalytics) -> None:
    usage = hand.analyze_feature_usage(HOUR)["feature_usage"]
    assert set(usage) == {
        "account_linking",
        "transaction_sync",
        "balance_monitoring",
        "spending_analysis",
        "budget_tracking",
        "goal_setting",
        "bill_reminders",
        "investment_tracking",
        "credit_monitoring",
        "tax_optimization",
    }
    spending = usage["spending_analysis"]
    assert spending["usage_count"] == 24
    assert spending["unique_users"] == 6
    assert spending["sessions"] == 8
    assert spending["success_rate"] == pytest.approx(18 / 20)
    assert spending["mean_duration_s"] == pytest.approx(12.5)
    assert usage["goal_setting"]["usage_count"] == 0
    assert usage["goal_setting"]["success_rate"] is None
    only = hand.analyze_feature_usage(HOUR, feature="spending_analysis")["feature_usage"]
    assert list(only) == ["spending_analysis"]


def test_sync_frequency_and_revenue_through_generic_queries(
    hand: BankingPerformanceAnalytics,
) -> None:
    day = TimeWindow(T0, T0 + timedelta(days=1))
    frequency = hand.query_metrics(["sync_frequency_per_day", "sync_success_rate"], day).single()
    # 4 successful or partial syncs over 2 connections in one day.
    assert frequency["sync_frequency_per_day"] == pytest.approx(2.0)
    assert frequency.values["sync_success_rate"].status.value == "insufficient_data"
    revenue = hand.query_metrics(
        ["net_revenue"], HOUR, dimensions=["attributed_feature", "currency"]
    )
    got = {(r.dimensions["attributed_feature"], r.dimensions["currency"]): r for r in revenue.rows}
    assert got[("spending_analysis", "USD")]["net_revenue"] == 1998
    assert got[("spending_analysis", "EUR")]["net_revenue"] == 500


def test_money_is_never_summed_across_currencies(hand: BankingPerformanceAnalytics) -> None:
    with pytest.raises(QueryError, match="currency"):
        hand.query_metrics(["net_revenue"], HOUR)
    usd = hand.query_metrics(["net_revenue"], HOUR, filters={"currency": "USD"}).single()
    assert usd["net_revenue"] == 1998


#: A figure: its value and the sample it rests on (None for counts, sums and latest values).
Figure = tuple[float | datetime | None, int | None]


class Cut(NamedTuple):
    """A query over the hand-worked events and every row it must answer, figure by figure."""

    window: TimeWindow
    dimensions: tuple[str, ...]
    rows: dict[tuple[str, ...], dict[str, Figure]]


CATEGORIES = [c.value for c in ErrorCategory]


def per_category(source: str, rates: dict[str, float], sample: int) -> dict[str, Figure]:
    """The error rate of every category (zero where none failed so)."""
    return {f"{source}_error_rate_{c}": (rates.get(c, 0.0), sample) for c in CATEGORIES}


#: Every catalogue metric's figures over the events above (tests/test_metric_coverage.py
#: holds this to the catalogue).
HAND_CUTS = (
    # The 34 attempts and 24 interactions: see connection_attempts() and behaviour().
    Cut(
        HOUR,
        (),
        {
            (): {
                "connection_success_rate": (20 / 26, 26),
                "connection_institution_error_share": (4 / 26, 26),
                "connection_aggregator_error_share": (2 / 26, 26),  # one a timeout
                "connection_attempts": (34, None),
                "connection_health_attempts": (26, None),
                "connection_successes": (20, None),
                "connection_user_errors": (3, None),
                "connection_client_errors": (1, None),  # rate limited
                "connection_unattributed_failures": (1, None),  # unknown
                "connection_abandoned": (2, None),
                "connection_pending": (1, None),
                "connection_failures": (11, None),
                "connection_error_rate": (11 / 34, 34),
                **per_category(
                    "connection",
                    {
                        "user_action_required": 3 / 34,
                        "institution": 4 / 34,
                        "aggregator": 1 / 34,
                        "network_timeout": 1 / 34,
                        "rate_limited": 1 / 34,
                        "unknown": 1 / 34,
                    },
                    34,
                ),
                # 31 completed: 100..900, 1000 (failure), 1000, 1100, 2000..20000 ms.
                "connection_latency_mean_ms": ((6600 + 210_000) / 31, 31),
                "connection_latency_p50_ms": (5000, 31),  # the ceil(0.50·31) = 16th
                "connection_latency_p95_ms": (19000, 31),  # the 30th
                "connection_latency_p99_ms": (20000, 31),  # the 31st
                "connection_latency_mean_ms_success": (10500, 20),
                "connection_latency_p50_ms_success": (10000, 20),  # the 10th of 20
                "connection_latency_p95_ms_success": (19000, 20),  # the 19th
                "connection_latency_p99_ms_success": (20000, 20),  # the 20th
                "link_conversion_rate": (20 / 32, 32),
                "link_abandonment_rate": (2 / 32, 32),
                "link_sessions": (32, None),
                "feature_interactions": (24, None),
                "unique_users": (6, None),
                "sessions": (8, None),
                "feature_success_rate": (18 / 20, 20),
                "feature_mean_duration_s": (12.5, 24),  # (1 + ... + 24) / 24
                "interactions_per_user": (24 / 6, 6),
                "sessions_per_user": (8 / 6, 6),
            }
        },
    ),
    Cut(
        HOUR,
        ("currency",),
        {
            # Every payment is of a monthly plan at 999 a unit: normalised, 999 a month each.
            ("USD",): {
                "net_revenue": (3 * 999 - 999, None),
                "gross_payments": (3 * 999, None),
                "payments_monthly_normalised": (3 * 999, None),
                "paying_users": (3, None),
                # Payments and refunds only: no upgrade among them.
                "subscription_upgrades": (0, None),
            },
            ("EUR",): {
                "net_revenue": (500, None),
                "gross_payments": (500, None),
                "payments_monthly_normalised": (999, None),
                "paying_users": (1, None),
                "subscription_upgrades": (0, None),
            },
        },
    ),
    Cut(
        HOUR,
        ("metric_type",),
        {
            ("connection_success_rate",): {
                "reported_value_mean": (0.95, 3),
                "reported_measurements": (3, None),
            },
            ("connection_latency",): {
                "reported_value_mean": (1200.0, 1),
                "reported_measurements": (1, None),
            },
        },
    ),
    # The 27 sync runs of earlier_syncs(): 17 synced, 10 failed, 21 in the bank-health view.
    Cut(
        EARLIER,
        (),
        {
            (): {
                "sync_success_rate": (17 / 21, 21),
                "sync_runs": (27, None),
                "sync_successes": (17, None),
                "sync_health_runs": (21, None),
                "sync_frequency_per_day": (17 / 2 / (1 / 24), 2),  # per connection, in 1 h
                "sync_successes_per_connection": (17 / 2, 2),
                "sync_connections": (2, None),
                "sync_last_success_at": (T0 - timedelta(minutes=27), None),
                "sync_last_run_at": (T0 - timedelta(minutes=7), None),
                "sync_expected_interval_s": (21600.0, None),
                "sync_failures": (10, None),
                "sync_error_rate": (10 / 27, 27),
                **per_category(
                    "sync",
                    {c: (2 if c in ("institution", "unknown") else 1) / 27 for c in CATEGORIES},
                    27,
                ),
            }
        },
    ),
    Cut(
        EARLIER,
        ("connection",),
        {
            ("c3",): {
                "sync_runs": (20, None),
                "sync_error_rate": (3 / 20, 20),
                "sync_last_success_at": (T0 - timedelta(minutes=27), None),
                "sync_last_run_at": (T0 - timedelta(minutes=21), None),
                "sync_expected_interval_s": (3600.0, None),
            },
            ("c4",): {
                "sync_runs": (7, None),
                "sync_error_rate": (None, 7),  # below the minimum sample of 20
                "sync_last_success_at": (None, None),  # it never synced
                "sync_last_run_at": (T0 - timedelta(minutes=7), None),
                "sync_expected_interval_s": (21600.0, None),
            },
        },
    ),
)


def test_every_catalogue_metric_gives_its_hand_worked_figures(
    hand: BankingPerformanceAnalytics,
) -> None:
    """Each cut answers exactly its rows, each row exactly its figures, straight from the
    metric layer (the analyses above assemble some of these again)."""
    for cut in HAND_CUTS:
        (names,) = {tuple(figures) for figures in cut.rows.values()}
        result = hand.query_metrics(list(names), cut.window, dimensions=list(cut.dimensions))
        got = {tuple(r.dimensions.values()): r.values for r in result.rows}
        assert set(got) == set(cut.rows), cut
        for key, figures in cut.rows.items():
            assert set(got[key]) == set(figures), key
            for name, (value, sample) in figures.items():
                figure = got[key][name]
                assert figure.sample_size == sample, (name, key, figure)
                if value is None or isinstance(value, datetime):
                    assert figure.value == value, (name, key, figure)
                    assert figure.status == ("ok" if value else "insufficient_data")
                else:
                    assert figure.value == pytest.approx(value), (name, key, figure)
                    assert figure.status == "ok", (name, key, figure)


def opened_at(analytics: BankingPerformanceAnalytics, times: list[str]) -> None:
    """One user opening budget tracking at each of ``times``."""
    events = [
        {
            "event_type": "behavior",
            "occurred_at": t,
            "user_id": "u1",
            "feature": "budget_tracking",
            "action": "open",
        }
        for t in times
    ]
    assert {r.status for r in analytics.ingest(events)} == {EventStatus.ACCEPTED}


def test_day_buckets_follow_the_requested_timezone(analytics: BankingPerformanceAnalytics) -> None:
    # 03:30 and 03:45 UTC on 10 March are 23:30 and 23:45 on 9 March in New York (EDT,
    # UTC-4 since 8 March); 05:00 UTC is 01:00 on 10 March there.
    times = ["2026-03-10T03:30:00Z", "2026-03-10T03:45:00Z", "2026-03-10T05:00:00Z"]
    opened_at(analytics, times)
    window = TimeWindow(datetime(2026, 3, 9, 4, tzinfo=UTC), datetime(2026, 3, 11, 4, tzinfo=UTC))
    local = analytics.query_metrics(
        ["feature_interactions"], window, bucket="day", timezone="America/New_York"
    )
    assert [(r.bucket, r["feature_interactions"]) for r in local.rows] == [
        (datetime(2026, 3, 9, 4, tzinfo=UTC), 2),
        (datetime(2026, 3, 10, 4, tzinfo=UTC), 1),
    ]
    utc = analytics.query_metrics(["feature_interactions"], window, bucket="day")
    assert [(r.bucket, r["feature_interactions"]) for r in utc.rows] == [
        (datetime(2026, 3, 9, tzinfo=UTC), 0),
        (datetime(2026, 3, 10, tzinfo=UTC), 3),
        (datetime(2026, 3, 11, tzinfo=UTC), 0),
    ]
    assert local.as_dict()["rows"][0]["bucket"] == "2026-03-09T00:00:00-04:00"


def test_weeks_start_on_monday_and_minutes_cut_at_the_minute(
    analytics: BankingPerformanceAnalytics,
) -> None:
    # Sunday 8 March 2026 23:30 UTC is still week 2 March in UTC, but Monday 9 March
    # 00:30 in Europe/Berlin (UTC+1): the next week there. Monday 9 March 00:10 UTC is
    # week 9 March in UTC. 12:00:59 and 12:01:00 fall in two minutes.
    times = [
        "2026-03-08T23:30:00Z",
        "2026-03-09T00:10:00Z",
        "2026-03-11T12:00:59.999Z",
        "2026-03-11T12:01:00Z",
    ]
    opened_at(analytics, times)
    window = TimeWindow(datetime(2026, 3, 2, tzinfo=UTC), datetime(2026, 3, 16, tzinfo=UTC))

    def weeks(timezone: str) -> list[tuple[datetime | None, object]]:
        result = analytics.query_metrics(
            ["feature_interactions"], window, bucket="week", timezone=timezone
        )
        return [(r.bucket, r["feature_interactions"]) for r in result.rows]

    assert weeks("UTC") == [
        (datetime(2026, 3, 2, tzinfo=UTC), 1),
        (datetime(2026, 3, 9, tzinfo=UTC), 3),
    ]
    # Berlin's weeks start at 23:00 UTC on the Sunday before (the window starts inside one).
    assert weeks("Europe/Berlin") == [
        (datetime(2026, 3, 1, 23, tzinfo=UTC), 0),
        (datetime(2026, 3, 8, 23, tzinfo=UTC), 4),
        (datetime(2026, 3, 15, 23, tzinfo=UTC), 0),
    ]
    minutes = analytics.query_metrics(
        ["feature_interactions"],
        TimeWindow(datetime(2026, 3, 11, 12, tzinfo=UTC), datetime(2026, 3, 11, 12, 3, tzinfo=UTC)),
        bucket="minute",
    )
    assert [(r.bucket, r["feature_interactions"]) for r in minutes.rows] == [
        (datetime(2026, 3, 11, 12, 0, tzinfo=UTC), 1),
        (datetime(2026, 3, 11, 12, 1, tzinfo=UTC), 1),
        (datetime(2026, 3, 11, 12, 2, tzinfo=UTC), 0),
    ]


def test_hourly_series_has_every_hour_and_compares_with_the_previous_period(
    hand: BankingPerformanceAnalytics,
) -> None:
    perf = hand.analyze_connection_performance("24h", now=NOW)
    points = perf["time_series"]["points"]
    assert perf["time_series"]["bucket"] == "hour"
    assert len(points) == 24
    assert [p["connection_attempts"] for p in points][-1] == 34
    assert sum(p["connection_attempts"] for p in points) == 34
    assert points[-1]["start"] == T0.isoformat()
    assert points[-1]["connection_success_rate"] == pytest.approx(20 / 26)
    assert points[0]["connection_success_rate"] is None


def test_filters_narrow_the_events(hand: BankingPerformanceAnalytics) -> None:
    only_mx = hand.query_metrics(
        ["connection_attempts"], HOUR, filters={"aggregator": ["mx"]}
    ).single()
    assert only_mx["connection_attempts"] == 4
    two = hand.query_metrics(
        ["connection_attempts"], HOUR, filters={"institution": ["ins_1", "ins_2"]}
    ).single()
    assert two["connection_attempts"] == 34


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"metrics": ["no_such_metric"]}, "unknown metric 'no_such_metric'"),
        ({"metrics": []}, "at least one metric"),
        (
            {"metrics": ["feature_interactions"], "dimensions": ["institution"]},
            "cannot be cut by 'institution'",
        ),
        (
            {"metrics": ["connection_attempts"], "filters": {"aggregator": ["nope"]}},
            "filters.aggregator: 'nope' is not one of",
        ),
        (
            {"metrics": ["connection_attempts"], "filters": {"institution": ["x'; DROP"]}},
            "is not a valid institution_id",
        ),
        ({"metrics": ["connection_attempts"], "bucket": "fortnight"}, "bucket 'fortnight'"),
        ({"metrics": ["connection_attempts"], "timezone": "Mars/Olympus"}, "Mars/Olympus"),
        (
            {"metrics": ["connection_attempts"], "time_period": "90d", "bucket": "minute"},
            "more than 10000 buckets",
        ),
        ({"metrics": ["connection_attempts"], "time_period": "yesterday"}, "not understood"),
    ],
)
def test_bad_queries_name_the_part_at_fault(
    analytics: BankingPerformanceAnalytics, kwargs: dict[str, Any], message: str
) -> None:
    kwargs.setdefault("time_period", "24h")
    with pytest.raises(QueryError, match=re.escape(message)):
        analytics.query_metrics(**kwargs)


def test_windows_must_be_aware_and_ordered() -> None:
    with pytest.raises(QueryError, match="timezone-aware"):
        TimeWindow(datetime(2026, 1, 1), datetime(2026, 1, 2, tzinfo=UTC))
    with pytest.raises(QueryError, match="must be after"):
        TimeWindow(NOW, T0)


def test_cached_answer_is_reused_until_new_events_arrive(
    hand: BankingPerformanceAnalytics,
) -> None:
    first = hand.query_metrics(["connection_attempts", "feature_interactions"], HOUR)
    assert first.cached == 0
    again = hand.query_metrics(["connection_attempts", "feature_interactions"], HOUR)
    assert again.cached == 2
    assert again.single()["connection_attempts"] == 34
    # A new behaviour event invalidates only the statement over behaviour events.
    hand.record_user_behavior(
        feature="spending_analysis",
        action="open",
        user_id="u9",
        occurred_at=(T0 + timedelta(minutes=59)).isoformat(),
    )
    after = hand.query_metrics(["connection_attempts", "feature_interactions"], HOUR)
    assert after.cached == 1
    assert after.single()["feature_interactions"] == 25


def test_new_event_changes_the_cached_connection_answer(
    hand: BankingPerformanceAnalytics,
) -> None:
    before = hand.analyze_connection_performance(HOUR)
    assert hand.analyze_connection_performance(HOUR) == before
    hand.ingest([attempt(99, "failure", error_category="institution", latency_ms=50.0)])
    after = hand.analyze_connection_performance(HOUR)
    assert after["success_rate"]["average"] == pytest.approx(20 / 27)
    assert after["attempts"] == 35


def test_dashboard_is_the_analyses_together(hand: BankingPerformanceAnalytics) -> None:
    board = hand.performance_dashboard(HOUR)
    assert set(board) == {"connection", "hourly", "errors", "institution_health", "sync_freshness"}
    assert board["connection"] == hand.analyze_connection_performance(HOUR)
    assert board["errors"] == hand.analyze_error_rates(HOUR)
    assert [r["values"]["connection_attempts"]["value"] for r in board["hourly"]["rows"]] == [34]
    some = hand.performance_dashboard(HOUR, parts=["errors"])
    assert list(some) == ["errors"]
    with pytest.raises(QueryError, match="parts"):
        hand.performance_dashboard(HOUR, parts=["weather"])


def test_a_named_period_without_now_ends_at_the_next_whole_minute() -> None:
    window = parse_time_period("24h")
    assert window.end.second == window.end.microsecond == 0
    assert timedelta(0) <= window.end - datetime.now(UTC) <= timedelta(minutes=1)
    assert window.length == timedelta(hours=24)
    exact = parse_time_period("1h", now=T0 + timedelta(seconds=7))
    assert exact.end == T0 + timedelta(seconds=7)


def test_the_cache_keeps_to_its_byte_bound(hand: BankingPerformanceAnalytics) -> None:
    query = MetricQuery.build(["connection_attempts"], HOUR, dimensions=["institution"])
    tiny = MetricService(hand.engine, cache_bytes=1)
    assert tiny.run(query).cached == 0
    assert tiny.run(query).cached == 0  # too big to keep: asked again
    roomy = MetricService(hand.engine)
    roomy.run(query)
    assert roomy.run(query).cached == 1


def test_figures_kept_with_a_cached_answer_count_towards_the_byte_bound(
    hand: BankingPerformanceAnalytics,
) -> None:
    query = MetricQuery.build(["connection_attempts"], HOUR, dimensions=["institution"])
    (statement,) = MetricService(hand.engine).compile(query)
    parts = statement.parts[0]
    table = pa.table({"institution": [f"ins_{i}" for i in range(1000)], parts.value: range(1000)})

    def filled(read_figures: bool) -> _LRUCache:
        # Room for three answers' tables exactly.
        cache = _LRUCache(10, 3 * table.nbytes)
        for key in ("first", "second", "third"):
            answer = _Answer(table)
            cache.put((key,), answer)
            if key == "second" and read_figures:
                assert len(answer.figures_of(parts)) == 1000
        return cache

    assert filled(read_figures=False).get(("first",)) is not None
    # The figures read from the second answer take it past the bound: the next put
    # evicts the least recently used.
    assert filled(read_figures=True).get(("first",)) is None


#: New York springs forward on 8 March 2026 (2:00 EST -> 3:00 EDT); London falls back on
#: 25 October 2026 (2:00 BST -> 1:00 GMT: the hour from 1:00 is lived twice).
SPRING = TimeWindow(
    datetime(2026, 3, 7, 23, 7, 30, tzinfo=UTC), datetime(2026, 3, 16, 23, 8, 30, tzinfo=UTC)
)
SPRING_MORNING = TimeWindow(
    datetime(2026, 3, 8, 6, 7, 30, tzinfo=UTC), datetime(2026, 3, 8, 10, 9, tzinfo=UTC)
)
AUTUMN_NIGHT = TimeWindow(
    datetime(2026, 10, 24, 22, 0, tzinfo=UTC), datetime(2026, 10, 25, 4, 0, tzinfo=UTC)
)
CUTS = [
    *((bucket, zone, SPRING) for bucket in ("15min", "hour", "day", "week") for zone in ZONES),
    *(("minute", zone, SPRING_MORNING) for zone in ZONES),
    ("hour", "America/New_York", SPRING_MORNING),
    ("hour", "Europe/London", AUTUMN_NIGHT),
]


def every(step: timedelta, window: TimeWindow) -> list[datetime]:
    count = -(-window.length // step)
    return [window.start + i * step for i in range(count)]


def test_gap_filling_lists_the_buckets_the_engines_cut(
    analytics: BankingPerformanceAnalytics,
) -> None:
    """An attempt every 10 minutes (every 30 s over the minute window) puts one in every
    bucket: the buckets the engine cuts are those gap filling lists for a query that
    matches no event. Some are worked out by hand: New York's days and weeks start at
    local midnight (05:00 UTC in winter, 04:00 in summer), and London's twice-lived hour
    is one bucket, which both engines start at its later instant (1:00 GMT)."""
    times = every(timedelta(minutes=10), SPRING) + every(timedelta(seconds=30), SPRING_MORNING)
    times += every(timedelta(minutes=10), AUTUMN_NIGHT)
    events = [
        {**attempt(i, "success"), "occurred_at": at.isoformat(), "started_at": at.isoformat()}
        for i, at in enumerate(times)
    ]
    results = analytics.ingest(events)
    assert {r.status for r in results} == {EventStatus.ACCEPTED}
    cut: dict[tuple[str, str, TimeWindow], list[datetime | None]] = {}
    for bucket, zone, window in CUTS:
        query = MetricQuery.build(["connection_attempts"], window, bucket=bucket, timezone=zone)
        engine = [r.bucket for r in analytics.metrics.run(query, fill_gaps=False).rows]
        nothing = MetricQuery.build(
            ["connection_attempts"],
            window,
            bucket=bucket,
            timezone=zone,
            filters={"institution": "ins_none"},
        )
        filled = analytics.metrics.run(nothing).rows
        assert [r.bucket for r in filled] == engine, (bucket, zone)
        assert all(r["connection_attempts"] == 0 for r in filled)
        cut[bucket, zone, window] = engine

    def utc(day: int, hour: int, month: int = 3) -> datetime:
        return datetime(2026, month, day, hour, tzinfo=UTC)

    assert cut["day", "America/New_York", SPRING] == [utc(7, 5), utc(8, 5)] + [
        utc(day, 4) for day in range(9, 17)
    ]
    assert cut["week", "America/New_York", SPRING] == [utc(2, 5), utc(9, 4), utc(16, 4)]
    assert cut["week", "UTC", SPRING] == [utc(2, 0), utc(9, 0), utc(16, 0)]
    # 01:00-02:00 EST is followed by 03:00 EDT: no bucket for a 2:00 that never was.
    assert cut["hour", "America/New_York", SPRING_MORNING] == [
        utc(8, hour) for hour in range(6, 11)
    ]
    assert cut["hour", "Europe/London", AUTUMN_NIGHT] == [
        utc(24, 22, 10),
        utc(24, 23, 10),
        utc(25, 1, 10),
        utc(25, 2, 10),
        utc(25, 3, 10),
    ]
    for bucket, width in (("15min", 15), ("hour", 60), ("day", 1440)):
        starts = cut[bucket, "UTC", SPRING]
        assert starts[0] <= SPRING.start < starts[1]
        assert starts[-1] < SPRING.end <= starts[-1] + timedelta(minutes=width)
        assert all(b - a == timedelta(minutes=width) for a, b in itertools.pairwise(starts))
    minutes = cut["minute", "Asia/Kolkata", SPRING_MORNING]
    assert minutes[0] == SPRING_MORNING.start.replace(second=0)
    assert len(minutes) == 4 * 60 + 2  # 06:07 to 10:08, both partly in the window
