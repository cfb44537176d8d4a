"""The metric layer against an independent pandas computation over simulated data.

The events are read back with a plain ``SELECT *`` and every figure of every
catalogue metric is recomputed in pandas from the written definitions (not
from the catalogue), then compared row by row, on every engine. The comparison
is exact: the engine answers the rows pandas expects and no other, each with
the metrics asked for and no other, each figure with its sample size and status.

Gap filling is the one place rows appear without events: a bucketed answer has
a row for every bucket of the window for every dimension combination seen in
it. Pandas works those buckets out for itself (wall-clock truncation in the
query's timezone, from the bucket holding the window's start to the last one
starting before its end) and expects there what its references give over no
events: zero counts, no rates or means, no latest time.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pytest

from banking_analytics import BankingPerformanceAnalytics, EventStatus, EventType
from banking_analytics.metrics import MetricValue, TimeWindow
from banking_analytics.simulate import SimulationConfig, run_simulation

END = datetime(2026, 11, 20, tzinfo=UTC)
WINDOW = TimeWindow(END - timedelta(days=7), END, "7d")
MIN_SAMPLE = 20

Figure = tuple[float | datetime | None, int | None]
Reference = Callable[[pd.DataFrame], Figure]

CATEGORIES = (
    "user_action_required",
    "institution",
    "aggregator",
    "integration",
    "rate_limited",
    "not_ready",
    "network_timeout",
    "unknown",
)
#: Failures that count against the bank: the institution's, the aggregator's (timeouts too).
HEALTH_FAILURES = {"institution", "aggregator", "network_timeout"}
AGGREGATOR_FAILURES = {"aggregator", "network_timeout"}
#: Failures outside the bank-health denominator, by who must act (or no one known).
USER_FAILURES = {"user_action_required"}
CLIENT_FAILURES = {"integration", "rate_limited"}
UNATTRIBUTED = {"not_ready", "unknown"}
SYNCED = ["success", "partial"]
#: Each bucket as a pandas frequency.
FREQUENCIES = {"hour": "h", "day": "D"}


def share(numerator: float, denominator: int, min_sample: int = MIN_SAMPLE) -> Figure:
    """``numerator ÷ denominator``, or no value on fewer than ``min_sample`` events."""
    if denominator < max(min_sample, 1):
        return None, denominator
    return numerator / denominator, denominator


def ratio(numerator: pd.Series, denominator: pd.Series) -> Figure:
    """Rows meeting one condition ÷ rows meeting another."""
    return share(float(numerator.sum()), int(denominator.sum()))


def count(condition: pd.Series) -> Figure:
    return float(condition.sum()), None


def rows(g: pd.DataFrame) -> Figure:
    return float(len(g)), None


def distinct(values: pd.Series) -> Figure:
    return float(values.nunique()), None


def mean(values: pd.Series, min_sample: int = MIN_SAMPLE) -> Figure:
    """The mean of the values that are present."""
    return share(float(values.sum()), int(values.count()), min_sample)


def nearest_rank(values: pd.Series, q: float) -> Figure:
    """The ``ceil(q·n)``-th smallest of the ``n`` values present."""
    ordered = np.sort(values.dropna().to_numpy())
    n = len(ordered)
    if n < MIN_SAMPLE:
        return None, n
    return float(ordered[math.ceil(q * n) - 1]), n


def largest(values: pd.Series) -> Figure:
    """The largest value present (a time or a number); none over no values."""
    top = values.max()
    if pd.isna(top):
        return None, None
    return (top.to_pydatetime() if isinstance(top, pd.Timestamp) else float(top)), None


def failed(g: pd.DataFrame, categories: set[str]) -> pd.Series:
    return (g.outcome == "failure") & g.error_category.isin(categories)


def failures_in(category: str) -> Reference:
    """Failures in one error category ÷ all attempts or runs (every outcome)."""
    return lambda g: share(float(failed(g, {category}).sum()), len(g))


def error_rates(source: str) -> dict[str, Reference]:
    return {
        f"{source}_failures": lambda g: count(g.outcome == "failure"),
        f"{source}_error_rate": lambda g: share(float((g.outcome == "failure").sum()), len(g)),
        **{f"{source}_error_rate_{c}": failures_in(c) for c in CATEGORIES},
    }


def health(g: pd.DataFrame) -> pd.Series:
    """The bank-health denominator: successes and the bank's failures."""
    return (g.outcome == "success") | failed(g, HEALTH_FAILURES)


def latencies(suffix: str, outcomes: Sequence[str]) -> dict[str, Reference]:
    """Mean and nearest-rank p50/p95/p99 of the latencies of attempts with ``outcomes``."""

    def of(g: pd.DataFrame) -> pd.Series:
        return g.latency_ms.where(g.outcome.isin(outcomes))

    def percentile(q: float) -> Reference:
        return lambda g: nearest_rank(of(g), q)

    return {
        f"connection_latency_mean_ms{suffix}": lambda g: mean(of(g)),
        **{f"connection_latency_p{p}_ms{suffix}": percentile(p / 100) for p in (50, 95, 99)},
    }


def sessions(g: pd.DataFrame, outcome: str | None = None) -> int:
    """Distinct link sessions (with an attempt of ``outcome``)."""
    chosen = g.link_session_id if outcome is None else g.link_session_id[g.outcome == outcome]
    return int(chosen.nunique())


CONNECTION: dict[str, Reference] = {
    "connection_success_rate": lambda g: ratio(g.outcome == "success", health(g)),
    "connection_institution_error_share": lambda g: ratio(failed(g, {"institution"}), health(g)),
    "connection_aggregator_error_share": lambda g: ratio(failed(g, AGGREGATOR_FAILURES), health(g)),
    "connection_attempts": rows,
    "connection_health_attempts": lambda g: count(health(g)),
    "connection_successes": lambda g: count(g.outcome == "success"),
    "connection_user_errors": lambda g: count(failed(g, USER_FAILURES)),
    "connection_client_errors": lambda g: count(failed(g, CLIENT_FAILURES)),
    "connection_unattributed_failures": lambda g: count(
        (g.outcome == "failure") & (g.error_category.isin(UNATTRIBUTED) | g.error_category.isna())
    ),
    "connection_abandoned": lambda g: count(g.outcome == "abandoned"),
    "connection_pending": lambda g: count(g.outcome == "pending"),
    **error_rates("connection"),
    **latencies("", ["success", "failure"]),
    **latencies("_success", ["success"]),
    "link_conversion_rate": lambda g: share(sessions(g, "success"), sessions(g)),
    "link_abandonment_rate": lambda g: share(sessions(g, "abandoned"), sessions(g)),
    "link_sessions": lambda g: (float(sessions(g)), None),
}


def synced(g: pd.DataFrame) -> pd.Series:
    """Successful or partial runs (a partial refresh still reached the bank)."""
    return g.outcome.isin(SYNCED)


SYNC: dict[str, Reference] = {
    "sync_success_rate": lambda g: ratio(synced(g), synced(g) | failed(g, HEALTH_FAILURES)),
    "sync_runs": rows,
    "sync_successes": lambda g: count(synced(g)),
    "sync_health_runs": lambda g: count(synced(g) | failed(g, HEALTH_FAILURES)),
    "sync_frequency_per_day": lambda g: share(
        float(synced(g).sum()) / WINDOW.days, g.connection_id.nunique(), 1
    ),
    "sync_connections": lambda g: distinct(g.connection_id),
    "sync_successes_per_connection": lambda g: share(
        float(synced(g).sum()), g.connection_id.nunique(), 1
    ),
    "sync_last_success_at": lambda g: largest(g.occurred_at[synced(g)]),
    "sync_last_run_at": lambda g: largest(g.occurred_at),
    "sync_expected_interval_s": lambda g: largest(g.expected_interval_s),
    **error_rates("sync"),
}

BEHAVIOUR: dict[str, Reference] = {
    "feature_interactions": rows,
    "unique_users": lambda g: distinct(g.user_id),
    "sessions": lambda g: distinct(g.session_id),
    "feature_success_rate": lambda g: ratio(g.success == True, g.success.notna()),  # noqa: E712
    "feature_mean_duration_s": lambda g: mean(g.duration_s, 1),
    "interactions_per_user": lambda g: share(float(len(g)), g.user_id.nunique(), 1),
    "sessions_per_user": lambda g: share(float(g.session_id.nunique()), g.user_id.nunique(), 1),
}


def net_revenue(g: pd.DataFrame) -> Figure:
    paid = g.amount.where(g.kind == "payment_succeeded", 0).sum()
    refunded = g.amount.where(g.kind == "refunded", 0).sum()
    return float(paid - refunded), None


#: A billing interval's months: a year is 12, a week 12/52, a day 12/365.
MONTHS = {"year": 12.0, "month": 1.0, "week": 12 / 52, "day": 12 / 365}


def monthly_normalised(g: pd.DataFrame) -> Figure:
    """Each successful payment's price after discounts, per month of its billing period."""
    paid = g[g.kind == "payment_succeeded"]
    price = paid.unit_amount * paid.quantity.fillna(1) * (
        1 - paid.discount_percent.fillna(0) / 100
    ) - paid.discount_amount.fillna(0)
    months = paid.interval.astype(object).map(MONTHS).astype(float) * paid.interval_count.fillna(1)
    return float(round((price / months).sum())), None


REVENUE: dict[str, Reference] = {
    "net_revenue": net_revenue,
    "gross_payments": lambda g: (float(g.amount[g.kind == "payment_succeeded"].sum()), None),
    "payments_monthly_normalised": monthly_normalised,
    "paying_users": lambda g: distinct(g.user_id[g.kind == "payment_succeeded"]),
    "subscription_upgrades": lambda g: (
        float(g.kind.isin(["subscribed", "upgraded", "reactivated"]).sum()),
        None,
    ),
}

REPORTED: dict[str, Reference] = {
    "reported_value_mean": lambda g: mean(g.value, 1),
    "reported_measurements": rows,
}

#: Every metric pandas computes (tests/test_metric_coverage.py holds it to the catalogue).
REFERENCES: dict[str, Reference] = {**CONNECTION, **SYNC, **BEHAVIOUR, **REVENUE, **REPORTED}


def table(
    analytics: BankingPerformanceAnalytics, name: str, window: TimeWindow = WINDOW
) -> pd.DataFrame:
    frame: pd.DataFrame = analytics.engine.query(f"SELECT * FROM {name}").to_pandas()
    frame["occurred_at"] = pd.to_datetime(frame["occurred_at"], utc=True)
    inside = (frame.occurred_at >= window.start) & (frame.occurred_at < window.end)
    return frame[inside]


@dataclass
class Tally:
    """What the comparisons covered."""

    figures: int = 0
    #: Rows expected from gap filling alone: a bucket without events of a combination seen.
    filled: int = 0
    metrics: set[str] = field(default_factory=set)


def bucket_starts(bucket: str, timezone: str) -> pd.DatetimeIndex:
    """The wall-clock start in ``timezone`` of every bucket that overlaps the window."""
    frequency = FREQUENCIES[bucket]
    start, end = (
        pd.Timestamp(at).tz_convert(timezone).tz_localize(None) for at in (WINDOW.start, WINDOW.end)
    )
    return pd.date_range(start.floor(frequency), end, freq=frequency, inclusive="left")


def plain(key: Any) -> tuple[Any, ...]:
    """A group key as a tuple, a missing value as None."""
    values = key if isinstance(key, tuple) else (key,)
    return tuple(None if isinstance(v, float) and math.isnan(v) else v for v in values)


def check(figure: MetricValue, expected: Figure, where: tuple[Any, ...]) -> None:
    value, sample = expected
    assert figure.sample_size == sample, (where, figure, expected)
    assert figure.status == ("insufficient_data" if value is None else "ok"), (where, figure)
    if value is None or isinstance(value, datetime):
        assert figure.value == value, (where, figure, expected)
    else:
        assert figure.value == pytest.approx(value, rel=1e-9), (where, figure, expected)


def compare(
    analytics: BankingPerformanceAnalytics,
    frame: pd.DataFrame,
    references: dict[str, Reference],
    dimensions: Sequence[str],
    columns: Sequence[str],
    tally: Tally,
    *,
    bucket: str | None = None,
    timezone: str = "UTC",
) -> None:
    """Assert the engine answers exactly the rows and figures pandas computes."""
    result = analytics.query_metrics(
        list(references), WINDOW, dimensions=dimensions, bucket=bucket, timezone=timezone
    )
    frame = frame.copy()
    keys = list(columns)
    if bucket is not None:
        local = frame.occurred_at.dt.tz_convert(timezone).dt.tz_localize(None)
        frame["_bucket"] = local.dt.floor(FREQUENCIES[bucket])
        keys = ["_bucket", *keys]
    expected = (
        {plain(k): g for k, g in frame.groupby(keys, dropna=False, sort=False)}
        if keys
        else {(): frame}
    )
    # What the references give over no events, for the buckets gap filling adds.
    nothing = frame.iloc[:0]
    blanks = {name: reference(nothing) for name, reference in references.items()}
    filled: set[tuple[Any, ...]] = set()
    if bucket is not None:
        combinations = {key[1:] for key in expected} if columns else {()}
        for start in bucket_starts(bucket, timezone):
            filled.update((start, *c) for c in combinations if (start, *c) not in expected)
        tally.filled += len(filled)
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
    assert len(got) == len(result.rows), "two rows share a key"
    wanted = set(expected) | filled
    extra, missing = set(got) - wanted, wanted - set(got)
    assert not extra, f"rows pandas does not find: {list(extra)[:5]}"
    assert not missing, f"rows the engine does not give: {list(missing)[:5]}"
    for key, row in got.items():
        assert set(row.values) == set(references), key
        for name, reference in references.items():
            figure = blanks[name] if key in filled else reference(expected[key])
            check(row.values[name], figure, (name, *key))
            tally.figures += 1
    tally.metrics.update(references)


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
        reports = table(analytics, "performance_metric_events")
        assert len(attempts) > 300
        assert len(sync_runs) > 3000
        assert len(reports) > 100

        tally = Tally()
        for dimension, column in (([], []), (["aggregator"], ["aggregator"])):
            compare(analytics, attempts, CONNECTION, dimension, column, tally)
        compare(analytics, attempts, CONNECTION, ["institution"], ["institution_id"], tally)
        compare(
            analytics,
            attempts,
            {"connection_attempts": CONNECTION["connection_attempts"]},
            ["error_category"],
            ["error_category"],
            tally,
        )
        hourly = {
            k: CONNECTION[k]
            for k in ("connection_attempts", "connection_success_rate", "connection_latency_p95_ms")
        }
        compare(analytics, attempts, hourly, [], [], tally, bucket="hour")
        for dimension in ([], ["aggregator"], ["feature"]):
            compare(analytics, sync_runs, SYNC, dimension, dimension, tally)
        # Failures are sparse: most hours lack some category, so gaps are filled, and a
        # latest time, a count and a rate must each come out blank there.
        sparse = (
            "sync_runs",
            "sync_error_rate",
            "sync_last_run_at",
            "sync_last_success_at",
            "sync_expected_interval_s",
        )
        compare(
            analytics,
            sync_runs,
            {k: SYNC[k] for k in sparse},
            ["error_category"],
            ["error_category"],
            tally,
            bucket="hour",
        )
        for dimension in (["feature"], ["device"]):
            compare(analytics, behaviour, BEHAVIOUR, dimension, dimension, tally)
        compare(
            analytics,
            behaviour,
            {"feature_interactions": BEHAVIOUR["feature_interactions"]},
            ["platform"],
            ["platform"],
            tally,
            bucket="day",
            timezone="America/New_York",
        )
        compare(
            analytics,
            subscriptions,
            REVENUE,
            ["attributed_feature", "currency"],
            ["attributed_feature", "currency"],
            tally,
        )
        for dimension in ([], ["metric_type"], ["feature"]):
            compare(analytics, reports, REPORTED, dimension, dimension, tally)
        assert tally.metrics == set(REFERENCES)
        assert tally.figures > 2000
        assert tally.filled > 100

        errors = analytics.analyze_error_rates(WINDOW)
        for source, frame in (("connection", attempts), ("sync", sync_runs)):
            failures = frame[frame.outcome == "failure"]
            counts = failures.error_category.value_counts()
            mix = errors[source]
            assert (mix["total"], mix["failures"]) == (len(frame), len(failures))
            assert len(failures) > 10
            for category, entry in mix["by_category"].items():
                assert entry["count"] == counts.get(category, 0), (source, category)
                assert entry["rate"] == pytest.approx(counts.get(category, 0) / len(frame))
            assert mix["uncategorised"] == int(failures.error_category.isna().sum())


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
        kept = {
            EventType.CONNECTION_ATTEMPT,
            EventType.SYNC_RUN,
            EventType.BEHAVIOR,
            EventType.SUBSCRIPTION,
        }

        def sink(event_type: EventType, chunk: pa.Table) -> None:
            if event_type in kept:
                outcome = analytics.ingest_arrow(chunk, event_type=event_type)
                assert outcome.count(EventStatus.REJECTED) == 0

        run_simulation(config, sink)
        attempts = table(analytics, "connection_attempt_events", CALENDAR_WINDOW)
        sync_runs = table(analytics, "sync_run_events", CALENDAR_WINDOW)
        behaviour = table(analytics, "behavior_events", CALENDAR_WINDOW)
        subscriptions = table(analytics, "subscription_events", CALENDAR_WINDOW)
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
        # Gross payments, and payments normalised to a month by an arithmetic expression,
        # per London calendar month and currency.
        money = {
            name: whole(REVENUE[name]) for name in ("gross_payments", "payments_monthly_normalised")
        }
        checked += calendar_compare(
            analytics, subscriptions, money, "month", "Europe/London", ["currency"], ["currency"]
        )
        assert checked > 200
