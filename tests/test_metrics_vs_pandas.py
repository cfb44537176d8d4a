"""The metric layer against an independent pandas computation over simulated data.

The events are read back with a plain ``SELECT *`` and every figure is
recomputed in pandas from the written definitions (not from the catalogue),
then compared group by group, on every engine.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pytest

from banking_analytics import BankingPerformanceAnalytics, EventStatus, EventType
from banking_analytics.metrics import TimeWindow
from banking_analytics.simulate import SimulationConfig, run_simulation

END = datetime(2026, 11, 20, tzinfo=UTC)
WINDOW = TimeWindow(END - timedelta(days=7), END, "7d")
MIN_SAMPLE = 20

Figure = tuple[float | None, int | None]
Reference = Callable[[pd.DataFrame], Figure]

HEALTH_FAILURES = {"institution", "aggregator", "network_timeout"}


def ratio(numerator: pd.Series, denominator: pd.Series, min_sample: int = MIN_SAMPLE) -> Figure:
    n = int(denominator.sum())
    if n < max(min_sample, 1):
        return None, n
    return float(numerator.sum()) / n, n


def health(g: pd.DataFrame) -> pd.Series:
    return (g.outcome == "success") | (
        (g.outcome == "failure") & g.error_category.isin(HEALTH_FAILURES)
    )


def nearest_rank(values: pd.Series, q: float) -> Figure:
    ordered = np.sort(values.dropna().to_numpy())
    n = len(ordered)
    if n < MIN_SAMPLE:
        return None, n
    return float(ordered[math.ceil(q * n) - 1]), n


def completed(g: pd.DataFrame) -> pd.Series:
    return g.latency_ms.where(g.outcome.isin(["success", "failure"]))


def distinct(values: pd.Series) -> Figure:
    return float(values.dropna().nunique()), None


CONNECTION: dict[str, Reference] = {
    "connection_success_rate": lambda g: ratio(g.outcome == "success", health(g)),
    "connection_institution_error_share": lambda g: ratio(
        (g.outcome == "failure") & (g.error_category == "institution"), health(g)
    ),
    "connection_attempts": lambda g: (float(len(g)), None),
    "connection_latency_p50_ms": lambda g: nearest_rank(completed(g), 0.50),
    "connection_latency_p95_ms": lambda g: nearest_rank(completed(g), 0.95),
    "connection_latency_p99_ms": lambda g: nearest_rank(completed(g), 0.99),
    "connection_latency_p95_ms_success": lambda g: nearest_rank(
        g.latency_ms.where(g.outcome == "success"), 0.95
    ),
    "connection_latency_mean_ms": lambda g: (
        (float(completed(g).mean()), int(completed(g).count()))
        if completed(g).count() >= MIN_SAMPLE
        else (None, int(completed(g).count()))
    ),
    "link_conversion_rate": lambda g: ratio(
        pd.Series([g.link_session_id[g.outcome == "success"].nunique()]),
        pd.Series([g.link_session_id.nunique()]),
    ),
    "connection_error_rate_user_action_required": lambda g: ratio(
        (g.outcome == "failure") & (g.error_category == "user_action_required"),
        pd.Series(True, index=g.index),
    ),
}

SYNC: dict[str, Reference] = {
    "sync_success_rate": lambda g: ratio(
        g.outcome.isin(["success", "partial"]),
        g.outcome.isin(["success", "partial"])
        | ((g.outcome == "failure") & g.error_category.isin(HEALTH_FAILURES)),
    ),
    "sync_frequency_per_day": lambda g: (
        float(g.outcome.isin(["success", "partial"]).sum())
        / g.connection_id.nunique()
        / WINDOW.days,
        g.connection_id.nunique(),
    ),
    "sync_error_rate_institution": lambda g: ratio(
        (g.outcome == "failure") & (g.error_category == "institution"),
        pd.Series(True, index=g.index),
    ),
}

BEHAVIOUR: dict[str, Reference] = {
    "feature_interactions": lambda g: (float(len(g)), None),
    "unique_users": lambda g: distinct(g.user_id),
    "sessions": lambda g: distinct(g.session_id),
    "feature_success_rate": lambda g: ratio(g.success == True, g.success.notna()),  # noqa: E712
    "feature_mean_duration_s": lambda g: (
        (float(g.duration_s.mean()), int(g.duration_s.count()))
        if g.duration_s.count()
        else (None, 0)
    ),
    "interactions_per_user": lambda g: (len(g) / g.user_id.nunique(), g.user_id.nunique()),
}


def net_revenue(g: pd.DataFrame) -> Figure:
    paid = g.amount.where(g.kind == "payment_succeeded", 0).sum()
    refunded = g.amount.where(g.kind == "refunded", 0).sum()
    return float(paid - refunded), None


def table(
    analytics: BankingPerformanceAnalytics, name: str, window: TimeWindow = WINDOW
) -> pd.DataFrame:
    frame: pd.DataFrame = analytics.engine.query(f"SELECT * FROM {name}").to_pandas()
    frame["occurred_at"] = pd.to_datetime(frame["occurred_at"], utc=True)
    inside = (frame.occurred_at >= window.start) & (frame.occurred_at < window.end)
    return frame[inside]


def compare(
    analytics: BankingPerformanceAnalytics,
    frame: pd.DataFrame,
    references: dict[str, Reference],
    dimensions: Sequence[str],
    columns: Sequence[str],
    *,
    bucket: str | None = None,
    timezone: str = "UTC",
) -> int:
    """Assert every figure of every group equals pandas'; return how many were compared."""
    result = analytics.query_metrics(
        list(references), WINDOW, dimensions=dimensions, bucket=bucket, timezone=timezone
    )
    keys: list[Any] = list(columns)
    frame = frame.copy()
    if bucket is not None:
        local = frame.occurred_at.dt.tz_convert(timezone).dt.tz_localize(None)
        frame["_bucket"] = local.dt.floor("D" if bucket == "day" else "h")
        keys = ["_bucket", *keys]
    expected: dict[tuple[Any, ...], pd.DataFrame] = (
        {(): frame}
        if not keys
        else {
            k if isinstance(k, tuple) else (k,): g
            for k, g in frame.groupby(keys, dropna=False, sort=False)
        }
    )
    got = {
        (
            *(
                [pd.Timestamp(r.bucket).tz_convert(timezone).tz_localize(None)]
                if bucket is not None
                else []
            ),
            *r.dimensions.values(),
        ): r
        for r in result.rows
    }
    checked = 0
    for key, group in expected.items():
        norm = tuple(None if isinstance(k, float) and math.isnan(k) else k for k in key)
        row = got.pop(norm)
        for name, reference in references.items():
            value, sample = reference(group)
            figure = row.values[name]
            assert figure.sample_size == sample or sample is None, (name, key)
            if value is None:
                assert figure.value is None, (name, key, figure)
            else:
                assert figure.value == pytest.approx(value, rel=1e-9), (name, key)
            checked += 1
    # Buckets without events are filled with zero counts and no rates.
    for row in got.values():
        assert all(v.value in (0, None) for v in row.values.values()), (
            f"row {row} has figures pandas did not find"
        )
    return checked


def test_every_figure_matches_pandas(store_url: str) -> None:
    with BankingPerformanceAnalytics.open(store_url) as analytics:
        config = SimulationConfig(users=1500, days=21, seed=11, end=END)
        rejected = 0

        def sink(event_type: EventType, chunk: pa.Table) -> None:
            nonlocal rejected
            outcome = analytics.ingest_arrow(chunk, event_type=event_type)
            rejected += outcome.count(EventStatus.REJECTED)

        run_simulation(config, sink)
        assert rejected == 0
        attempts = table(analytics, "connection_attempt_events")
        sync_runs = table(analytics, "sync_run_events")
        behaviour = table(analytics, "behavior_events")
        subscriptions = table(analytics, "subscription_events")
        assert len(attempts) > 300
        assert len(sync_runs) > 3000

        checked = 0
        checked += compare(analytics, attempts, CONNECTION, [], [])
        checked += compare(analytics, attempts, CONNECTION, ["aggregator"], ["aggregator"])
        checked += compare(analytics, attempts, CONNECTION, ["institution"], ["institution_id"])
        checked += compare(
            analytics,
            attempts,
            {"connection_attempts": CONNECTION["connection_attempts"]},
            ["error_category"],
            ["error_category"],
        )
        checked += compare(
            analytics,
            attempts,
            {k: CONNECTION[k] for k in ("connection_attempts", "connection_success_rate")},
            [],
            [],
            bucket="hour",
        )
        checked += compare(analytics, sync_runs, SYNC, ["aggregator"], ["aggregator"])
        checked += compare(analytics, sync_runs, SYNC, ["feature"], ["feature"])
        checked += compare(analytics, behaviour, BEHAVIOUR, ["feature"], ["feature"])
        checked += compare(analytics, behaviour, BEHAVIOUR, ["device"], ["device"])
        checked += compare(
            analytics,
            behaviour,
            {"feature_interactions": BEHAVIOUR["feature_interactions"]},
            ["platform"],
            ["platform"],
            bucket="day",
            timezone="America/New_York",
        )
        checked += compare(
            analytics,
            subscriptions,
            {"net_revenue": net_revenue},
            ["attributed_feature", "currency"],
            ["attributed_feature", "currency"],
        )
        assert checked > 500

        errors = analytics.analyze_error_rates(WINDOW)
        for source, frame in (("connection", attempts), ("sync", sync_runs)):
            failed = frame[frame.outcome == "failure"]
            counts = failed.error_category.value_counts()
            mix = errors[source]
            assert (mix["total"], mix["failures"]) == (len(frame), len(failed))
            assert len(failed) > 10
            for category, entry in mix["by_category"].items():
                assert entry["count"] == counts.get(category, 0), (source, category)
                assert entry["rate"] == pytest.approx(counts.get(category, 0) / len(frame))
            assert mix["uncategorised"] == int(failed.error_category.isna().sum())


#: Five months of simulated events, from mid-May to early October 2026: partial months at
#: both ends, clocks changing in London, New York and Adelaide, Kolkata at +5:30.
CALENDAR_WINDOW = TimeWindow(
    datetime(2026, 5, 10, 7, tzinfo=UTC), datetime(2026, 10, 8, 12, tzinfo=UTC), "calendar"
)
PERIODS = {"month": "M", "quarter": "Q", "year": "Y"}
#: A reference given a bucket's events and the days of the window the bucket covers.
BucketReference = Callable[[pd.DataFrame, float], Figure]


def whole(reference: Reference) -> BucketReference:
    return lambda g, _days: reference(g)


def syncs_per_connection_per_day(g: pd.DataFrame, days: float) -> Figure:
    connections = g.connection_id.nunique()
    if not connections:
        return None, 0
    return float(g.outcome.isin(["success", "partial"]).sum()) / connections / days, connections


def calendar_compare(
    analytics: BankingPerformanceAnalytics,
    frame: pd.DataFrame,
    references: dict[str, BucketReference],
    bucket: str,
    zone: str,
    dimensions: Sequence[str] = (),
    columns: Sequence[str] = (),
) -> int:
    """Assert the engine's calendar buckets are exactly pandas' periods of the wall-clock
    time in ``zone`` (every one of the window, for every dimension value seen, and no
    other), starting where pandas puts the period's start in the zone, with every figure
    equal; return how many figures were compared."""
    window = CALENDAR_WINDOW
    result = analytics.query_metrics(
        list(references), window, dimensions=dimensions, bucket=bucket, timezone=zone
    )
    freq = PERIODS[bucket]

    def period(at: pd.Series | pd.Timestamp) -> Any:
        # Periods have no zone (pandas warns when dropping one): made from wall-clock time.
        if isinstance(at, pd.Series):
            return at.dt.tz_convert(zone).dt.tz_localize(None).dt.to_period(freq)
        return at.tz_convert(zone).tz_localize(None).to_period(freq)

    every = pd.period_range(
        period(pd.Timestamp(window.start)),
        period(pd.Timestamp(window.end - timedelta(microseconds=1))),
        freq=freq,
    )
    combos = sorted(set(zip(*(frame[c] for c in columns), strict=True))) if columns else [()]
    groups = dict(iter(frame.groupby([period(frame.occurred_at), *columns])))
    expected = [(p, *combo) for p in every for combo in combos]
    got = [(period(pd.Timestamp(r.bucket)), *r.dimensions.values()) for r in result.rows]
    assert got == expected, (bucket, zone)
    checked = 0
    for key, row in zip(expected, result.rows, strict=True):
        start = key[0].start_time.tz_localize(zone)
        assert pd.Timestamp(row.bucket) == start, key
        end = (key[0] + 1).start_time.tz_localize(zone)
        days = (min(end, pd.Timestamp(window.end)) - max(start, pd.Timestamp(window.start))) / (
            pd.Timedelta(days=1)
        )
        group = groups.get(key, frame.iloc[:0])
        for name, reference in references.items():
            value, sample = reference(group, days)
            figure = row.values[name]
            assert figure.sample_size == sample or sample is None, (name, key)
            if value is None:
                assert figure.value is None, (name, key, figure)
            else:
                assert figure.value == pytest.approx(value, rel=1e-9), (name, key)
            checked += 1
    return checked


def test_calendar_buckets_match_pandas(store_url: str) -> None:
    with BankingPerformanceAnalytics.open(store_url) as analytics:
        config = SimulationConfig(
            users=300, days=160, seed=7, end=datetime(2026, 10, 9, tzinfo=UTC)
        )
        kept = {EventType.CONNECTION_ATTEMPT, EventType.SYNC_RUN, EventType.BEHAVIOR}

        def sink(event_type: EventType, chunk: pa.Table) -> None:
            if event_type in kept:
                outcome = analytics.ingest_arrow(chunk, event_type=event_type)
                assert outcome.count(EventStatus.REJECTED) == 0

        run_simulation(config, sink)
        attempts = table(analytics, "connection_attempt_events", CALENDAR_WINDOW)
        sync_runs = table(analytics, "sync_run_events", CALENDAR_WINDOW)
        behaviour = table(analytics, "behavior_events", CALENDAR_WINDOW)
        assert len(attempts) > 300
        connection = {
            name: whole(CONNECTION[name])
            for name in (
                "connection_attempts",
                "connection_success_rate",
                "connection_latency_p95_ms",
                "link_conversion_rate",
            )
        }
        sync = {
            "sync_success_rate": whole(SYNC["sync_success_rate"]),
            "sync_frequency_per_day": syncs_per_connection_per_day,
        }
        usage = {name: whole(BEHAVIOUR[name]) for name in ("feature_interactions", "unique_users")}
        checked = 0
        for zone in ("UTC", "Europe/London", "America/New_York"):
            checked += calendar_compare(analytics, attempts, connection, "month", zone)
        checked += calendar_compare(
            analytics,
            attempts,
            connection,
            "quarter",
            "Australia/Adelaide",
            ["aggregator"],
            ["aggregator"],
        )
        checked += calendar_compare(analytics, sync_runs, sync, "month", "Asia/Kolkata")
        checked += calendar_compare(analytics, sync_runs, sync, "month", "Australia/Adelaide")
        checked += calendar_compare(
            analytics, behaviour, usage, "quarter", "Europe/London", ["feature"], ["feature"]
        )
        checked += calendar_compare(analytics, behaviour, usage, "year", "America/New_York")
        assert checked > 200
