"""Daily, weekly and monthly active users with DAU/MAU stickiness at every day of 90, over the
dashboard's ~10M-event world: the metric layer against hand-written DuckDB SQL (the limit)
and polars' lazy API with the events in memory (what a user would pick instead).

Every side computes the same four series and the answers are checked equal in each run.
All sides run in one process over one open store, interleaved, so DuckDB's buffer pool
holds the blocks for every side alike; the metric layer starts each run with an empty
result cache and forgets its compiled statements, so it compiles and runs afresh.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path

import polars as pl

from banking_analytics import BankingPerformanceAnalytics
from banking_analytics.metrics import MetricQuery, MetricService, TimeWindow
from banking_analytics.metrics._compile import _compile_shape
from benchmarks.run import (
    DASHBOARD_USERS,
    END,
    RUNS,
    BenchmarkError,
    Context,
    Measurement,
    Sample,
    repeat,
    simulate_store,
)

METRICS = ["unique_users", "weekly_active_users", "monthly_active_users", "dau_mau_stickiness"]
EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
#: A series per figure: DAU, WAU, MAU (counts) and stickiness (DAU / MAU).
Series = tuple[list[int], list[int], list[int], list[float | None]]

#: The limit: the same trailing-window trick as the metric layer, written by hand for DuckDB
#: (a user's (day) pairs; +1 where a coverage of `span` days starts, -1 where it ends).
HAND_SQL = """
WITH pairs AS (
    SELECT DISTINCT user_id, datediff('day', DATE '1970-01-01', occurred_at::DATE) AS day
    FROM behavior_events
    WHERE occurred_at >= $1 - INTERVAL 29 DAY AND occurred_at < $2
),
marks AS (
    SELECT day,
           day - lag(day) OVER (PARTITION BY user_id ORDER BY day) AS since,
           lead(day) OVER (PARTITION BY user_id ORDER BY day) - day AS until
    FROM pairs
),
steps AS (
    SELECT greatest(day, $3) AS day, 1 AS dau, 1 AS wau, 1 AS mau FROM marks
    UNION ALL SELECT greatest(day + 1, $3), -1, 0, 0 FROM marks
    UNION ALL SELECT greatest(day, $3), 0, -1, 0 FROM marks WHERE since < 7
    UNION ALL SELECT greatest(day + 7, $3), 0, -1, 0 FROM marks WHERE until IS NULL OR until >= 7
    UNION ALL SELECT greatest(day, $3), 0, 0, -1 FROM marks WHERE since < 30
    UNION ALL SELECT greatest(day + 30, $3), 0, 0, -1 FROM marks WHERE until IS NULL OR until >= 30
),
totals AS (SELECT day, sum(dau) AS dau, sum(wau) AS wau, sum(mau) AS mau FROM steps GROUP BY day),
running AS (
    SELECT d.day,
           sum(coalesce(dau, 0)) OVER w AS dau,
           sum(coalesce(wau, 0)) OVER w AS wau,
           sum(coalesce(mau, 0)) OVER w AS mau
    FROM range($3, $3 + 90) AS d(day) LEFT JOIN totals USING (day)
    WINDOW w AS (ORDER BY d.day)
)
SELECT dau, wau, mau, dau / nullif(mau, 0) AS stickiness FROM running ORDER BY day
"""


#: Another limit: each user's active days as the bits of a 128-bit integer (the 90 days and
#: the 29 before them fit), then each day's counts by masking: no pairs, no sort.
BITMASK_SQL = """
WITH masks AS (
    SELECT bit_or(1::UHUGEINT << (epoch_us(occurred_at) // 86400000000 - ($3 - 29))::UHUGEINT) AS m
    FROM behavior_events
    WHERE occurred_at >= $1 - INTERVAL 29 DAY AND occurred_at < $2
    GROUP BY user_id
)
SELECT count(*) FILTER ((m >> k::UHUGEINT) & 1::UHUGEINT != 0) AS dau,
       count(*) FILTER ((m >> (k - 6)::UHUGEINT) & 127::UHUGEINT != 0) AS wau,
       count(*) FILTER ((m >> (k - 29)::UHUGEINT) & 1073741823::UHUGEINT != 0) AS mau,
       dau / nullif(mau, 0) AS stickiness
FROM range(29, 119) AS d(k) CROSS JOIN masks
GROUP BY k ORDER BY k
"""


def metric_layer(analytics: BankingPerformanceAnalytics, window: TimeWindow) -> Series:
    _compile_shape.cache_clear()
    query = MetricQuery.build(METRICS, window, bucket="day")
    rows = MetricService(analytics.engine).run(query).rows
    return (
        [int(r.count("unique_users")) for r in rows],
        [int(r.count("weekly_active_users")) for r in rows],
        [int(r.count("monthly_active_users")) for r in rows],
        [r.number("dau_mau_stickiness") for r in rows],
    )


def hand_sql(analytics: BankingPerformanceAnalytics, window: TimeWindow, sql: str) -> Series:
    first = (window.start - EPOCH).days
    table = analytics.engine.query(sql, [window.start, window.end, first])
    return (
        table["dau"].to_pylist(),
        table["wau"].to_pylist(),
        table["mau"].to_pylist(),
        table["stickiness"].to_pylist(),
    )


def polars_lazy(events: pl.DataFrame, window: TimeWindow) -> Series:
    """Distinct users per trailing window with polars' own rolling windows over the pairs."""
    start, end = window.start, window.end
    pairs = (
        events.lazy()
        .filter(
            (pl.col("occurred_at") >= start - timedelta(days=29)) & (pl.col("occurred_at") < end)
        )
        .select("user_id", pl.col("occurred_at").dt.truncate("1d").alias("day"))
        .unique()
    )
    days = pl.LazyFrame(
        {"day": pl.datetime_range(start, end, "1d", closed="left", time_zone="UTC", eager=True)}
    )
    counts = []
    for span in (1, 7, 30):
        counts.append(
            days.join_where(
                pairs.rename({"day": "active"}),
                pl.col("active") > pl.col("day") - timedelta(days=span),
                pl.col("active") <= pl.col("day"),
            )
            .group_by("day")
            .agg(pl.col("user_id").n_unique().alias(f"d{span}"))
        )
    joined = days
    for frame in counts:
        joined = joined.join(frame, on="day", how="left")
    out = (
        joined.sort("day")
        .with_columns(pl.col("d1", "d7", "d30").fill_null(0))
        .with_columns(pl.when(pl.col("d30") > 0).then(pl.col("d1") / pl.col("d30")).alias("sticky"))
        .collect()
    )
    return (
        out["d1"].to_list(),
        out["d7"].to_list(),
        out["d30"].to_list(),
        out["sticky"].to_list(),
    )


def _timed(compute: Callable[[], Series], answers: list[Series], events: int) -> Sample:
    started = time.perf_counter()
    answer = compute()
    seconds = time.perf_counter() - started
    answers.append(answer)
    return Sample(seconds, events)


def _same(a: Series, b: Series) -> bool:
    counts = a[:3] == b[:3]
    sticky = all(
        (x is None and y is None) or (x is not None and y is not None and abs(x - y) < 1e-12)
        for x, y in zip(a[3], b[3], strict=True)
    )
    return counts and sticky


def engagement(ctx: Context) -> tuple[list[Measurement], list[str]]:
    users = DASHBOARD_USERS // 10 if ctx.quick else DASHBOARD_USERS
    ctx.reporter.start("engagement", 2 + 4 * RUNS)
    url = f"duckdb:///{ctx.tmp}/engagement.duckdb"
    events = simulate_store(ctx, url, users)
    # Whole days: the 90 days ending with the last midnight of the simulated history.
    midnight = END.replace(hour=0)
    window = TimeWindow(midnight - timedelta(days=90), midnight, "90d")
    with BankingPerformanceAnalytics.open(url) as analytics:
        frame = pl.from_arrow(
            analytics.engine.query("SELECT user_id, occurred_at FROM behavior_events")
        )
        assert isinstance(frame, pl.DataFrame)
        behaviour = frame.height
        ctx.reporter.step(f"{behaviour:,} behaviour events loaded into polars")
        answers: dict[str, list[Series]] = {"ours": [], "sql": [], "bits": [], "polars": []}

        def ours(_: Path) -> Sample:
            return _timed(lambda: metric_layer(analytics, window), answers["ours"], events)

        def sql(_: Path) -> Sample:
            return _timed(lambda: hand_sql(analytics, window, HAND_SQL), answers["sql"], events)

        def bits(_: Path) -> Sample:
            return _timed(lambda: hand_sql(analytics, window, BITMASK_SQL), answers["bits"], events)

        def polars(_: Path) -> Sample:
            return _timed(lambda: polars_lazy(frame, window), answers["polars"], events)

        mine = Measurement(
            "metric layer (DuckDB), empty result cache, statements compiled afresh",
            repeat(ctx, "engagement ours", ours),
            max_seconds=None if ctx.quick else 0.5,
            show_rate=False,
        )
        limit = Measurement(
            "the limit: hand-written DuckDB SQL, the same method (pairs, steps, running sums)",
            repeat(ctx, "engagement hand SQL", sql),
            show_rate=False,
        )
        bitmask = Measurement(
            "the limit: hand-written DuckDB SQL, active days as bits of a 128-bit integer",
            repeat(ctx, "engagement bitmask SQL", bits),
            show_rate=False,
        )
        theirs = Measurement(
            "polars lazy API, events in memory",
            repeat(ctx, "engagement polars", polars),
            show_rate=False,
        )
    reference = answers["ours"][0]
    for side, found in answers.items():
        for answer in found:
            if not _same(answer, reference):
                raise BenchmarkError(f"engagement: {side} disagrees with the metric layer")
    notes = [
        f"{events:,} events over 90 days (`simulate --users {users:,}`), {behaviour:,} of them "
        "behaviour events (what makes a user active). The figures: DAU, WAU, MAU and DAU/MAU "
        "at each of 90 days (`query_metrics([unique_users, weekly_active_users, "
        "monthly_active_users, dau_mau_stickiness], bucket='day')`); every side's answers "
        "were checked equal in every run.",
        f"Ours against the hand-written SQL: {mine.seconds / limit.seconds:.2f}x the same "
        f"method's time, {mine.seconds / bitmask.seconds:.2f}x the bitmask's (target ≤ 1.5x); "
        f"polars takes {theirs.seconds / mine.seconds:.2f}x ours. The bitmask holds 128 days: "
        "it answers a 90-day window, not a longer one, and PostgreSQL has no 128-bit integer.",
    ]
    return [mine, limit, bitmask, theirs], notes
