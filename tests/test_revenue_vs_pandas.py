"""The revenue ledger against the independent pandas reference (tests/revenue_reference.py).

Over a simulated world (six months of subscriptions, varied so that every part of the
definition is used: repeating and once discounts, seats, quarterly billing, periods paid
past a cancellation) and over the vendors' hand-worked histories of
tests/test_revenue_reference.py, on DuckDB and PostgreSQL: every figure of every period
(month, week and day buckets, in UTC and in zones with clock changes or a half-hour
offset) and every customer movement equal the reference's, integer for integer.
"""

from __future__ import annotations

import uuid
import zlib
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from typing import Any

import pandas as pd
import psycopg
import pyarrow as pa
import pytest

import test_revenue_reference as hand
from banking_analytics import BankingPerformanceAnalytics, EventStatus, EventType
from banking_analytics.analytics.revenue import RevenuePolicy
from banking_analytics.events import schema_for, stored_arrow_schema
from banking_analytics.metrics import (
    CATALOG,
    LEDGER,
    REVENUE_METRICS,
    Bucket,
    Provided,
    QueryError,
    TimeWindow,
    bucket_starts,
)
from banking_analytics.simulate import SimulationConfig, run_simulation
from conftest import ENGINES, with_schema
from revenue_reference import (
    Ledger,
    MissingRateError,
    Point,
    Policy,
    bucket_bounds,
    ledger,
    ltv,
    points,
)

FIELDS = (
    "mrr_start",
    "new",
    "expansion",
    "contraction",
    "churn",
    "reactivation",
    "net_new",
    "mrr_end",
    "customers_start",
    "customers_end",
    "new_customers",
    "reactivated_customers",
    "churned_customers",
)
#: What the customers paying at a period's start lost by its end: net of their gains (NRR
#: = 1 - it / mrr_start), and counting only those who ended lower (GRR).
LOSSES = ("cohort_net_loss", "cohort_gross_loss")
STORED = stored_arrow_schema(schema_for(EventType.SUBSCRIPTION))
WORLD_END = datetime(2026, 10, 1, tzinfo=UTC)
#: The rates every scratch store loads (the euro changes in July 2026; yen have no minor unit).
RATES = hand.RATES
PRICED = hand.PRICED


# -- the harness (shared with tests/test_revenue_properties.py) ----------------------------------


def scratch_store(request: pytest.FixtureRequest, tmp: pytest.TempPathFactory) -> Iterator[str]:
    """A store of the engine ``request.param`` for a whole module: a DuckDB file, or a
    PostgreSQL schema dropped afterwards."""
    if request.param == "duckdb":
        yield f"duckdb:///{tmp.mktemp('revenue')}/store.duckdb"
        return
    server: str = request.getfixturevalue("postgres_url")
    schema = f"t_{uuid.uuid4().hex[:12]}"
    yield with_schema(server, schema)
    with psycopg.connect(server, autocommit=True) as conn:
        conn.execute(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')


def opened(url: str) -> BankingPerformanceAnalytics:
    """The facade on a scratch store, with the rates of ``RATES`` loaded."""
    analytics = BankingPerformanceAnalytics.open(url)
    analytics.load_exchange_rates(
        {"currency": currency, "valid_from": since.isoformat(), "rate": rate}
        for currency, since, rate in RATES
    )
    return analytics


def ours(policy: Policy) -> RevenuePolicy:
    return RevenuePolicy(
        reporting_currency=policy.currency,
        churn_recognition=policy.churn_recognition,
        past_due_grace_days=policy.past_due_grace_days,
        count_joined_and_churned=policy.count_joined_and_churned,
        free_customers_are_customers=policy.free_customers_are_customers,
    )


def arrow(events: pd.DataFrame) -> pa.Table:
    """Events (a column per stored field, received_at included) as an Arrow batch."""
    schema = pa.schema([STORED.field(name) for name in events.columns])
    frame = events.astype(object).where(events.notna(), None)
    return pa.Table.from_pandas(frame, schema=schema, preserve_index=False)


def store(analytics: BankingPerformanceAnalytics, events: pd.DataFrame) -> None:
    outcome = analytics.ingest_arrow(arrow(events), event_type=EventType.SUBSCRIPTION)
    assert outcome.count(EventStatus.REJECTED) == 0


def stored(analytics: BankingPerformanceAnalytics) -> pd.DataFrame:
    return analytics.engine.query("SELECT * FROM subscription_events").to_pandas()


def our_points(
    analytics: BankingPerformanceAnalytics,
    window: TimeWindow,
    bucket: str,
    timezone: str,
    policy: Policy,
) -> list[dict[str, Any]]:
    result = analytics.revenue.mrr(window, bucket=bucket, timezone=timezone, policy=ours(policy))
    assert result.currency == policy.currency
    return [
        {"start": pd.Timestamp(p.start), "end": pd.Timestamp(p.end)}
        | {name: getattr(p, name) for name in (*FIELDS, *LOSSES)}
        for p in result.points
    ]


def their_points(reference: Sequence[Point]) -> list[dict[str, Any]]:
    """The reference's figures; the losses behind NRR and GRR from what it retained."""
    return [
        {"start": p.start, "end": p.end}
        | {n: getattr(p, n) for n in FIELDS}
        | {
            "cohort_net_loss": p.mrr_start - p.retained,
            "cohort_gross_loss": p.mrr_start - p.retained_gross,
        }
        for p in reference
    ]


def our_movements(
    analytics: BankingPerformanceAnalytics, window: TimeWindow, policy: Policy
) -> list[tuple[Any, ...]]:
    found = analytics.revenue.movements(window, policy=ours(policy))
    rows = [
        (
            m.customer,
            pd.Timestamp(m.at),
            getattr(m.kind, "value", m.kind),
            m.amount,
            m.mrr_before,
            m.mrr_after,
        )
        for m in found
    ]
    return sorted(rows, key=lambda r: (r[1], r[0]))


def their_movements(changes: pd.DataFrame, window: TimeWindow) -> list[tuple[Any, ...]]:
    inside = changes[(changes["at"] >= window.start) & (changes["at"] < window.end)]
    return [
        (r.customer, r.at, r.kind, r.amount, r.mrr_before, r.mrr_after) for r in inside.itertuples()
    ]


def assert_same(
    analytics: BankingPerformanceAnalytics,
    events: pd.DataFrame,
    window: TimeWindow,
    bucket: str,
    timezone: str,
    policy: Policy,
    book: Ledger | None = None,
) -> list[Point]:
    """Our series and movements over ``window`` equal the reference's (its ledger of
    ``events``, or ``book`` if given); the reference's series is returned."""
    book = book or ledger(events, policy)
    reference = points(book, bucket_bounds(window.start, window.end, bucket, timezone), policy)
    got = our_points(analytics, window, bucket, timezone, policy)
    expected = their_points(reference)
    assert len(got) == len(expected), (bucket, timezone)
    for mine, theirs in zip(got, expected, strict=True):
        assert mine == theirs, (bucket, timezone, policy)
    assert our_movements(analytics, window, policy) == their_movements(book.frame(), window)
    return reference


# -- the simulated world --------------------------------------------------------------------


def varied(chunk: pa.Table, start: datetime) -> pa.Table:
    """Simulated subscription events, varied per subscription (by a hash of its id): some
    coupons repeat for 2 months or last one period, some subscriptions have 3 seats or
    bill quarterly, some are in euros or yen, and some cancellations are paid to a period
    end up to 19 days on. The subscriptions already paid for when the world starts (begun
    up to two years before ``start``) stay in dollars: the rates begin in 2025."""
    frame = chunk.to_pandas()
    code = frame.subscription_id.map(lambda s: zlib.crc32(s.encode()))
    opening = frame.groupby("subscription_id").occurred_at.transform("min") < start
    discounted = frame.discount_percent.notna() | frame.discount_amount.notna()
    repeating = discounted & (code % 3 == 0)
    frame.loc[repeating, "discount_duration"] = "repeating"
    frame.loc[repeating, "discount_months"] = 2
    frame.loc[discounted & (code % 3 == 1), "discount_duration"] = "once"
    frame.loc[code % 5 == 0, "quantity"] = 3
    quarterly = (code % 7 == 3) & (frame.interval == "month")
    frame.loc[quarterly, "interval_count"] = 3
    frame.loc[quarterly, "unit_amount"] *= 3
    frame.loc[(code % 4 == 1) & ~opening, "currency"] = "EUR"
    frame.loc[(code % 13 == 5) & ~opening, "currency"] = "JPY"
    paid_to = frame.status.isin(["canceled", "unpaid"]) & (code % 2 == 0)
    frame.loc[paid_to, "period_end"] = frame.occurred_at[paid_to] + pd.to_timedelta(
        code[paid_to] % 20, unit="D"
    )
    # Ingestion refuses a time more than 23 h after receipt, period_end included: these
    # events are received at their period's end.
    frame.loc[paid_to, "received_at"] = frame[["received_at", "period_end"]][paid_to].max(axis=1)
    frame["discount_months"] = frame.discount_months.astype("Int64")
    return pa.Table.from_pandas(frame, schema=chunk.schema, preserve_index=False)


@dataclass(frozen=True)
class World:
    analytics: BankingPerformanceAnalytics
    events: pd.DataFrame
    books: dict[Policy, Ledger] = field(default_factory=dict)

    def book(self, policy: Policy) -> Ledger:
        """The reference's ledger of the world (computed once per policy)."""
        if policy not in self.books:
            self.books[policy] = ledger(self.events, policy)
        return self.books[policy]


def simulate_into(analytics: BankingPerformanceAnalytics, config: SimulationConfig) -> None:
    """Store the world's subscription events, varied (whole, so each subscription's events
    are varied alike), and one behaviour event in 40."""
    subscriptions: list[pa.Table] = []

    def sink(event_type: EventType, chunk: pa.Table) -> None:
        if event_type is EventType.SUBSCRIPTION:
            subscriptions.append(chunk)
        elif event_type is EventType.BEHAVIOR:
            outcome = analytics.ingest_arrow(sampled(chunk), event_type=event_type)
            assert outcome.count(EventStatus.REJECTED) == 0

    run_simulation(config, sink)
    events = varied(pa.concat_tables(subscriptions), config.start)
    outcome = analytics.ingest_arrow(events, event_type=EventType.SUBSCRIPTION)
    assert outcome.count(EventStatus.REJECTED) == 0


@pytest.fixture(scope="module", params=ENGINES)
def world(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[World]:
    for url in scratch_store(request, tmp_path_factory):
        with opened(url) as analytics:
            simulate_into(analytics, SimulationConfig(users=3000, days=180, seed=23, end=WORLD_END))
            yield World(analytics, stored(analytics))


def sampled(chunk: pa.Table) -> pa.Table:
    """One behaviour event in 40 (by a hash of its id): enough activity for the figures over
    active users, at a fortieth of the cost of storing it all."""
    keep = [zlib.crc32(e.encode()) % 40 == 0 for e in chunk["event_id"].to_pylist()]
    return chunk.filter(pa.array(keep))


def aligned(bucket: str, timezone: str, first: str, last: str) -> TimeWindow:
    """A window of whole buckets: local midnight of ``first`` to local midnight of ``last``."""
    start, end = (pd.Timestamp(day).tz_localize(timezone).to_pydatetime() for day in (first, last))
    return TimeWindow(start, end, f"{bucket} in {timezone}")


#: (bucket, zone, first day, day after the last): whole local buckets of the world.
WINDOWS = [
    ("month", "UTC", "2026-05-01", "2026-10-01"),
    ("month", "America/New_York", "2026-05-01", "2026-10-01"),
    ("week", "UTC", "2026-05-04", "2026-09-28"),
    ("week", "Asia/Kolkata", "2026-06-01", "2026-09-28"),
    ("day", "UTC", "2026-07-01", "2026-09-15"),
    ("day", "America/New_York", "2026-10-20", "2026-11-10"),  # after the world: steady MRR
]


@pytest.mark.parametrize(("bucket", "zone", "first", "last"), WINDOWS)
def test_series_and_movements_match_pandas(
    world: World, bucket: str, zone: str, first: str, last: str
) -> None:
    window = aligned(bucket, zone, first, last)
    policy = PRICED
    reference = assert_same(
        world.analytics, world.events, window, bucket, zone, policy, world.book(policy)
    )
    if last <= "2026-10-01":  # a window of the simulated months moves
        assert sum(p.new for p in reference) > 0
        assert sum(p.churn for p in reference) < 0
    assert all(p.mrr_start > 0 for p in reference)


POLICIES = [
    replace(PRICED, churn_recognition="period_end"),
    replace(PRICED, past_due_grace_days=3),
    replace(PRICED, past_due_grace_days=0, count_joined_and_churned=True),
]


@pytest.mark.parametrize("policy", POLICIES, ids=["period_end", "grace_3d", "grace_0_joined"])
def test_each_policy_matches_pandas(world: World, policy: Policy) -> None:
    window = aligned("month", "UTC", "2026-05-01", "2026-10-01")
    reference = assert_same(
        world.analytics, world.events, window, "month", "UTC", policy, world.book(policy)
    )
    default = their_points(
        points(world.book(PRICED), bucket_bounds(window.start, window.end, "month", "UTC"))
    )
    assert their_points(reference) != default  # the policy changes something in this world


def reference_metrics(world: World) -> tuple[TimeWindow, list[dict[str, Any]]]:
    """July to September's metrics by the reference; LTV from the six months before each
    (the reference's series starts six months earlier)."""
    window = aligned("month", "UTC", "2026-07-01", "2026-10-01")
    earlier = aligned("month", "UTC", "2026-01-01", "2026-10-01")
    months = points(world.book(PRICED), bucket_bounds(earlier.start, earlier.end, "month", "UTC"))
    return window, [p.metrics() | {"ltv": ltv(months, i)} for i, p in enumerate(months)][6:]


def assert_metrics(world: World, names: Sequence[str]) -> None:
    window, expected = reference_metrics(world)
    result = world.analytics.revenue.metrics(names, window, bucket="month", policy=ours(PRICED))
    assert result.currency == "USD"
    assert [r.start.month for r in result.rows] == [7, 8, 9]
    for row, theirs in zip(result.rows, expected, strict=True):
        for name in names:
            want, got = theirs[name], row.figures[name]
            if want is None or isinstance(want, int):  # none, money and counts: exact
                assert got == want, (row.start, name)
            else:
                assert got == pytest.approx(float(want), rel=1e-12), (row.start, name)


def test_revenue_metrics_match_pandas(world: World) -> None:
    """Every metric the ledger's figures define, per month, against the reference's."""
    names = [n for n in reference_metrics(world)[1][0] if n != "ltv"]
    assert_metrics(world, names)


def test_ltv_matches_pandas(world: World) -> None:
    """LTV = ARPA / the mean customer churn rate of the six months before, in whole cents."""
    expected = reference_metrics(world)[1]
    assert all(theirs["ltv"] is not None for theirs in expected)
    assert_metrics(world, ["ltv"])


def trial_to_paid_by_pandas(events: pd.DataFrame, within_days: int | None) -> dict:
    """Per calendar month (UTC) of the window: trials started (a subscription's first
    ``trial_started`` event in the window), and the share later paid (a successful payment
    above 0 on the same subscription, at or after the trial's start; within the days)."""
    window = reference_metrics_window()
    trials = (
        events[
            (events.kind == "trial_started")
            & (events.occurred_at >= pd.Timestamp(window.start))
            & (events.occurred_at < pd.Timestamp(window.end))
        ]
        .groupby("subscription_id")
        .occurred_at.min()
        .rename("trial_at")
        .reset_index()
    )
    paid = events[(events.kind == "payment_succeeded") & (events.amount > 0)]
    joined = trials.merge(paid[["subscription_id", "occurred_at"]], how="left")
    late = joined.occurred_at < joined.trial_at
    if within_days is not None:
        late |= joined.occurred_at >= joined.trial_at + pd.Timedelta(days=within_days)
    joined["converted"] = joined.occurred_at.notna() & ~late
    per_trial = joined.groupby(["subscription_id", "trial_at"]).converted.any().reset_index()
    per_trial["month"] = per_trial.trial_at.dt.tz_convert("UTC").dt.tz_localize(None)
    per_trial["month"] = per_trial.month.dt.to_period("M")
    shares = per_trial.groupby("month").converted.mean()
    return {str(month): share for month, share in shares.items()}


def reference_metrics_window() -> TimeWindow:
    return aligned("month", "UTC", "2026-07-01", "2026-10-01")


@pytest.mark.parametrize("within_days", [None, 14, 30])
def test_trial_to_paid_matches_pandas(world: World, within_days: int | None) -> None:
    expected = trial_to_paid_by_pandas(world.events, within_days)
    assert len(expected) == 3
    # The simulated trials last 14 days, paid (if at all) at their end: not within 14.
    assert max(expected.values()) < 1
    assert (max(expected.values()) == 0) == (within_days == 14)
    result = world.analytics.revenue.metrics(
        ["trial_to_paid"], reference_metrics_window(), trial_days=within_days
    )
    found = {f"{r.start:%Y-%m}": r.figures["trial_to_paid"] for r in result.rows}
    assert found == pytest.approx(expected, rel=1e-12)


def months_of(times: pd.Series) -> pd.Series:
    """Each time's UTC calendar month, as ``YYYY-MM``."""
    return times.dt.tz_convert("UTC").dt.strftime("%Y-%m")


def in_window(frame: pd.DataFrame, column: str) -> pd.DataFrame:
    window = reference_metrics_window()
    times = frame[column]
    return frame[(times >= pd.Timestamp(window.start)) & (times < pd.Timestamp(window.end))]


def activity(world: World) -> pd.DataFrame:
    """The stored behaviour events of the window: user, feature, month."""
    events = world.analytics.engine.query(
        "SELECT user_id, feature, occurred_at FROM behavior_events"
    ).to_pandas()
    events = in_window(events, "occurred_at")
    return events.assign(month=months_of(events.occurred_at))


def test_feature_adoption_matches_pandas(world: World) -> None:
    """Users of the feature in the month ÷ users active in the month."""
    used = activity(world)
    active = used.groupby("month").user_id.nunique()
    users = used.groupby(["month", "feature"]).user_id.nunique()
    expected = {(m, f): n / active[m] for (m, f), n in users.items()}
    result = world.analytics.revenue.metrics(
        ["feature_adoption"], reference_metrics_window(), by_feature=True
    )
    found = {
        (f"{r.start:%Y-%m}", r.feature): r.figures["feature_adoption"]
        for r in result.rows
        if r.figures["feature_adoption"] is not None
    }
    assert len(expected) > 20
    assert found == pytest.approx(expected, rel=1e-12)


def test_arpu_matches_pandas(world: World) -> None:
    """MRR at the month's end ÷ users active in the month, rounded half up to a cent."""
    active = activity(world).groupby("month").user_id.nunique()
    window, metrics = reference_metrics(world)
    months = [f"{start:%Y-%m}" for start in bucket_starts(window, Bucket.MONTH, "UTC")]
    expected = {
        m: (2 * int(theirs["mrr"]) + int(active[m])) // (2 * int(active[m]))
        for m, theirs in zip(months, metrics, strict=True)
    }
    result = world.analytics.revenue.metrics(["arpu"], window, policy=ours(PRICED))
    assert {f"{r.start:%Y-%m}": r.figures["arpu"] for r in result.rows} == expected


def test_free_to_paid_conversion_matches_pandas(world: World) -> None:
    """Users active in the month (of the feature) not paying at its start, and the share of
    them who started paying (a new or reactivation movement) in it."""
    book = world.book(PRICED)
    used = activity(world)
    starts = {m: pd.Timestamp(f"{m}-01", tz="UTC") for m in used.month.unique()}
    moves = book.frame()
    started = moves[moves.kind.isin(["new", "reactivation"])]
    started = set(zip(started.customer, months_of(started["at"]), strict=True))

    def paying(user: str, month: str) -> bool:
        return user in book.changes and book.mrr_before(user, starts[month]) > 0

    def shares(keys: list[str]) -> dict[tuple[str, ...], float]:
        pairs = used[["user_id", "month", *keys]].drop_duplicates()
        free = pairs[[not paying(u, m) for u, m in zip(pairs.user_id, pairs.month, strict=True)]]
        converted = [(u, m) in started for u, m in zip(free.user_id, free.month, strict=True)]
        rates = free.assign(converted=converted).groupby(["month", *keys]).converted.mean()
        return {k if isinstance(k, tuple) else (k,): v for k, v in rates.items()}

    window = reference_metrics_window()
    overall = world.analytics.revenue.metrics(["free_to_paid_conversion"], window)
    found = {(f"{r.start:%Y-%m}",): r.figures["free_to_paid_conversion"] for r in overall.rows}
    expected = shares([])
    assert min(expected.values()) > 0
    assert found == pytest.approx(expected, rel=1e-12)
    per_feature = world.analytics.revenue.metrics(
        ["free_to_paid_conversion"], window, by_feature=True
    )
    found = {
        (f"{r.start:%Y-%m}", r.feature): r.figures["free_to_paid_conversion"]
        for r in per_feature.rows
        if r.figures["free_to_paid_conversion"] is not None
    }
    assert found == pytest.approx(shares(["feature"]), rel=1e-12)


def test_feature_revenue_matches_pandas(world: World) -> None:
    """MRR gained (new, expansion, reactivation) at the instants of subscription events the
    host app credited to a feature (the first feature named at an instant)."""
    events = world.events
    credited = (
        events[events.attributed_feature.notna()]
        .groupby(["user_id", "occurred_at"])
        .attributed_feature.min()
        .reset_index()
    )
    moves = world.book(PRICED).frame()
    gains = in_window(moves[moves.amount > 0], "at").merge(
        credited, left_on=["customer", "at"], right_on=["user_id", "occurred_at"]
    )
    sums = gains.groupby([months_of(gains["at"]), "attributed_feature"]).amount.sum()
    expected = {key: int(v) for key, v in sums.items()}
    assert len(expected) > 10
    result = world.analytics.revenue.metrics(
        ["feature_revenue"], reference_metrics_window(), by_feature=True, policy=ours(PRICED)
    )
    found = {
        (f"{r.start:%Y-%m}", r.feature): r.figures["feature_revenue"]
        for r in result.rows
        if r.figures["feature_revenue"]
    }
    assert found == expected


def test_the_world_exercises_the_definition(world: World) -> None:
    """The comparisons above are only as good as the variety of the world."""
    events = world.events
    changes = world.book(PRICED).frame()
    assert set(changes.kind) == {"new", "expansion", "contraction", "churn", "reactivation"}
    assert {"repeating", "once", "forever"} <= set(events.discount_duration.dropna())
    assert (events.quantity > 1).any()
    assert (events.interval_count > 1).any()
    assert events.status.isin(["past_due"]).sum() > 5
    assert {"USD", "EUR", "JPY"} <= set(events.currency)
    # Subscriptions in euros started on both sides of the rate's change.
    assert events[events.currency == "EUR"].occurred_at.min() < pd.Timestamp("2026-07-01", tz="UTC")
    assert events[events.currency == "EUR"].occurred_at.max() > pd.Timestamp("2026-07-01", tz="UTC")
    assert (events.period_end.notna()).sum() > 10
    assert len(changes) > 500


# -- the hand-worked histories, through our code ----------------------------------------------


@pytest.fixture(scope="module", params=ENGINES)
def scratch(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[BankingPerformanceAnalytics]:
    for url in scratch_store(request, tmp_path_factory):
        with opened(url) as analytics:
            yield analytics


def replace_all(analytics: BankingPerformanceAnalytics, events: pd.DataFrame) -> None:
    """Empty the table and the changes the store keeps from it, then store ``events`` (a
    new data version: no stale cached answer)."""
    with analytics.engine.begin() as tx:
        tx.execute("DELETE FROM subscription_events")
        tx.execute("DELETE FROM subscription_changes")
    store(analytics, events)


HAND = {
    "gross_and_net_churn": (hand.gross_and_net_churn_case, Policy()),
    "lifecycle": (hand.lifecycle_case, Policy()),
    "customer_churn": (hand.customer_churn_case, Policy()),
    "customer_churn_joined": (hand.customer_churn_case, Policy(count_joined_and_churned=True)),
    "discounts": (hand.discount_case, Policy()),
    "past_due": (hand.past_due_case, Policy()),
    "past_due_grace": (hand.past_due_case, Policy(past_due_grace_days=7)),
    "cancellation": (hand.period_end_case, Policy()),
    "period_end": (hand.period_end_case, Policy(churn_recognition="period_end")),
    "currencies": (hand.currency_case, PRICED),
    "free": (hand.free_case, Policy()),
    "free_counted": (hand.free_case, Policy(free_customers_are_customers=True)),
}


@pytest.mark.parametrize("case", list(HAND))
def test_hand_worked_histories_match(scratch: BankingPerformanceAnalytics, case: str) -> None:
    build, policy = HAND[case]
    events = hand.frame(build())
    replace_all(scratch, events)
    window = TimeWindow(datetime(2025, 12, 1, tzinfo=UTC), datetime(2027, 2, 1, tzinfo=UTC))
    assert_same(scratch, events, window, "month", "UTC", policy)


def test_normalisation_table_to_the_cent(scratch: BankingPerformanceAnalytics) -> None:
    events = [
        hand.event(
            f"n{i}", f"n{i}", hand.JAN, unit_amount=u, interval=iv, interval_count=c, quantity=q
        )
        for i, ((u, iv, c, q), _) in enumerate(hand.NORMALISATION)
    ]
    replace_all(scratch, hand.frame(events))
    window = TimeWindow(hand.JAN, hand.FEB)
    found = {m[0]: m[3] for m in our_movements(scratch, window, Policy())}
    assert found == {f"n{i}": mrr for i, (_, mrr) in enumerate(hand.NORMALISATION)}
    (point,) = our_points(scratch, window, "month", "UTC", Policy())
    assert point["mrr_end"] == sum(mrr for _, mrr in hand.NORMALISATION)


def test_gross_twenty_and_net_ten_percent_from_our_figures(
    scratch: BankingPerformanceAnalytics,
) -> None:
    replace_all(scratch, hand.frame(hand.gross_and_net_churn_case()))
    (point,) = our_points(scratch, TimeWindow(hand.FEB, hand.MAR), "month", "UTC", Policy())
    lost = -(point["churn"] + point["contraction"])
    assert (lost / point["mrr_start"], (lost - point["expansion"]) / point["mrr_start"]) == (
        0.2,
        0.1,
    )


def test_nothing_before_the_first_event(scratch: BankingPerformanceAnalytics) -> None:
    replace_all(scratch, hand.frame(hand.lifecycle_case()))
    window = TimeWindow(datetime(2025, 10, 1, tzinfo=UTC), hand.JAN)
    got = our_points(scratch, window, "month", "UTC", Policy())
    assert [p["start"].month for p in got] == [10, 11, 12]
    assert {v for p in got for k, v in p.items() if k in FIELDS} == {0}
    assert our_movements(scratch, window, Policy()) == []


def test_a_missing_rate_is_an_error_naming_the_currency_and_date(
    scratch: BankingPerformanceAnalytics,
) -> None:
    """The euro has a rate, but only from December 2025: a subscription started before."""
    events = hand.frame(
        [hand.event("early", "e1", datetime(2025, 11, 30, 23, tzinfo=UTC), currency="EUR")]
    )
    replace_all(scratch, events)
    window = TimeWindow(datetime(2025, 11, 1, tzinfo=UTC), hand.JAN)
    with pytest.raises(MissingRateError, match="EUR on 2025-11-30"):
        ledger(events, PRICED)
    with pytest.raises(QueryError, match=r"EUR.*2025-11-30"):
        our_points(scratch, window, "month", "UTC", PRICED)


# -- the same metrics through the metric layer (POST /metrics/query, alert rules) -------------

#: Every metric the subscription ledger provides to the metric layer's catalogue.
LEDGER_METRICS = frozenset(
    name
    for name, metric in CATALOG.items()
    if isinstance(metric.measure, Provided) and metric.measure.provider == LEDGER
)


def test_ledger_metrics_through_the_metric_layer_match_pandas(world: World) -> None:
    """A metric query answers each ledger metric as the revenue namespace does, and those
    the reference defines as the reference does: by name, or by the spec's name."""
    window, expected = reference_metrics(world)
    overall = sorted(LEDGER_METRICS - {"feature_adoption"})  # per feature only
    result = world.analytics.query_metrics(overall, window, bucket="month", dimensions=["currency"])
    namespace = world.analytics.revenue.metrics(overall, window, bucket="month")
    assert [r.bucket for r in result.rows] == [r.start for r in namespace.rows]
    for row, theirs, ours_ in zip(result.rows, expected, namespace.rows, strict=True):
        assert row.dimensions == {"currency": "USD"}
        for name in overall:
            got = row.values[name].value
            assert got == ours_.figures[name], (row.bucket, name)
            if name in theirs:
                want = theirs[name]
                if want is None or isinstance(want, int):
                    assert got == want, (row.bucket, name)
                else:
                    assert got == pytest.approx(float(want), rel=1e-12), (row.bucket, name)
    by_spec = world.analytics.query_metrics(
        ["churn_rate", "customer_lifetime_value"],
        window,
        bucket="month",
        filters={"currency": "USD"},
    )
    assert [r["customer_churn_rate"] for r in by_spec.rows] == [
        r["customer_churn_rate"] for r in result.rows
    ]
    assert [r["ltv"] for r in by_spec.rows] == [r["ltv"] for r in result.rows]


def test_ledger_metrics_by_feature_through_the_metric_layer(world: World) -> None:
    window = reference_metrics(world)[0]
    names = sorted(n for n in LEDGER_METRICS if REVENUE_METRICS[n].by_feature)
    result = world.analytics.query_metrics(
        names, window, bucket="month", dimensions=["currency", "feature"]
    )
    namespace = world.analytics.revenue.metrics(names, window, bucket="month", by_feature=True)
    found = {(r.bucket, r.dimensions["feature"]): r for r in result.rows}
    assert len(namespace.rows) > 3
    for row in namespace.rows:
        for name in names:
            assert found[(row.start, row.feature)][name] == row.figures[name], (row.start, name)


def test_ledger_metrics_refuse_what_they_cannot_answer(world: World) -> None:
    window = reference_metrics(world)[0]
    for asked, message in (
        ({"bucket": None}, "choose a bucket"),
        ({"bucket": "hour"}, "a revenue series is cut by"),
        ({"filters": {"currency": "EUR"}}, "revenue is reported in USD"),
        ({"dimensions": ["institution"]}, "cannot be cut by 'institution'"),
        ({"limit": 3}, "cannot be cut to the top N"),
    ):
        query: dict[str, Any] = {"bucket": "month", "dimensions": ["currency"], **asked}
        with pytest.raises(QueryError, match=message):
            world.analytics.query_metrics(["mrr"], window, **query)
