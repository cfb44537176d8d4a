"""The query layer's new figures (rolling and derived metrics, derived sources, expressions),
each against a case worked out by hand and an independent pandas computation, on every
engine."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import pandas as pd
import pyarrow as pa
import pytest

from banking_analytics import BankingPerformanceAnalytics, EventStatus
from banking_analytics.metrics import (
    CATALOG,
    Arith,
    Case,
    Coalesce,
    Col,
    Compare,
    Count,
    CountDistinct,
    Derived,
    Greatest,
    Is,
    Least,
    Lit,
    Metric,
    MetricQuery,
    MetricService,
    Min,
    Not,
    QueryError,
    Sum,
    TimeWindow,
    Unit,
    compile_query,
    renderer_for,
)
from banking_analytics.metrics._source import EVENT_SOURCES
from banking_analytics.simulate import SimulationConfig, run_simulation
from banking_analytics.vocabulary import EventType

#: Metrics this module checks against a hand-worked case, and against pandas; with the
#: declarations of the two catalogue-wide value tests, tests/test_metric_coverage.py holds
#: them to the catalogue. Each test below asserts the figures it declares.
HAND_CHECKED = frozenset(
    {
        "weekly_active_users",
        "monthly_active_users",
        "dau_mau_stickiness",
        "paying_user_share",
        "new_users",
    }
)
PANDAS_CHECKED = HAND_CHECKED

D0 = datetime(2026, 11, 1, tzinfo=UTC)
TEN_DAYS = TimeWindow(D0, D0 + timedelta(days=10), "ten days")


def day(n: int, hour: int = 12) -> str:
    return (D0 + timedelta(days=n, hours=hour)).isoformat()


def interaction(user: str, n: int, hour: int = 12) -> dict[str, Any]:
    return {
        "event_type": "behavior",
        "event_id": str(uuid.uuid4()),
        "occurred_at": day(n, hour),
        "user_id": user,
        "feature": "budget_tracking",
        "action": "view",
    }


def payment(user: str, n: int, **fields: Any) -> dict[str, Any]:
    return {
        "event_type": "subscription",
        "event_id": str(uuid.uuid4()),
        "occurred_at": day(n),
        "user_id": user,
        "kind": "payment_succeeded",
        "subscription_id": f"sub_{user}_{n}",
        "plan": "premium",
        "tier": "premium",
        "unit_amount": 999,
        "interval": "month",
        "currency": "USD",
        "status": "active",
        "amount": 999,
        **fields,
    }


def engagement() -> list[dict[str, Any]]:
    """u1 is active on days 0 (twice), 1 and 8; u2 on day 3; u4 on day -3, before the
    window. u1 pays on day 1, u5 (never active) on day 2."""
    return [
        interaction("u1", 0, 9),
        interaction("u1", 0, 18),
        interaction("u1", 1),
        interaction("u1", 8),
        interaction("u2", 3),
        interaction("u4", -3),
        payment("u1", 1),
        payment("u5", 2),
    ]


def ingest(analytics: BankingPerformanceAnalytics, events: list[dict[str, Any]]) -> None:
    results = analytics.ingest(events)
    assert {r.status for r in results} == {EventStatus.ACCEPTED}, [r.reason for r in results]


def series(analytics: BankingPerformanceAnalytics, metrics: list[str]) -> dict[str, list[Any]]:
    result = analytics.query_metrics(metrics, TEN_DAYS, bucket="day")
    assert [r.bucket for r in result.rows] == [D0 + timedelta(days=n) for n in range(10)]
    return {m: [r.values[m].value for r in result.rows] for m in metrics}


def test_daily_weekly_and_monthly_active_users_by_hand(
    analytics: BankingPerformanceAnalytics,
) -> None:
    ingest(analytics, engagement())
    got = series(
        analytics,
        ["unique_users", "weekly_active_users", "monthly_active_users", "dau_mau_stickiness"],
    )
    # Day d counts the users active in [d - 6, d] (WAU) and [d - 29, d] (MAU): u4's day -3
    # reaches day 3 of the window; u2's day 3 reaches day 9.
    assert got["unique_users"] == [1, 1, 0, 1, 0, 0, 0, 0, 1, 0]
    assert got["weekly_active_users"] == [2, 2, 2, 3, 2, 2, 2, 2, 2, 2]
    assert got["monthly_active_users"] == [2, 2, 2, 3, 3, 3, 3, 3, 3, 3]
    assert got["dau_mau_stickiness"] == pytest.approx(
        [1 / 2, 1 / 2, 0, 1 / 3, 0, 0, 0, 0, 1 / 3, 0]
    )


def test_rolling_counts_are_cut_by_dimensions_and_filters(
    analytics: BankingPerformanceAnalytics,
) -> None:
    events = engagement()
    events.append({**interaction("u3", 2), "platform": "ios"})
    events.append({**interaction("u1", 2), "platform": "ios", "feature": "goal_setting"})
    ingest(analytics, events)
    result = analytics.query_metrics(
        ["weekly_active_users"],
        TEN_DAYS,
        bucket="day",
        dimensions=["platform"],
        filters={"feature": "budget_tracking"},
    )
    by_platform: dict[str | None, list[Any]] = {}
    for row in result.rows:
        by_platform.setdefault(row.dimensions["platform"], []).append(
            row.values["weekly_active_users"].value
        )
    # u1's goal_setting interaction is filtered out; u3 (ios) is active on day 2 only.
    assert by_platform == {
        None: [2, 2, 2, 3, 2, 2, 2, 2, 2, 2],
        "ios": [0, 0, 1, 1, 1, 1, 1, 1, 1, 0],
    }


def test_rolling_counts_need_a_day_bucket(analytics: BankingPerformanceAnalytics) -> None:
    with pytest.raises(QueryError, match="bucket 'day'"):
        analytics.query_metrics(["weekly_active_users"], TEN_DAYS, bucket="hour")
    with pytest.raises(QueryError, match="bucket 'day'"):
        analytics.query_metrics(["monthly_active_users"], TEN_DAYS)


def test_a_ratio_across_two_sources_gives_no_value_on_a_zero_denominator(
    analytics: BankingPerformanceAnalytics,
) -> None:
    ingest(analytics, engagement())
    got = series(analytics, ["paying_users", "unique_users", "paying_user_share"])
    assert got["paying_users"] == [0, 1, 1, 0, 0, 0, 0, 0, 0, 0]
    # Day 2: u5 pays but nobody is active: a division by zero is no value, not an error.
    assert got["paying_user_share"] == [0.0, 1.0, None, 0.0, None, None, None, None, 0.0, None]
    whole = analytics.query_metrics(["paying_user_share"], TEN_DAYS).single()
    assert whole.values["paying_user_share"].value == pytest.approx(2 / 2)
    assert whole.values["paying_user_share"].status == "ok"
    day_two = analytics.query_metrics(
        ["paying_user_share"], TimeWindow(D0 + timedelta(days=2), D0 + timedelta(days=3))
    ).single()
    assert day_two.values["paying_user_share"].status == "insufficient_data"


def test_a_derived_source_counts_users_new_in_the_window(
    analytics: BankingPerformanceAnalytics,
) -> None:
    ingest(analytics, engagement())
    # u4 was first seen before the window; u1 (day 0) and u2 (day 3) are new in it.
    assert analytics.query_metrics(["new_users"], TEN_DAYS).single()["new_users"] == 2
    got = series(analytics, ["new_users"])
    assert got["new_users"] == [1, 0, 0, 1, 0, 0, 0, 0, 0, 0]


def test_payments_normalised_to_a_month_by_an_arithmetic_expression(
    analytics: BankingPerformanceAnalytics,
) -> None:
    ingest(
        analytics,
        [
            # 1200 a year for 2 seats, 10% off: 2160 a period, 180 a month.
            payment("a", 1, unit_amount=1200, interval="year", quantity=2, discount_percent=10.0),
            # 500 every 2 weeks, 100 off: 400 a period, 400 x 52/12 / 2 = 866.67 a month.
            payment(
                "b", 2, unit_amount=500, interval="week", interval_count=2, discount_amount=100
            ),
            # 900 every 3 months: 300 a month.
            payment("c", 3, unit_amount=900, interval="month", interval_count=3),
            # 10 a day: 10 x 365/12 = 304.17 a month.
            payment("d", 4, unit_amount=10, interval="day"),
            # A refund is no payment.
            payment("e", 5, kind="refunded"),
        ],
    )
    row = analytics.query_metrics(
        ["payments_monthly_normalised", "gross_payments"], TEN_DAYS, filters={"currency": "USD"}
    ).single()
    assert row["payments_monthly_normalised"] == round(180 + 400 * 52 / 12 / 2 + 300 + 3650 / 12)
    assert row["gross_payments"] == 4 * 999


def test_every_expression_renders_and_evaluates_alike_on_the_engine(
    analytics: BankingPerformanceAnalytics,
) -> None:
    """Comparisons, NOT, CASE, COALESCE, LEAST/GREATEST and division by zero, run by the
    engine over three hand-made syncs."""
    ingest(
        analytics,
        [
            {
                "event_type": "sync_run",
                "event_id": str(uuid.uuid4()),
                "occurred_at": day(1),
                "user_id": "u1",
                "connection_id": f"c{i}",
                "aggregator": "plaid",
                "institution_id": "ins_1",
                "feature": "transaction_sync",
                "trigger": "scheduled",
                "started_at": day(1),
                "outcome": "success",
                "records_added": added,
                **({} if modified is None else {"records_modified": modified}),
            }
            for i, (added, modified) in enumerate([(10, 0), (4, 2), (0, None)])
        ],
    )
    syncs = EVENT_SOURCES[EventType.SYNC_RUN]
    added, modified = Col("records_added"), Col("records_modified")
    cases: dict[str, tuple[Any, Any]] = {
        # sum over rows of added / modified: 10/0 and 0/NULL have no value, 4/2 = 2.
        "ratio": (Sum(added / modified), 2),
        "more_than_3": (Count(Compare(">", added, Lit(3))), 2),
        "at_most_4": (Count(Compare("<=", added, Lit(4))), 2),
        "not_4": (Count(Compare("!=", added, Lit(4))), 2),
        "not_ten": (Count(Not(Is("records_added", (10,)))), 2),
        "coalesced": (Sum(Coalesce((modified, Lit(7)))), 9),
        "least": (Sum(Least((added, Lit(5)))), 5 + 4 + 0),
        "greatest": (Sum(Greatest((added, modified))), 10 + 4 + 0),
        "case": (
            Sum(Case(((Compare(">=", added, Lit(4)), Lit(1)),), Lit(0) - Lit(1))),
            1 + 1 - 1,
        ),
        "arithmetic": (Sum(Arith("-", added * 2, modified)), 20 + 6),
        "smallest": (Min(added), 0),
        "distinct": (CountDistinct(added - added), 1),
    }
    metrics = [
        Metric(name, syncs, measure, Unit.COUNT, name) for name, (measure, _) in cases.items()
    ]
    service = MetricService(analytics.engine)
    query = MetricQuery(tuple(metrics), TEN_DAYS)
    row = service.run(query).single()
    assert {m: row[m] for m in cases} == {m: expected for m, (_, expected) in cases.items()}
    # Every constant is a bound parameter: none is spliced into the SQL text.
    [statement] = compile_query(query, renderer_for(analytics.engine.dialect))
    assert "'success'" not in statement.sql
    assert " 7)" not in statement.sql
    assert 7 in statement.params


def test_a_derived_metric_names_only_its_inputs() -> None:
    users = CATALOG["unique_users"]
    with pytest.raises(ValueError, match="not among its inputs"):
        Derived(Col("unique_users") / Col("sessions"), (users,))
    with pytest.raises(ValueError, match="has no source"):
        Metric("x", users.source, Derived(Col("unique_users"), (users,)), Unit.COUNT, "x")


@pytest.mark.parametrize("zone", ["UTC", "America/New_York"])
def test_engagement_matches_pandas_over_ninety_days(store_url: str, zone: str) -> None:
    """DAU, WAU, MAU and DAU/MAU at every day of 90 (of a zone's wall clock: New York's
    include a 25-hour day), computed apart by pandas from the rows."""
    end = datetime(2026, 11, 20, tzinfo=UTC)
    local_end = pd.Timestamp("2026-11-20", tz=zone)
    window = TimeWindow(
        (local_end - pd.DateOffset(days=90)).to_pydatetime(), local_end.to_pydatetime(), "90d"
    )
    with BankingPerformanceAnalytics.open(store_url) as analytics:

        def sink(event_type: EventType, chunk: pa.Table) -> None:
            if event_type in (EventType.BEHAVIOR, EventType.SUBSCRIPTION):
                outcome = analytics.ingest_arrow(chunk, event_type=event_type)
                assert outcome.count(EventStatus.REJECTED) == 0

        run_simulation(SimulationConfig(users=400, days=125, seed=5, end=end), sink)
        frame: pd.DataFrame = analytics.engine.query(
            "SELECT user_id, occurred_at FROM behavior_events"
        ).to_pandas()
        payers: pd.DataFrame = analytics.engine.query(
            "SELECT user_id, occurred_at FROM subscription_events WHERE kind = 'payment_succeeded'"
        ).to_pandas()
        result = analytics.query_metrics(
            [
                "unique_users",
                "weekly_active_users",
                "monthly_active_users",
                "dau_mau_stickiness",
                "paying_users",
                "paying_user_share",
                "new_users",
            ],
            window,
            bucket="day",
            timezone=zone,
        )

    def days_of(f: pd.DataFrame) -> pd.DataFrame:
        # Each event's day on the zone's wall clock (naive: pandas' calendar days).
        at = pd.to_datetime(f.occurred_at, utc=True).dt.tz_convert(zone).dt.tz_localize(None)
        return pd.DataFrame({"user_id": f.user_id, "day": at.dt.floor("D")}).drop_duplicates()

    pairs, paying = days_of(frame), days_of(payers)
    # A user is new on the day of their first interaction ever (the store holds 125 days).
    first_seen = pairs.groupby("user_id").day.min().value_counts()
    days = pd.date_range(local_end.tz_localize(None) - pd.Timedelta(days=90), periods=90, freq="D")
    assert len(result.rows) == 90
    checked = 0
    for row, at in zip(result.rows, days, strict=True):
        assert pd.Timestamp(row.bucket).tz_convert(zone).tz_localize(None) == at

        def active(span: int, at: pd.Timestamp = at) -> int:
            inside = (pairs.day > at - pd.Timedelta(days=span)) & (pairs.day <= at)
            return int(pairs[inside].user_id.nunique())

        dau, wau, mau = active(1), active(7), active(30)
        payers_today = int(paying[paying.day == at].user_id.nunique())
        assert row["unique_users"] == dau, at
        assert row["weekly_active_users"] == wau, at
        assert row["monthly_active_users"] == mau, at
        assert row["dau_mau_stickiness"] == (pytest.approx(dau / mau) if mau else None), at
        assert row["paying_users"] == payers_today, at
        share = row["paying_user_share"]
        assert share == (pytest.approx(payers_today / dau) if dau else None), at
        assert row["new_users"] == int(first_seen.get(at, 0)), at
        checked += 1
    assert checked == 90
    assert max(r["monthly_active_users"] or 0 for r in result.rows) > 100
    assert sum(r["paying_users"] or 0 for r in result.rows) > 10
    assert sum(r["new_users"] or 0 for r in result.rows) > 10


def test_daily_users_are_the_same_asked_alone_or_beside_rolling_counts(
    analytics: BankingPerformanceAnalytics,
) -> None:
    """Beside a rolling count, distinct users per day come from the rolling statement; the
    window's first, partial day still counts only what happened after its start."""
    ingest(analytics, [*engagement(), interaction("u9", 0, 10)])
    window = TimeWindow(D0 + timedelta(hours=13), D0 + timedelta(days=9, hours=13))
    alone = analytics.query_metrics(["unique_users"], window, bucket="day")
    beside = analytics.query_metrics(["unique_users", "monthly_active_users"], window, bucket="day")
    assert [r["unique_users"] for r in alone.rows] == [r["unique_users"] for r in beside.rows]
    # u1's day 0 interactions are at 09:00 and 18:00, u9's at 10:00: before the 13:00 start.
    assert [r["unique_users"] for r in alone.rows] == [1, 1, 0, 1, 0, 0, 0, 0, 1, 0]
    assert len(compile_query(beside.query, renderer_for(analytics.engine.dialect))) == 1


def test_rolling_counts_agree_whether_days_fit_in_a_mask_or_not(
    analytics: BankingPerformanceAnalytics,
) -> None:
    """Where an engine's integers hold every day a window reaches (DuckDB: 128 bits), rolling
    counts mask them; a longer window sorts (value, day) pairs instead. Same answers."""
    ingest(analytics, engagement())
    renderer = renderer_for(analytics.engine.dialect)
    short = MetricQuery.build(["monthly_active_users"], TEN_DAYS, bucket="day")
    # 100 days and the 29 before them: 129 days, one more than a mask holds.
    long = MetricQuery.build(
        ["monthly_active_users"],
        TimeWindow(TEN_DAYS.end - timedelta(days=100), TEN_DAYS.end),
        bucket="day",
    )
    [short_sql] = compile_query(short, renderer)
    [long_sql] = compile_query(long, renderer)
    assert ("BIT_OR" in short_sql.sql) == (analytics.engine.dialect == "duckdb")
    assert "BIT_OR" not in long_sql.sql
    service = MetricService(analytics.engine)
    tail = [r["monthly_active_users"] for r in service.run(long).rows[-10:]]
    assert tail == [r["monthly_active_users"] for r in service.run(short).rows]
    assert tail == [2, 2, 2, 3, 3, 3, 3, 3, 3, 3]


def test_payments_per_london_calendar_month(analytics: BankingPerformanceAnalytics) -> None:
    """Gross and month-normalised payments per calendar month in Europe/London: a payment at
    23:30 UTC on 31 March is in April there (British Summer Time), one at 22:30 in March."""
    at = {
        "a": "2026-03-31T23:30:00+00:00",  # 00:30 on 1 April in London
        "b": "2026-03-31T22:30:00+00:00",  # 23:30 on 31 March
        "c": "2026-04-15T12:00:00+00:00",
        "d": "2026-05-31T23:00:00+00:00",  # midnight starting 1 June
    }
    ingest(
        analytics,
        [
            {**payment("a", 0, unit_amount=999, amount=999), "occurred_at": at["a"]},
            {
                **payment("b", 0, unit_amount=1200, interval="year", amount=1200),
                "occurred_at": at["b"],
            },
            {
                **payment("c", 0, unit_amount=100, interval="week", quantity=3, amount=300),
                "occurred_at": at["c"],
            },
            {
                **payment("d", 0, unit_amount=500, discount_percent=50.0, amount=250),
                "occurred_at": at["d"],
            },
        ],
    )
    window = TimeWindow(datetime(2026, 3, 1, tzinfo=UTC), datetime(2026, 7, 1, tzinfo=UTC))
    result = analytics.query_metrics(
        ["gross_payments", "payments_monthly_normalised"],
        window,
        bucket="month",
        timezone="Europe/London",
        filters={"currency": "USD"},
    )
    london = [
        datetime(2026, 3, 1, tzinfo=UTC),  # GMT
        datetime(2026, 3, 31, 23, tzinfo=UTC),  # BST from 29 March
        datetime(2026, 4, 30, 23, tzinfo=UTC),
        datetime(2026, 5, 31, 23, tzinfo=UTC),
        datetime(2026, 6, 30, 23, tzinfo=UTC),  # the window's last hour is July's
    ]
    assert [r.bucket for r in result.rows] == london
    assert [r["gross_payments"] for r in result.rows] == [1200, 999 + 300, 0, 250, 0]
    # 1200 a year: 100 a month; 100 a week for 3: 300 x 52/12 = 1300; 500 at half price.
    assert [r["payments_monthly_normalised"] for r in result.rows] == [100, 2299, 0, 250, 0]
