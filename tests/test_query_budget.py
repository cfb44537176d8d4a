"""The query budget, top-N with an "other" row, statement timeouts and admission, below HTTP.

Budgets are checked against hand-counted buckets and dimension values; top-N
against a hand-worked case and an independent pandas computation; timeouts
against a statement that would run for minutes; every store-backed test on
both engines.
"""

from __future__ import annotations

import asyncio
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import numpy as np
import pandas as pd
import pytest

from banking_analytics import BankingPerformanceAnalytics, EventStatus
from banking_analytics.api._admission import AdmissionGate
from banking_analytics.api._problems import ProblemError
from banking_analytics.metrics import (
    OTHER,
    MetricQuery,
    QueryBudget,
    QueryError,
    QueryTooLargeError,
    TimeWindow,
    renderer_for,
)
from banking_analytics.store import Engine, StatementTimeoutError

END = datetime(2026, 11, 20, tzinfo=UTC)
DAY = TimeWindow(END - timedelta(days=1), END, "24h")
#: A statement that runs for minutes on either engine: 4·10^10 rows of a cross join.
SLOW_SQL = (
    "SELECT count(*) AS n FROM generate_series(1, 200000) AS a(i), "
    "generate_series(1, 200000) AS b(j) WHERE (a.i * b.j) % 7 = 3"
)


def sync_run(connection: str, at: datetime, failed: bool = False) -> dict[str, object]:
    return {
        "event_type": "sync_run",
        "event_id": str(uuid.uuid4()),
        "occurred_at": at.isoformat(),
        "started_at": (at - timedelta(seconds=5)).isoformat(),
        "user_id": f"user-{connection}",
        "connection_id": connection,
        "aggregator": "plaid",
        "institution_id": "ins_1",
        "feature": "transaction_sync",
        "trigger": "scheduled",
        "outcome": "failure" if failed else "success",
        **({"error_category": "institution"} if failed else {}),
    }


def store(analytics: BankingPerformanceAnalytics, events: list[dict[str, object]]) -> None:
    results = analytics.ingest(events)
    assert all(r.status is EventStatus.ACCEPTED for r in results)


def runs(per_connection: dict[str, tuple[int, int]]) -> list[dict[str, object]]:
    """``{connection: (runs, failures)}`` as sync runs a minute apart inside ``DAY``."""
    events = []
    for connection, (count, failures) in per_connection.items():
        events += [
            sync_run(connection, END - timedelta(minutes=1 + i), failed=i < failures)
            for i in range(count)
        ]
    return events


# -- the budget ---------------------------------------------------------------------------


def test_budget_counts_buckets_times_dimension_values(
    analytics: BankingPerformanceAnalytics,
) -> None:
    """Hourly over 24 h is 25 buckets at most (the first and last may be partial); 12
    connections have runs: 300 cells for one metric, 600 for two, 1,200 compared."""
    store(analytics, runs({f"c{i:02}": (1, 0) for i in range(12)}))
    hourly = MetricQuery.build(["sync_runs"], DAY, dimensions=["connection"], bucket="hour")
    engine = analytics.engine
    renderer = renderer_for(engine.dialect)

    QueryBudget(300).check(hourly, engine, renderer)  # exactly at the limit
    with pytest.raises(QueryTooLargeError) as refused:
        QueryBudget(299).check(hourly, engine, renderer)
    message = str(refused.value)
    assert "more than 299 cells" in message
    assert "25 hour buckets x more than 11 connection values x 1 metric" in message
    assert "coarser bucket ('day')" in message
    assert "filters.connection" in message
    assert '"limit": N for the top N connection values' in message
    assert refused.value.max_cells == 299

    two = MetricQuery.build(
        ["sync_runs", "sync_failures"], DAY, dimensions=["connection"], bucket="hour"
    )
    QueryBudget(600).check(two, engine, renderer)
    with pytest.raises(QueryTooLargeError):
        QueryBudget(599).check(two, engine, renderer)
    QueryBudget(1200).check(two, engine, renderer, compare=True)
    with pytest.raises(QueryTooLargeError, match="2 metrics x 2 periods"):
        QueryBudget(1199).check(two, engine, renderer, compare=True)

    # A filter narrows what is counted: 3 connections x 25 buckets.
    filtered = MetricQuery.build(
        ["sync_runs"],
        DAY,
        dimensions=["connection"],
        bucket="hour",
        filters={"connection": ["c00", "c01", "c02"]},
    )
    QueryBudget(75).check(filtered, engine, renderer)
    with pytest.raises(QueryTooLargeError):
        QueryBudget(74).check(filtered, engine, renderer)
    # A top 4 is 5 combinations (with "other") whatever the store holds.
    QueryBudget(125).check(hourly, engine, renderer, limit=4)
    with pytest.raises(QueryTooLargeError, match="a limit below 4"):
        QueryBudget(124).check(hourly, engine, renderer, limit=4)


def test_budget_refuses_one_combination_too_many(analytics: BankingPerformanceAnalytics) -> None:
    minutes = MetricQuery.build(["sync_runs"], DAY, bucket="minute")
    with pytest.raises(QueryTooLargeError) as refused:
        analytics.metrics.run(minutes, budget=QueryBudget(1000))
    assert "1,441 cells" in str(refused.value)
    assert "coarser bucket ('15min')" in str(refused.value)
    # Without a budget the same query answers (every minute, gaps filled).
    assert len(analytics.metrics.run(minutes).rows) == 1440


# -- top-N ---------------------------------------------------------------------------------


def test_top_n_hand_worked(analytics: BankingPerformanceAnalytics) -> None:
    """c1 30 runs (6 failed), c2 25 (5), c3 12 (3), c4 10 (4): the top 2 are c1 and c2,
    and "other" is c3 + c4: 22 runs, 7 failed, an error rate of 7/22."""
    store(analytics, runs({"c1": (30, 6), "c2": (25, 5), "c3": (12, 3), "c4": (10, 4)}))
    result = analytics.query_metrics(
        ["sync_runs", "sync_failures", "sync_error_rate"],
        DAY,
        dimensions=["connection"],
        limit=2,
    )
    got = {
        row.dimensions["connection"]: (
            row["sync_runs"],
            row["sync_failures"],
            row["sync_error_rate"],
            row.values["sync_error_rate"].sample_size,
        )
        for row in result.rows
    }
    assert got == {
        "c1": (30, 6, pytest.approx(6 / 30), 30),
        "c2": (25, 5, pytest.approx(5 / 25), 25),
        OTHER: (22, 7, pytest.approx(7 / 22), 22),
    }
    # Every event is in exactly one row.
    total = analytics.query_metrics(["sync_runs"], DAY).single()
    assert sum(row.count("sync_runs") for row in result.rows) == total.count("sync_runs") == 77


def test_top_n_refuses_what_does_not_add_up(analytics: BankingPerformanceAnalytics) -> None:
    store(analytics, runs({"c1": (3, 0)}))
    with pytest.raises(QueryError, match="sync_connections does not add up across connection"):
        analytics.query_metrics(["sync_connections"], DAY, dimensions=["connection"], limit=2)
    with pytest.raises(QueryError, match="needs dimensions"):
        analytics.query_metrics(["sync_runs"], DAY, limit=2)


def test_top_n_against_pandas(analytics: BankingPerformanceAnalytics) -> None:
    """3,000 sync runs over 3 days on 40 connections of unequal activity, by day, top 5."""
    rng = np.random.default_rng(7)
    n = 3000
    weights = 1 / np.arange(1, 41)
    frame = pd.DataFrame(
        {
            "connection_id": [f"c{i:02}" for i in rng.choice(40, n, p=weights / weights.sum())],
            "occurred_at": [END - timedelta(seconds=int(s)) for s in rng.integers(1, 3 * 86400, n)],
            "failed": rng.random(n) < 0.2,
        }
    )
    store(
        analytics,
        [sync_run(r.connection_id, r.occurred_at, r.failed) for r in frame.itertuples()],
    )
    window = TimeWindow(END - timedelta(days=3), END)
    result = analytics.query_metrics(
        ["sync_runs", "sync_failures", "sync_error_rate"],
        window,
        dimensions=["connection"],
        bucket="day",
        limit=5,
    )

    # pandas: the 5 connections with the most runs (distinct counts: no tie to break).
    counts = frame.connection_id.value_counts()
    assert counts.iloc[4] > counts.iloc[5]
    top = set(counts.index[:5])
    frame["day"] = frame.occurred_at.map(lambda at: at.replace(hour=0, minute=0, second=0))
    frame["row"] = frame.connection_id.where(frame.connection_id.isin(top), OTHER)
    expected: dict[tuple[datetime, str], tuple[Any, ...]] = {}
    for (day, row), g in frame.groupby(["day", "row"]):
        runs_, failures = len(g), int(g.failed.sum())
        rate = failures / runs_ if runs_ >= 20 else None
        expected[(day, row)] = (runs_, failures, rate)

    got = {
        (row.bucket, row.dimensions["connection"]): (
            row["sync_runs"],
            row["sync_failures"],
            row["sync_error_rate"],
        )
        for row in result.rows
    }
    # Every bucket has a row for each of the top 5 and "other" (gaps filled with 0).
    assert {c for _, c in got} == top | {OTHER}
    for key, (runs_, failures, rate) in got.items():
        want = expected.get(key, (0, 0, None))
        assert (runs_, failures) == want[:2], key
        assert rate == (None if want[2] is None else pytest.approx(want[2])), key


# -- statement timeouts --------------------------------------------------------------------


def test_statement_timeout_stops_a_slow_read(engine: Engine) -> None:
    engine.statement_timeout = 0.3
    with pytest.raises(StatementTimeoutError) as stopped:
        engine.query(SLOW_SQL)
    assert stopped.value.seconds == 0.3
    assert "statement timeout of 0.3 s" in str(stopped.value)
    # The engine goes on answering, within the timeout and without one.
    assert engine.query("SELECT 1 AS one").to_pylist() == [{"one": 1}]
    engine.statement_timeout = None
    assert engine.query("SELECT 2 AS two").to_pylist() == [{"two": 2}]
    with pytest.raises(ValueError, match="positive"):
        engine.statement_timeout = 0


@pytest.mark.postgres
def test_postgres_timeout_is_the_sessions_statement_timeout(postgres_store_url: str) -> None:
    """PostgreSQL stops the statement itself: the reader's session carries the setting."""
    from banking_analytics.store import open_engine

    with open_engine(postgres_store_url) as engine:
        engine.statement_timeout = 1.5
        assert engine.query("SHOW statement_timeout").to_pylist() == [
            {"statement_timeout": "1500ms"}
        ]
        engine.statement_timeout = None
        assert engine.query("SHOW statement_timeout").to_pylist() == [{"statement_timeout": "0"}]


# -- admission -----------------------------------------------------------------------------


def test_admission_gate_runs_queues_and_sheds() -> None:
    """One slot, one place in the queue: the second waits, the third is shed at once,
    and a wait that runs out is shed too, each with 429 and Retry-After."""
    events: list[str] = []

    async def request(gate: AdmissionGate, name: str, release: asyncio.Event) -> None:
        try:
            async with gate.admitted():
                events.append(f"{name} in")
                await release.wait()
        except ProblemError as exc:
            events.append(f"{name} {exc.status} Retry-After {exc.headers['Retry-After']}")

    async def scenario() -> None:
        gate = AdmissionGate(concurrency=1, queue=1, wait_seconds=30)
        release = asyncio.Event()
        first = asyncio.create_task(request(gate, "first", release))
        await asyncio.sleep(0)
        second = asyncio.create_task(request(gate, "second", release))
        await asyncio.sleep(0)
        await request(gate, "third", release)  # slot and queue taken: shed, no wait
        release.set()
        await asyncio.gather(first, second)

        impatient = AdmissionGate(concurrency=1, queue=5, wait_seconds=0.05)
        held = asyncio.Event()
        holder = asyncio.create_task(request(impatient, "fourth", held))
        await asyncio.sleep(0)
        await request(impatient, "fifth", held)  # waits 0.05 s, then is shed
        held.set()
        await holder

    asyncio.run(scenario())
    assert events == [
        "first in",
        "third 429 Retry-After 1",
        "second in",
        "fourth in",
        "fifth 429 Retry-After 1",
    ]
