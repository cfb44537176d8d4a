"""A 4-step ordered funnel with a breakdown and a 12-week retention grid over 10M behaviour
events of 100k users: ours (the funnel and retention modules through the metric layer)
against hand-written DuckDB SQL (the limit) and polars' lazy API with the events in memory
(what a user would pick instead); and ours on PostgreSQL over 1M events (10k users).

The events are a simulator run's (:mod:`benchmarks.simulated`, shared with ``behavior``),
ingested into the store. The funnel is the simulator's onboarding: link opened
(``account_linking``/``open_link``) → transactions viewed (``view_transactions``) →
spending report viewed (``view_spending_report``) → budget created (``create_budget``).
Events of one user at the same instant are ordered by event id, as ours orders them: the
baselines chain a funnel's steps by the instant alone, and where a step met an event at
the instant of the step before, they chain again by (instant, event id). Every side
computes the same figures, written independently, and the answers are checked equal in
every run. All sides run in one process over one open store, interleaved; ours starts
each run with an empty result cache and renders its statements afresh (cold). The peak
memory of a side is the most the process's resident set grew during its call (sampled
every 10 ms), beyond what it held before.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path

import polars as pl

from banking_analytics import BankingPerformanceAnalytics
from banking_analytics.analytics.behavior import (
    EventStep,
    FunnelQuery,
    RetentionQuery,
)
from banking_analytics.analytics.behavior._funnel import Funnels
from banking_analytics.analytics.behavior._retention import Retention
from banking_analytics.metrics import MetricService
from banking_analytics.metrics._statement import _render
from benchmarks.run import (
    DAY_US,
    SECOND_US,
    BenchmarkError,
    Context,
    Measurement,
    Sample,
    postgres_scratch,
    repeat,
)
from benchmarks.simulated import (
    POSTGRES_USERS,
    USERS,
    SimulatedWorld,
    scaled,
    simulated_behaviour,
    store_world,
)
from benchmarks.simulated import START as WORLD_START

#: The first Monday of the simulated world: weekly retention counts Monday weeks.
START = WORLD_START + timedelta(days=-WORLD_START.weekday() % 7)
DAYS = 84
EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
STEPS = [
    ("account_linking", "open_link"),
    ("transaction_sync", "view_transactions"),
    ("spending_analysis", "view_spending_report"),
    ("budget_tracking", "create_budget"),
]
WINDOW_S = 14 * 86_400
KEPT = 3
#: A funnel's figures per label (None: all users): users at each step, the median and
#: the mean seconds from the previous step (steps 2-4).
Funnel = dict[
    str | None, tuple[tuple[int, ...], tuple[float | None, ...], tuple[float | None, ...]]
]
#: A retention grid: per cohort, (size, users in periods 0.. ).
Grid = list[tuple[int, tuple[int, ...]]]


def load(url: str, world: SimulatedWorld) -> None:
    """Ingest the world's events into the store at ``url``."""
    with BankingPerformanceAnalytics.open(url) as analytics:
        store_world(analytics, world.events)


# -- ours ----------------------------------------------------------------------------------------


def funnel_query(days: int = DAYS) -> FunnelQuery:
    return FunnelQuery(
        steps=tuple(EventStep("behavior", f, a) for f, a in STEPS),
        breakdown="platform",
        breakdown_limit=KEPT,
        date_from=START,
        date_to=START + timedelta(days=days),
    )


def retention_query() -> RetentionQuery:
    return RetentionQuery(
        start_event=EventStep("behavior"),
        return_event=EventStep("behavior"),
        interval="week",  # type: ignore[arg-type]
        date_from=START,
        date_to=START + timedelta(weeks=12),
    )


def cold(analytics: BankingPerformanceAnalytics) -> MetricService:
    """A metric service with an empty result cache, statements rendered afresh."""
    _render.cache_clear()
    return MetricService(analytics.engine)


def our_funnel(analytics: BankingPerformanceAnalytics) -> Funnel:
    result = Funnels(cold(analytics)).run(funnel_query())
    return {
        s.breakdown_value: (
            tuple(st.users for st in s.steps),
            tuple(st.median_seconds_from_previous for st in s.steps[1:]),
            tuple(st.mean_seconds_from_previous for st in s.steps[1:]),
        )
        for s in result.series
    }


def our_retention(analytics: BankingPerformanceAnalytics) -> Grid:
    result = Retention(cold(analytics)).run(retention_query())
    return [(c.users, tuple(cell.users for cell in c.cells)) for c in result.cohorts]


# -- the limit: hand-written DuckDB SQL ----------------------------------------------------------

_STEP_SQL = [f"(feature = '{f}' AND action = '{a}')" for f, a in STEPS]

#: Each step-1 event chained to the next steps' first later events by ASOF joins (DuckDB's
#: own) on the order ``{key}``, the user's best path, labels by the three commonest start
#: platforms. Chained on the instant ``t`` alone, a join takes the first event at or after
#: the path's last one (``{after}`` is ``<=``); ``tied`` says whether any path met an event
#: at the same instant, which only the exact order ``(t, event_id)`` with ``<`` places.
FUNNEL_SQL = f"""
WITH ev AS (
    SELECT user_id, epoch_us(occurred_at) AS t, event_id, platform,
           {", ".join(f"{c} AS m{i}" for i, c in enumerate(_STEP_SQL, 1))}
    FROM behavior_events
    WHERE occurred_at >= $1 AND occurred_at < $2 AND ({" OR ".join(_STEP_SQL)})
),
s2 AS (SELECT user_id, t, {{key}} AS k FROM ev WHERE m2),
s3 AS (SELECT user_id, t, {{key}} AS k FROM ev WHERE m3),
s4 AS (SELECT user_id, t, {{key}} AS k FROM ev WHERE m4),
c1 AS (SELECT user_id, t AS t1, {{key}} AS k1, platform FROM ev WHERE m1),
c2 AS (SELECT c1.*, s2.t AS t2, s2.k AS k2 FROM c1 ASOF LEFT JOIN s2
       ON c1.user_id = s2.user_id AND c1.k1 {{after}} s2.k),
c3 AS (SELECT c2.*, s3.t AS t3, s3.k AS k3 FROM c2 ASOF LEFT JOIN s3
       ON c2.user_id = s3.user_id AND c2.k2 {{after}} s3.k),
c4 AS (SELECT c3.*, s4.t AS t4, s4.k AS k4 FROM c3 ASOF LEFT JOIN s4
       ON c3.user_id = s4.user_id AND c3.k3 {{after}} s4.k),
paths AS (
    SELECT *, 1 + (coalesce(t2 - t1 <= $3, false))::INT + (coalesce(t3 - t1 <= $3, false))::INT
             + (coalesce(t4 - t1 <= $3, false))::INT AS steps,
           coalesce(k2 = k1 OR k3 = k2 OR k4 = k3, false) AS tie
    FROM c4
),
best AS (
    SELECT *, bool_or(tie) OVER () AS tied FROM paths
    QUALIFY row_number() OVER (PARTITION BY user_id ORDER BY steps DESC, t1) = 1
),
kept AS (
    SELECT platform FROM best WHERE platform IS NOT NULL
    GROUP BY platform ORDER BY count(*) DESC, platform LIMIT {KEPT}
),
labelled AS (
    SELECT best.*, CASE WHEN best.platform IS NULL THEN '(none)'
                        WHEN kept.platform IS NOT NULL THEN best.platform
                        ELSE '(other)' END AS label
    FROM best LEFT JOIN kept USING (platform)
)
SELECT label, grouping(label) AS total, bool_or(tied) AS tied,
       {", ".join(f"count(*) FILTER (steps >= {i}) AS u{i}" for i in range(1, 5))},
       {
    ", ".join(
        f"quantile_disc(t{i} - t{i - 1}, 0.5) FILTER (steps >= {i}) AS med{i}" for i in range(2, 5)
    )
},
       {", ".join(f"avg(t{i} - t{i - 1}) FILTER (steps >= {i}) AS mean{i}" for i in range(2, 5))}
FROM labelled GROUP BY GROUPING SETS ((label), ())
"""
#: The two orders: the instant (fast), and (instant, event id) where instants tie.
BY_INSTANT = {"key": "t", "after": "<="}
EXACT = {"key": "(t, event_id)", "after": "<"}

#: Distinct (user, week) pairs; each cohort's users joined to their later weeks.
RETENTION_SQL = """
WITH weeks AS (
    SELECT DISTINCT user_id, (epoch_us(occurred_at) - $3) // 604800000000 AS week
    FROM behavior_events WHERE occurred_at >= $1 AND occurred_at < $2
),
later AS (
    SELECT a.week AS cohort, b.week - a.week AS n, count(*) AS users
    FROM weeks a JOIN weeks b ON a.user_id = b.user_id AND b.week > a.week
    GROUP BY ALL
)
SELECT week AS cohort, -1 AS n, count(*) AS users FROM weeks GROUP BY week
UNION ALL SELECT * FROM later
"""


def _seconds(value: object) -> float | None:
    return None if value is None else float(value) / SECOND_US  # type: ignore[arg-type]


def hand_funnel(analytics: BankingPerformanceAnalytics) -> Funnel:
    found, tied = _hand_funnel(analytics, BY_INSTANT)
    return _hand_funnel(analytics, EXACT)[0] if tied else found


def _hand_funnel(
    analytics: BankingPerformanceAnalytics, order: dict[str, str]
) -> tuple[Funnel, bool]:
    """The funnel chained on ``order``, and whether a path met an event at its instant."""
    table = analytics.engine.query(
        FUNNEL_SQL.format(**order),
        [START, START + timedelta(days=DAYS), WINDOW_S * SECOND_US],
    )
    found: Funnel = {}
    tied = False
    for row in table.to_pylist():
        label = None if row["total"] else row["label"]
        tied |= bool(row["tied"])
        found[label] = (
            tuple(int(row[f"u{i}"]) for i in range(1, 5)),
            tuple(_seconds(row[f"med{i}"]) for i in range(2, 5)),
            tuple(_seconds(row[f"mean{i}"]) for i in range(2, 5)),
        )
    return found, tied


def _grid(rows: list[tuple[int, int, int]]) -> Grid:
    sizes = {c: u for c, n, u in rows if n < 0}
    cells = {(c, n): u for c, n, u in rows if n >= 0}
    return [
        (sizes.get(c, 0), (sizes.get(c, 0), *(cells.get((c, n), 0) for n in range(1, 12 - c))))
        for c in range(12)
    ]


def hand_retention(analytics: BankingPerformanceAnalytics) -> Grid:
    start_us = int((START - EPOCH).total_seconds()) * SECOND_US
    table = analytics.engine.query(RETENTION_SQL, [START, START + timedelta(weeks=12), start_us])
    rows = zip(
        table["cohort"].to_pylist(), table["n"].to_pylist(), table["users"].to_pylist(), strict=True
    )
    return _grid([(int(c), int(n), int(u)) for c, n, u in rows])


# -- what a user would pick instead: polars, lazy, events in memory -----------------------------


def polars_funnel(events: pl.DataFrame) -> Funnel:
    frame = (
        events.lazy()
        .filter(
            (pl.col("occurred_at") >= START)
            & (pl.col("occurred_at") < START + timedelta(days=DAYS))
        )
        .with_columns(pl.col("occurred_at").dt.epoch("us").alias("t"))
    )
    paths = _polars_paths(frame, "t", exact_matches=True)
    met = [pl.col(f"k{i}") == pl.col(f"k{i - 1}") for i in range(2, 5)]
    if paths.select(pl.any_horizontal(*met).any()).item():
        # The users' total order: each step event's rank by (instant, event id).
        any_step = pl.any_horizontal(
            *[(pl.col("feature") == f) & (pl.col("action") == a) for f, a in STEPS]
        )
        ranked = frame.filter(any_step).sort("t", "event_id").with_row_index("rank")
        paths = _polars_paths(ranked, "rank", exact_matches=False)
    within = [
        ((pl.col(f"t{i}") - pl.col("t1")) <= WINDOW_S * SECOND_US).fill_null(False)
        for i in range(2, 5)
    ]
    best = (
        paths.lazy()
        .with_columns((1 + pl.sum_horizontal(*[w.cast(pl.Int32) for w in within])).alias("steps"))
        .sort(["user_id", "steps", "t1"], descending=[False, True, False])
        .unique("user_id", keep="first")
    )
    kept = (
        best.drop_nulls("platform")
        .group_by("platform")
        .len()
        .sort(["len", "platform"], descending=[True, False])
        .head(KEPT)
        .select("platform")
        .collect()["platform"]
        .to_list()
    )
    labelled = best.with_columns(
        pl.when(pl.col("platform").is_null())
        .then(pl.lit("(none)"))
        .when(pl.col("platform").is_in(kept))
        .then(pl.col("platform"))
        .otherwise(pl.lit("(other)"))
        .alias("label")
    ).collect()
    found: Funnel = {}
    for label, group in [(None, labelled), *labelled.group_by("label")]:
        name = None if label is None else str(label[0])  # type: ignore[index]
        users = tuple(int((group["steps"] >= i).sum()) for i in range(1, 5))
        medians, means = [], []
        for i in range(2, 5):
            gaps = group.filter(pl.col("steps") >= i).select(
                (pl.col(f"t{i}") - pl.col(f"t{i - 1}")).alias("gap")
            )["gap"]
            medians.append(_seconds(gaps.quantile(0.5, "lower") if gaps.len() else None))
            means.append(_seconds(gaps.mean() if gaps.len() else None))
        found[name] = (users, tuple(medians), tuple(means))
    return found


def _polars_paths(frame: pl.LazyFrame, key: str, *, exact_matches: bool) -> pl.DataFrame:
    """Each step-1 event's path: per next step, the first event after the previous step's
    by ``key`` (at or after it with ``exact_matches``), its time ``t{i}`` and key ``k{i}``."""
    steps = [frame.filter((pl.col("feature") == f) & (pl.col("action") == a)) for f, a in STEPS]
    paths = steps[0].select("user_id", pl.col("t").alias("t1"), pl.col(key).alias("k1"), "platform")
    for i in range(2, 5):
        nexts = steps[i - 1].select(
            "user_id", pl.col("t").alias(f"t{i}"), pl.col(key).alias(f"k{i}"),
            pl.col(key).alias("at"),
        )  # fmt: skip
        paths = (
            paths.with_columns(pl.col(f"k{i - 1}").alias("prev"))
            .sort("prev")
            .join_asof(
                nexts.sort("at"),
                left_on="prev",
                right_on="at",
                by="user_id",
                strategy="forward",
                allow_exact_matches=exact_matches,
            )
            .drop("prev", "at")
        )
    return paths.collect()


def polars_retention(events: pl.DataFrame) -> Grid:
    start_us = int((START - EPOCH).total_seconds()) * SECOND_US
    weeks = (
        events.lazy()
        .filter(
            (pl.col("occurred_at") >= START) & (pl.col("occurred_at") < START + timedelta(weeks=12))
        )
        .select(
            "user_id",
            ((pl.col("occurred_at").dt.epoch("us") - start_us) // (7 * DAY_US)).alias("week"),
        )
        .unique()
    )
    sizes = weeks.group_by("week").len().collect()
    later = (
        weeks.join(weeks, on="user_id", suffix="_r")
        .filter(pl.col("week_r") > pl.col("week"))
        .group_by("week", (pl.col("week_r") - pl.col("week")).alias("n"))
        .len()
        .collect()
    )
    rows = [(int(w), -1, int(n)) for w, n in sizes.iter_rows()]
    rows += [(int(w), int(n), int(u)) for w, n, u in later.iter_rows()]
    return _grid(rows)


# -- measuring ----------------------------------------------------------------------------------


def _rss_mb() -> float:
    with open("/proc/self/statm") as statm:
        return int(statm.read().split()[1]) * 4096 / 2**20


def _timed(compute: Callable[[], object], answers: list[object], events: int) -> Sample:
    """Time one call; its peak memory the most the resident set grew during it."""
    before = _rss_mb()
    peak = [before]
    done = threading.Event()

    def sample() -> None:
        while not done.wait(0.01):
            peak[0] = max(peak[0], _rss_mb())

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    started = time.perf_counter()
    answer = compute()
    seconds = time.perf_counter() - started
    done.set()
    sampler.join()
    answers.append(answer)
    return Sample(seconds, events, max(peak[0], _rss_mb()) - before)


def _close(a: float | None, b: float | None) -> bool:
    return (a is None and b is None) or (a is not None and b is not None and abs(a - b) < 1e-3)


def _same_funnel(a: Funnel, b: Funnel) -> bool:
    return set(a) == set(b) and all(
        a[k][0] == b[k][0]
        and all(_close(x, y) for x, y in zip(a[k][1] + a[k][2], b[k][1] + b[k][2], strict=True))
        for k in a
    )


def behavior_flows(ctx: Context) -> tuple[list[Measurement], list[str]]:
    ctx.reporter.start("behavior_flows", 4 + 6 * 3 + 2 * 3)
    world = simulated_behaviour(ctx, scaled(ctx, USERS))
    events = world.events.num_rows
    url = f"duckdb:///{ctx.tmp}/behavior_flows.duckdb"
    load(url, world)
    ctx.reporter.step("stored in DuckDB")
    columns = ["event_id", "user_id", "occurred_at", "feature", "action", "platform"]
    frame = pl.from_arrow(world.events.select(columns))
    assert isinstance(frame, pl.DataFrame)
    answers: dict[str, list[object]] = {
        k: [] for k in ("f_ours", "f_sql", "f_pl", "r_ours", "r_sql", "r_pl")
    }
    with BankingPerformanceAnalytics.open(url) as analytics:

        def side(key: str, compute: Callable[[], object]) -> Callable[[Path], Sample]:
            return lambda _: _timed(compute, answers[key], events)

        measured = [
            Measurement(
                "funnel: ours (DuckDB), cold: empty result cache, statement rendered afresh",
                repeat(ctx, "funnel ours", side("f_ours", lambda: our_funnel(analytics))),
                max_seconds=None if ctx.quick else 1.0,
                show_rate=False,
            ),
            Measurement(
                "funnel: the limit, hand-written DuckDB SQL (ASOF joins)",
                repeat(ctx, "funnel hand SQL", side("f_sql", lambda: hand_funnel(analytics))),
                show_rate=False,
            ),
            Measurement(
                "funnel: polars lazy API (join_asof), events in memory",
                repeat(ctx, "funnel polars", side("f_pl", lambda: polars_funnel(frame))),
                show_rate=False,
            ),
            Measurement(
                "retention: ours (DuckDB), cold",
                repeat(ctx, "retention ours", side("r_ours", lambda: our_retention(analytics))),
                max_seconds=None if ctx.quick else 1.0,
                show_rate=False,
            ),
            Measurement(
                "retention: the limit, hand-written DuckDB SQL",
                repeat(ctx, "retention hand SQL", side("r_sql", lambda: hand_retention(analytics))),
                show_rate=False,
            ),
            Measurement(
                "retention: polars lazy API, events in memory",
                repeat(ctx, "retention polars", side("r_pl", lambda: polars_retention(frame))),
                show_rate=False,
            ),
        ]
    reference_funnel = answers["f_ours"][0]
    for key in ("f_ours", "f_sql", "f_pl"):
        if not all(_same_funnel(a, reference_funnel) for a in answers[key]):  # type: ignore[arg-type]
            raise BenchmarkError(f"behavior_flows: the funnel of {key} disagrees with ours")
    reference_grid = answers["r_ours"][0]
    for key in ("r_ours", "r_sql", "r_pl"):
        if any(a != reference_grid for a in answers[key]):
            raise BenchmarkError(f"behavior_flows: the retention grid of {key} disagrees with ours")
    postgres_measured, postgres_world = postgres_flows(ctx)
    measured += postgres_measured
    f_ours, f_sql, f_pl, r_ours, r_sql, r_pl = measured[:6]
    reached = " → ".join(f"{users:,}" for users in reference_funnel[None][0])  # type: ignore[index]
    notes = [
        f"{world.describe()}; PostgreSQL: {postgres_world}. Funnel: 4 ordered steps (link "
        "opened → transactions viewed → spending report viewed → budget created: "
        f"{reached} users), 14-day window, {DAYS} days from {START:%Y-%m-%d}, breakdown "
        f"by platform (first touch, {KEPT} kept + other + none): users per step, median and "
        "mean seconds between steps, per label and overall. Retention: weekly, recurring, "
        "any behaviour event, 12 weeks. Every side's answers were checked equal in every run.",
        f"Funnel: ours {f_ours.seconds / f_sql.seconds:.2f}x the hand SQL's time (target ≤ "
        f"1.5x), polars {f_pl.seconds / f_ours.seconds:.2f}x ours. Retention: ours "
        f"{r_ours.seconds / r_sql.seconds:.2f}x the hand SQL's, polars "
        f"{r_pl.seconds / r_ours.seconds:.2f}x ours. Peak memory: the growth of the process's "
        "resident set during the call.",
    ]
    return measured, notes


def postgres_flows(ctx: Context) -> tuple[list[Measurement], str]:
    """Ours over the 10k-user world (~1M events) in a scratch schema of the PostgreSQL
    server, and that world described."""
    world = simulated_behaviour(ctx, scaled(ctx, POSTGRES_USERS))
    events = world.events.num_rows
    with postgres_scratch("ba_flows") as url:
        load(url, world)
        ctx.reporter.step(f"{events:,} events loaded into PostgreSQL")
        found: list[object] = []
        with BankingPerformanceAnalytics.open(url) as analytics:
            measured = [
                Measurement(
                    f"funnel: ours on PostgreSQL, {events:,} events (no target)",
                    repeat(
                        ctx,
                        "funnel postgres",
                        lambda _: _timed(lambda: our_funnel(analytics), found, events),
                    ),
                    show_rate=False,
                ),
                Measurement(
                    f"retention: ours on PostgreSQL, {events:,} events (no target)",
                    repeat(
                        ctx,
                        "retention postgres",
                        lambda _: _timed(lambda: our_retention(analytics), found, events),
                    ),
                    show_rate=False,
                ),
            ]
    return measured, world.describe()
