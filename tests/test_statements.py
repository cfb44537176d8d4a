"""Custom statements: run, bound and cached like metrics; health, freshness and link
activation computed with them, checked against the metric path, a hand-worked case
and pandas, on every engine."""

from __future__ import annotations

import uuid
from collections import Counter, defaultdict
from datetime import UTC, datetime, timedelta
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pytest
import sqlglot
from sqlglot import exp

from banking_analytics import BankingPerformanceAnalytics, EventStatus, EventType
from banking_analytics.analytics import (
    PRODUCTS,
    STEP,
    InstitutionHealth,
    LinkActivations,
    Product,
    SyncFreshness,
    refresh_state,
)
from banking_analytics.metrics import (
    CATALOG,
    Bucket,
    MetricQuery,
    Renderer,
    Statement,
    TimeWindow,
    aggregate,
    bucket_starts,
    count_condition,
    renderer_for,
    window_condition,
)
from banking_analytics.simulate import SimulationConfig, run_simulation
from banking_analytics.store.statements import column
from banking_analytics.vocabulary import BankingFeature

T0 = datetime(2026, 11, 2, tzinfo=UTC)
END = datetime(2026, 11, 20, tzinfo=UTC)
SYNCS = "sync_run_events"


def event(event_type: str, user: str, at: datetime, outcome: str, **fields: str) -> dict[str, Any]:
    """An event of a bank connection of user ``user`` at ins_1 through Plaid."""
    return {
        "event_type": event_type,
        "event_id": str(uuid.uuid4()),
        "occurred_at": at.isoformat(),
        "started_at": at.isoformat(),
        "user_id": user,
        "aggregator": "plaid",
        "institution_id": "ins_1",
        "outcome": outcome,
        **({"error_category": "institution"} if outcome == "failure" else {}),
        **fields,
    }


def sync(
    user: str, at: datetime, outcome: str = "success", connection: str = "c1"
) -> dict[str, Any]:
    return event(
        "sync_run",
        user,
        at,
        outcome,
        connection_id=connection,
        feature="transaction_sync",
        trigger="scheduled",
    )


def link(user: str, at: datetime, outcome: str = "success") -> dict[str, Any]:
    return event(
        "connection_attempt",
        user,
        at,
        outcome,
        attempt_id=str(uuid.uuid4()),
        feature="account_linking",
        flow="new",
    )


def ingest(analytics: BankingPerformanceAnalytics, events: list[dict[str, Any]]) -> None:
    results = analytics.ingest(events)
    assert {r.status for r in results} == {EventStatus.ACCEPTED}, [r.reason for r in results]


def runs_per_connection(renderer: Renderer) -> exp.Select:
    """Sync runs and successes per connection in a window [?, ?)."""
    return (
        sqlglot.select(
            column("connection_id").as_("connection"),
            aggregate(CATALOG["sync_runs"], renderer).as_("runs"),
            aggregate(CATALOG["sync_successes"], renderer).as_("good"),
        )
        .from_(SYNCS)
        .where(window_condition())
        .group_by(column("connection_id"))
        .order_by(column("connection_id"))
    )


def test_a_statement_returns_its_own_columns_cached_until_a_table_it_reads_changes(
    analytics: BankingPerformanceAnalytics,
) -> None:
    ingest(
        analytics,
        [
            sync("u1", T0, "success", "c1"),
            sync("u1", T0 + timedelta(hours=1), "failure", "c1"),
            sync("u2", T0 + timedelta(hours=2), "partial", "c2"),
            sync("u2", T0 + timedelta(days=2), "success", "c2"),  # outside the window
        ],
    )
    statement = Statement(runs_per_connection, (T0, T0 + timedelta(days=1)), (SYNCS,))
    first = analytics.metrics.run_statement(statement)
    assert first.column_names == ["connection", "runs", "good"]
    assert first.to_pylist() == [
        {"connection": "c1", "runs": 2, "good": 1},
        {"connection": "c2", "runs": 1, "good": 1},
    ]
    # Served from the cache: the very same result, also after a table it does not read
    # changed.
    assert analytics.metrics.run_statement(statement) is first
    ingest(analytics, [link("u9", T0)])
    assert analytics.metrics.run_statement(statement) is first
    # Another window is another answer; a new sync run makes the old one stale.
    later = Statement(runs_per_connection, (T0, T0 + timedelta(days=3)), (SYNCS,))
    assert analytics.metrics.run_statement(later)["runs"].to_pylist() == [2, 2]
    ingest(analytics, [sync("u3", T0 + timedelta(minutes=5), "success", "c3")])
    fresh = analytics.metrics.run_statement(statement)
    assert fresh is not first
    assert fresh["connection"].to_pylist() == ["c1", "c2", "c3"]


def test_a_statement_is_rendered_once_per_dialect_and_shape() -> None:
    built: list[tuple[str, str]] = []

    def counted(renderer: Renderer, metric: str) -> exp.Select:
        built.append((renderer.dialect, metric))
        return (
            sqlglot.select(aggregate(CATALOG[metric], renderer).as_("n"))
            .from_(SYNCS)
            .where(window_condition())
        )

    duckdb, postgres = renderer_for("duckdb"), renderer_for("postgres")
    runs = Statement(counted, (T0, T0), (SYNCS,), ("sync_runs",))
    for _ in range(3):
        assert runs.render(duckdb) == (
            'SELECT COUNT(*) AS n FROM sync_run_events WHERE "occurred_at" >= ? '
            'AND "occurred_at" < ?'
        )
    assert "%s" in runs.render(postgres)
    Statement(counted, (T0, T0), (SYNCS,), ("sync_successes",)).render(duckdb)
    assert built == [
        ("duckdb", "sync_runs"),
        ("postgres", "sync_runs"),
        ("duckdb", "sync_successes"),
    ]


def test_a_statement_must_bind_every_placeholder_and_declare_every_table() -> None:
    duckdb = renderer_for("duckdb")
    with pytest.raises(ValueError, match="2 placeholders for 1 parameters"):
        Statement(runs_per_connection, (T0,), (SYNCS,)).render(duckdb)
    # A table it reads but does not declare would be served stale from the cache.
    with pytest.raises(ValueError, match=r"reads \['sync_run_events'\], which depends_on omits"):
        Statement(runs_per_connection, (T0, T0), ("behavior_events",)).render(duckdb)
    with pytest.raises(ValueError, match="stored tables with a data version"):
        Statement(runs_per_connection, (T0, T0), ("sync_runs",))
    with pytest.raises(ValueError, match="stored tables with a data version"):
        Statement(runs_per_connection, (T0, T0), ())


def test_only_single_aggregates_and_counted_events_are_lent_to_statements() -> None:
    duckdb = renderer_for("duckdb")
    with pytest.raises(ValueError, match="not a single aggregate"):
        aggregate(CATALOG["connection_success_rate"], duckdb)
    with pytest.raises(ValueError, match="not a count of events"):
        count_condition(CATALOG["sync_last_success_at"], duckdb)
    assert duckdb.sql(count_condition(CATALOG["sync_runs"], duckdb)) == "TRUE"
    assert duckdb.sql(count_condition(CATALOG["sync_successes"], duckdb)) == (
        "\"outcome\" IN ('success', 'partial')"
    )


# -- health and freshness: the statements against the metric path -------------------------------


def simulate(analytics: BankingPerformanceAnalytics, users: int) -> None:
    def sink(event_type: EventType, chunk: pa.Table) -> None:
        outcome = analytics.ingest_arrow(chunk, event_type=event_type)
        assert outcome.count(EventStatus.REJECTED) == 0

    run_simulation(SimulationConfig(users=users, days=7, seed=11, end=END), sink)


def test_health_and_freshness_read_what_the_metric_path_computes(store_url: str) -> None:
    """The ported statements give the counts and latest syncs of the catalogue metrics the
    analyses read through compiler aliases before: cell by cell, connection by connection."""
    window = TimeWindow(END - timedelta(days=3), END)
    steps = len(bucket_starts(window, Bucket.QUARTER_HOUR, "UTC"))
    with BankingPerformanceAnalytics.open(store_url) as analytics:
        simulate(analytics, 2_000)
        metrics = analytics.metrics
        entities, successes, totals = InstitutionHealth(metrics)._step_counts(window, steps, None)
        expected: dict[tuple[str, str, Product, int], list[int]] = defaultdict(lambda: [0, 0])
        for good, total, by_feature in (
            ("sync_successes", "sync_health_runs", True),
            ("connection_successes", "connection_health_attempts", False),
        ):
            query = MetricQuery.build(
                [good, total],
                window,
                dimensions=["institution", "aggregator", *(["feature"] if by_feature else [])],
                bucket="15min",
            )
            for row in metrics.run(query, fill_gaps=False).rows:
                assert row.bucket is not None
                dims = row.dimensions
                product = (
                    PRODUCTS[BankingFeature(dims["feature"])] if by_feature else Product.ITEM_LOGINS
                )
                step = (row.bucket - window.start) // STEP
                cell = expected[(str(dims["institution"]), str(dims["aggregator"]), product, step)]
                cell[0] += row.count(good)
                cell[1] += row.count(total)
        fresh = SyncFreshness(metrics).sync_freshness(window, stale_limit=1_000_000)
        latest = metrics.run(
            MetricQuery.build(
                ["sync_last_success_at", "sync_expected_interval_s"],
                window,
                dimensions=["connection", "institution", "aggregator", "feature"],
            )
        )

    assert entities == sorted({key[:3] for key in expected})
    got = {
        (*entity, step): [int(successes[row, step]), int(totals[row, step])]
        for row, entity in enumerate(entities)
        for step in range(steps)
        if totals[row, step] or successes[row, step]
    }
    assert got == {key: counts for key, counts in expected.items() if any(counts)}
    assert sum(n for _, n in got.values()) > 5_000  # the comparison covers real traffic

    states: Counter[str] = Counter()
    stale = {}
    for row in latest.rows:
        last = row["sync_last_success_at"]
        assert last is None or isinstance(last, datetime)
        interval = timedelta(seconds=float(row["sync_expected_interval_s"] or 24 * 3600))
        state = refresh_state(None if last is None else window.end - last, interval)
        states[state.value] += 1
        if state.value != "NORMAL":
            # A connection syncing several features is one row per feature.
            stale[tuple(row.dimensions.values())] = (
                state.value,
                None if last is None else last.isoformat(),
                interval.total_seconds(),
            )
    assert fresh["connections"] == len(latest.rows) > 500
    assert fresh["states"] == {"NORMAL": 0, "DELAYED": 0, "STOPPED": 0, **states}
    assert len(fresh["stalest"]) == len(stale)
    assert {
        (c["connection_id"], c["institution_id"], c["aggregator"], c["feature"]): (
            c["state"],
            c["last_successful_sync"],
            c["expected_interval_s"],
        )
        for c in fresh["stalest"]
    } == stale
    assert stale  # some connections are late or stopped in a simulated week


# -- link activation -----------------------------------------------------------------------------


def test_link_activation_hand_worked(analytics: BankingPerformanceAnalytics) -> None:
    h = timedelta(hours=1)
    ingest(
        analytics,
        [
            link("u1", T0 + h),
            sync("u1", T0 + 3 * h),  # activated
            link("u2", T0 + 2 * h),
            sync("u2", T0 + 26 * h, "partial"),  # activated: exactly 24 h after, partial
            link("u3", T0 + 4 * h),
            sync("u3", T0 + 5 * h, "failure"),  # a failed sync does not activate
            sync("u3", T0 + 28 * h + timedelta(seconds=1)),  # 24 h and a second: too late
            link("u4", T0 + 5 * h),
            sync("u4", T0 + 4 * h),  # before the link
            link("u5", T0 + 6 * h, "failure"),  # not linked
            sync("u5", T0 + 7 * h),
            link("u6", T0 - h),  # linked before the window: not counted
            sync("u6", T0 + h / 2),
            link("u7", T0 + 47 * h),
            sync("u7", T0 + 49 * h),  # after the window's end, within 24 h: activated
            link("u8", T0 + 10 * h),
            link("u8", T0 + 30 * h),
            sync("u8", T0 + 40 * h),  # 30 h after the first link, 10 h after the second
            sync("u8", T0 + 41 * h),
            link("u9", T0 + 11 * h),
            sync("u9", T0 + 12 * h, "not_ready"),
            link("u10", T0 + 48 * h),  # at the window's end: outside it
            sync("u10", T0 + 49 * h),
        ],
    )
    window = TimeWindow(T0, T0 + 48 * h)
    activation = LinkActivations(analytics.metrics).link_activation(window)
    assert (activation.linked_users, activation.activated_users) == (7, 4)
    assert activation.activation_rate == pytest.approx(4 / 7)
    assert activation.time_period == window
    nobody = LinkActivations(analytics.metrics).link_activation(TimeWindow(T0 - 9 * h, T0 - 2 * h))
    assert (nobody.linked_users, nobody.activated_users, nobody.activation_rate) == (0, 0, None)


def pandas_activation(
    attempts: pd.DataFrame,
    syncs: pd.DataFrame,
    window: TimeWindow,
    span: tuple[timedelta, timedelta] = (timedelta(0), timedelta(hours=24)),
) -> tuple[int, int]:
    """The definition, from the raw events: linked users, and those with a successful or
    partial sync at most 24 h after one of their links in the window (``span``: from
    when to when after a link a sync counts)."""
    links = attempts[
        (attempts.outcome == "success")
        & (attempts.occurred_at >= window.start)
        & (attempts.occurred_at < window.end)
        & attempts.user_id.notna()
    ][["user_id", "occurred_at"]]
    good = syncs[syncs.outcome.isin(["success", "partial"])][["user_id", "occurred_at"]]
    pairs = links.merge(good, on="user_id", suffixes=("_link", "_sync"))
    after = pairs.occurred_at_sync - pairs.occurred_at_link
    soon = pairs[(after >= span[0]) & (after <= span[1])]
    return int(links.user_id.nunique()), int(soon.user_id.nunique())


def scattered(rng: np.random.Generator, users: int) -> list[dict[str, Any]]:
    """Links and syncs of any outcome at random times over the simulated week.

    In the simulated world every link is followed by its initial sync within minutes;
    these users sync early, late or not at all, so both sides of the definition show.
    """
    week = 7 * 24 * 3600
    events = []
    for i in range(users):
        user = f"scattered-{i}"
        linked_at = END - timedelta(seconds=float(rng.uniform(0, week)))
        events.append(link(user, linked_at, str(rng.choice(["success", "success", "failure"]))))
        for hours in rng.uniform(-12, 48, size=int(rng.integers(0, 3))):
            outcome = str(rng.choice(["success", "partial", "failure", "not_ready"]))
            synced_at = min(linked_at + timedelta(hours=float(hours)), END - timedelta(seconds=1))
            events.append(sync(user, synced_at, outcome, f"c-{user}"))
    return events


def test_link_activation_matches_pandas_on_simulated_events(store_url: str) -> None:
    window = TimeWindow(END - timedelta(days=6), END - timedelta(days=1))
    with BankingPerformanceAnalytics.open(store_url) as analytics:
        simulate(analytics, 1_500)
        ingest(analytics, scattered(np.random.default_rng(5), 400))
        activation = LinkActivations(analytics.metrics).link_activation(window)
        attempts, syncs = (
            analytics.engine.query(f"SELECT * FROM {name}").to_pandas()
            for name in ("connection_attempt_events", SYNCS)
        )
    linked, activated = pandas_activation(attempts, syncs, window)
    assert (activation.linked_users, activation.activated_users) == (linked, activated)
    assert linked > 100
    # The data tells the definition from near misses: syncs too early or too late.
    assert 0 < activated < linked - 50
    for near_miss in (
        (-timedelta(hours=12), timedelta(hours=24)),
        (timedelta(0), timedelta(days=3)),
    ):
        assert pandas_activation(attempts, syncs, window, near_miss)[1] > activated
