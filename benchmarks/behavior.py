"""Behaviour insights over ~10M behaviour events (100k users, 90 days) on DuckDB, each beside
a hand-written DuckDB SQL query (the limit) and polars' lazy API with the events in memory
(what a user would pick instead), with the answers checked equal in every run; and the same
queries over ~1M events (10k users) on PostgreSQL.

The insights are a list of :class:`Case` (name, ours, hand SQL, polars, how answers are
compared, target): a new insight joins the list. Each side runs in this process over one
open store, interleaved, so DuckDB's buffer pool holds the blocks for every side alike;
ours starts each run with an empty result cache and its statements rendered afresh.
Peak memory is the process's resident high-water mark during the run, reset before it
(``/proc/self/clear_refs``), minus what was resident when it started: what the run added.

The events are a simulator run's (:mod:`benchmarks.simulated`, shared with
``behavior_flows``). The simulator gives every visit a session id; many apps send none,
and sessionising those by 30-minute gaps is most of the work, so only a third of the
users (their number a multiple of 3) keep theirs.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import polars as pl
import pyarrow as pa
import pyarrow.compute as pc

from banking_analytics import BankingPerformanceAnalytics
from banking_analytics.analytics.behavior import SessionsQuery
from banking_analytics.analytics.behavior._sessions import SESSIONS_TABLE, run_sessions
from banking_analytics.metrics import MetricService, TimeWindow
from banking_analytics.metrics._statement import _render
from banking_analytics.vocabulary import DeviceType, Platform
from benchmarks.engagement import HAND_SQL as ACTIVE_USERS_SQL
from benchmarks.engagement import _same as same_active_users
from benchmarks.engagement import hand_sql as active_users_sql
from benchmarks.engagement import metric_layer as active_users_ours
from benchmarks.engagement import polars_lazy as active_users_polars
from benchmarks.run import (
    FEATURES,
    PERFORMANCE_METRIC_EVENT,
    RUNS,
    BenchmarkError,
    Context,
    Measurement,
    Sample,
    derived_again,
    one_event_ingest,
    postgres_scratch,
    repeat,
)
from benchmarks.simulated import (
    DAYS,
    END,
    POSTGRES_USERS,
    START,
    USERS,
    scaled,
    simulated_behaviour,
    store_world,
)

GAP = timedelta(minutes=30)
WINDOW = TimeWindow(START, END, f"{DAYS}d")


def with_session_ids_of_a_third(events: pa.Table) -> pa.Table:
    """The events with the session ids of the users numbered by a multiple of 3 only."""
    number = pc.cast(pc.utf8_slice_codeunits(events["user_id"], 4), pa.int64()).to_numpy()
    kept = pa.array(number % 3 == 0)
    column = events.schema.get_field_index("session_id")
    session = pc.if_else(kept, events["session_id"], pa.scalar(None, pa.string()))
    return events.set_column(column, "session_id", session)


# -- sessions: ours, the limit, polars -----------------------------------------------------------

#: A session summary: per part (overall, device value, platform value, day), the figures
#: (sessions, users, bounces, mean length, median, p90, mean events, mean features).
Summary = dict[tuple[str, object], tuple[float, ...]]


def sessions_ours(analytics: BankingPerformanceAnalytics, window: TimeWindow) -> Summary:
    _render.cache_clear()
    query = SessionsQuery(date_from=window.start, date_to=window.end, gap=GAP)
    answer = run_sessions(MetricService(analytics.engine), query)

    def figures(f: Any) -> tuple[float, ...]:
        bounces = round(f.bounce_rate * f.sessions) if f.sessions else 0
        return (f.sessions, f.users, bounces, f.mean_length_s, f.median_length_s,
                f.p90_length_s, f.mean_events, f.mean_features)  # fmt: skip

    summary: Summary = {("overall", None): figures(answer.overall)}
    summary |= {("device", c.value): figures(c.figures) for c in answer.by_device}
    summary |= {("platform", c.value): figures(c.figures) for c in answer.by_platform}
    for point in answer.series:
        if point.sessions:
            summary[("day", point.start)] = (point.sessions, point.users)
    return summary


_FEATURE_LIST = "[" + ", ".join(f"'{f}'" for f in FEATURES) + "]"
_DEVICE_LIST = "[" + ", ".join(f"'{d}'" for d in DeviceType) + "]"
_PLATFORM_LIST = "[" + ", ".join(f"'{p}'" for p in Platform) + "]"

#: The figures of each session (in ``sessions``: its user, length, events, features as a
#: count, device and platform as places in the lists, day), overall, per device, per
#: platform and per day.
_SUMMARY = f"""
SELECT grouping(device, platform, day) AS part,
       {_DEVICE_LIST}[device] AS device, {_PLATFORM_LIST}[platform] AS platform, day,
       count(*) AS sessions, count(DISTINCT user_id) AS users,
       count(*) FILTER (events = 1) AS bounces,
       avg(length_s) AS mean_length, quantile_disc(length_s, [0.5, 0.9]) AS q,
       avg(events) AS mean_events, avg(features) AS mean_features
FROM sessions GROUP BY GROUPING SETS ((), (device), (platform), (day))
"""

#: The limit: the same figures written by hand for DuckDB, the fastest way we found. A
#: window over every event sorts 10M rows (LAG, then a running sum: two sorts); instead
#: events are hashed into 30-minute slices per user (one slice lies in one session; only
#: its first event can start one). A slice's first device and last duration are taken by
#: time alone (arg_min keyed by a (time, event_id) struct costs a sort key per row: 1.2 s
#: of CPU more); the minimums of time·2^63 ± rowid say whether its first or last instant
#: holds more than one event, and only those slices are taken again by (time, event_id).
#: The slices continuing their predecessor (a self-join: ~15% of them) fall in runs of
#: consecutive slices (b - row_number() is constant along one: a window over those
#: alone), and each run is merged into the slice before it by one join; distinct features
#: are bits, a feature's bit its place in the list. A session's device and platform are
#: one small integer (d·5 + p, their places in the lists) until the figures are grouped:
#: taking an integer per slice, and grouping by integers, costs less than two strings.
SESSIONS_SQL = f"""
WITH cut AS NOT MATERIALIZED (
    SELECT user_id, session_id, occurred_at, event_id, duration_s,
           coalesce(list_position({_DEVICE_LIST}, device), 0) * 5
             + coalesce(list_position({_PLATFORM_LIST}, platform), 0) AS dp,
           CASE WHEN session_id IS NULL THEN epoch_us(occurred_at) // 1800000000 ELSE 0 END AS b,
           coalesce(1 << (list_position({_FEATURE_LIST}, feature) - 1), 0) AS bits,
           epoch_us(occurred_at)::HUGEINT * 9223372036854775808 AS k, rowid AS r
    FROM behavior_events WHERE occurred_at >= $1 AND occurred_at < $2
),
rough AS (
    SELECT user_id, session_id, b,
           min(occurred_at) AS first_at, max(occurred_at) AS last_at, count(*) AS events,
           bit_or(bits) AS bits,
           arg_min_null(dp, occurred_at) AS dp,
           arg_max_null(duration_s, occurred_at) AS last_duration,
           min(k + r) - epoch_us(min(occurred_at))::HUGEINT * 9223372036854775808
             <> epoch_us(min(occurred_at))::HUGEINT * 9223372036854775808 - min(k - r)
           OR max(k + r) - epoch_us(max(occurred_at))::HUGEINT * 9223372036854775808
             <> epoch_us(max(occurred_at))::HUGEINT * 9223372036854775808 - max(k - r) AS tied
    FROM cut GROUP BY ALL
),
retaken AS (
    SELECT e.user_id, e.session_id, e.b,
           arg_min_null(e.dp, (e.occurred_at, e.event_id)) AS dp,
           arg_max_null(e.duration_s, (e.occurred_at, e.event_id)) AS last_duration
    FROM cut e JOIN (SELECT user_id, session_id, b FROM rough WHERE tied) s
      ON e.user_id = s.user_id AND e.b = s.b AND e.session_id IS NOT DISTINCT FROM s.session_id
    GROUP BY ALL
),
slices AS (
    SELECT * EXCLUDE (tied) FROM rough WHERE NOT tied
    UNION ALL
    SELECT s.user_id, s.session_id, s.b, s.first_at, s.last_at, s.events, s.bits,
           f.dp, f.last_duration
    FROM rough s JOIN retaken f
      ON f.user_id = s.user_id AND f.b = s.b AND f.session_id IS NOT DISTINCT FROM s.session_id
    WHERE s.tied
),
links AS (
    SELECT c.user_id, c.b, c.last_at, c.events, c.bits, c.last_duration
    FROM slices c JOIN slices p ON p.user_id = c.user_id AND p.b = c.b - 1
    WHERE c.session_id IS NULL AND p.session_id IS NULL
      AND c.first_at < p.last_at + INTERVAL 30 MINUTE
),
tails AS (
    SELECT user_id, min(b) - 1 AS b, max(last_at) AS last_at,
           arg_max_null(last_duration, b) AS last_duration, sum(events) AS events,
           bit_or(bits) AS bits, false AS continues
    FROM (SELECT *, b - row_number() OVER (PARTITION BY user_id ORDER BY b) AS run FROM links)
    GROUP BY user_id, run
    UNION ALL
    SELECT user_id, b, NULL, NULL, NULL, NULL, true FROM links
),
sessions AS (
    SELECT user_id, epoch(last_at) - epoch(first_at) + coalesce(last_duration, 0) AS length_s,
           events, bit_count(bits) AS features, dp // 5 AS device, dp % 5 AS platform,
           epoch_us(first_at) // 86400000000 AS day
    FROM slices WHERE session_id IS NOT NULL
    UNION ALL
    SELECT s.user_id,
           epoch(coalesce(t.last_at, s.last_at)) - epoch(s.first_at)
             + coalesce(CASE WHEN t.b IS NULL THEN s.last_duration ELSE t.last_duration END, 0),
           s.events + coalesce(t.events, 0), bit_count(s.bits | coalesce(t.bits, 0)),
           s.dp // 5, s.dp % 5, epoch_us(s.first_at) // 86400000000
    FROM slices s LEFT JOIN tails t ON t.user_id = s.user_id AND t.b = s.b
    WHERE s.session_id IS NULL AND t.continues IS NOT TRUE
)
{_SUMMARY}"""

#: The same figures, by hand, over the sessions the store keeps (``behavior_sessions``):
#: those inside the range (in the bench's range, every one: none is cut).
SESSIONS_STORED_SQL = f"""
WITH sessions AS (
    SELECT user_id, epoch(last_at) - epoch(started_at) + coalesce(last_duration_s, 0) AS length_s,
           events, bit_count(features) AS features,
           coalesce(list_position({_DEVICE_LIST}, device), 0) AS device,
           coalesce(list_position({_PLATFORM_LIST}, platform), 0) AS platform,
           epoch_us(started_at) // 86400000000 AS day
    FROM behavior_sessions WHERE started_at >= $1 AND last_at < $2
)
{_SUMMARY}"""


def sessions_sql(
    analytics: BankingPerformanceAnalytics, window: TimeWindow, sql: str = SESSIONS_SQL
) -> Summary:
    rows = analytics.engine.query(sql, [window.start, window.end]).to_pylist()
    summary: Summary = {}
    for r in rows:
        figures = (r["sessions"], r["users"], r["bounces"], r["mean_length"], *r["q"],
                   r["mean_events"], r["mean_features"])  # fmt: skip
        if r["part"] == 0b111:
            summary[("overall", None)] = figures
        elif r["part"] == 0b011:
            summary[("device", r["device"])] = figures
        elif r["part"] == 0b101:
            summary[("platform", r["platform"])] = figures
        else:
            start = datetime.fromtimestamp(r["day"] * 86_400, UTC)
            summary[("day", start)] = (r["sessions"], r["users"])
    return summary


def _nearest_rank(column: str, q: float) -> pl.Expr:
    """``percentile_disc``: the value at rank ⌈q·n⌉ of the sorted values."""
    rank = (pl.len() * q).ceil().cast(pl.Int64) - 1
    return pl.col(column).sort().gather(rank).first()


def sessions_polars(frame: pl.DataFrame, window: TimeWindow) -> Summary:
    """Sorted by user, session id and time, a session starts where the partition starts or
    (without an id) 30 minutes after the previous event: a running count of starts is a
    session key."""
    by = ["user_id", "session_id"]
    events = (
        frame.lazy()
        .filter((pl.col("occurred_at") >= window.start) & (pl.col("occurred_at") < window.end))
        .sort([*by, "occurred_at", "event_id"], nulls_last=True)
        .with_columns(prev=pl.col("occurred_at").shift(1).over(by))
        .with_columns(
            starts=pl.col("prev").is_null()
            | (pl.col("session_id").is_null() & (pl.col("occurred_at") - pl.col("prev") >= GAP))
        )
        .with_columns(key=pl.col("starts").cum_sum())
    )
    sessions = (
        events.group_by("key")
        .agg(
            pl.col("user_id").first(),
            pl.col("occurred_at").min().alias("started"),
            (
                (pl.col("occurred_at").max() - pl.col("occurred_at").min()).dt.total_microseconds()
                / 1e6
                + pl.col("duration_s").fill_null(0).last()
            ).alias("length_s"),
            pl.len().alias("events"),
            pl.col("feature").n_unique().alias("features"),
            pl.col("device").first(),
            pl.col("platform").first(),
        )
        .with_columns(day=pl.col("started").dt.truncate("1d"))
    )
    figures = [
        pl.len().alias("sessions"),
        pl.col("user_id").n_unique().alias("users"),
        (pl.col("events") == 1).sum().alias("bounces"),
        pl.col("length_s").mean().alias("mean_length"),
        _nearest_rank("length_s", 0.5).alias("median"),
        _nearest_rank("length_s", 0.9).alias("p90"),
        pl.col("events").mean().alias("mean_events"),
        pl.col("features").mean().alias("mean_features"),
    ]
    collected = pl.collect_all(
        [
            sessions.select(*figures),
            sessions.group_by("device").agg(*figures),
            sessions.group_by("platform").agg(*figures),
            sessions.group_by("day").agg(
                pl.len().alias("sessions"), pl.col("user_id").n_unique().alias("users")
            ),
        ]
    )
    names = [
        "sessions",
        "users",
        "bounces",
        "mean_length",
        "median",
        "p90",
        "mean_events",
        "mean_features",
    ]
    overall, devices, platforms, days = collected
    summary: Summary = {("overall", None): tuple(overall.row(0, named=True)[n] for n in names)}
    for part, table in (("device", devices), ("platform", platforms)):
        for row in table.iter_rows(named=True):
            summary[(part, row[part])] = tuple(row[n] for n in names)
    for row in days.iter_rows(named=True):
        summary[("day", row["day"])] = (row["sessions"], row["users"])
    return summary


def same_summary(a: Summary, b: Summary) -> bool:
    if a.keys() != b.keys():
        return False
    return all(
        math.isclose(float(x), float(y), rel_tol=1e-9, abs_tol=1e-6)
        for key in a
        for x, y in zip(a[key], b[key], strict=True)
    )


# -- the cases -------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Case:
    """One insight timed three ways: ours, the hand-written DuckDB SQL, polars (lazy)."""

    name: str
    #: A short name for progress lines and notes.
    label: str
    ours: Callable[[BankingPerformanceAnalytics, TimeWindow], Any]
    hand_sql: Callable[[BankingPerformanceAnalytics, TimeWindow], Any]
    polars: Callable[[pl.DataFrame, TimeWindow], Any]
    same: Callable[[Any, Any], bool]
    #: The target time of ours over 10M events on DuckDB.
    max_seconds: float
    #: The hand-written SQL over what the store keeps for ours to read, when it keeps one:
    #: (what it reads, the query).
    over_kept: tuple[str, Callable[[BankingPerformanceAnalytics, TimeWindow], Any]] | None = None


CASES: Sequence[Case] = (
    Case(
        "DAU, WAU, MAU and DAU/MAU at each of 90 days",
        "DAU/WAU/MAU",
        active_users_ours,
        lambda analytics, window: active_users_sql(analytics, window, ACTIVE_USERS_SQL),
        active_users_polars,
        same_active_users,
        0.5,
    ),
    Case(
        "sessionisation of every event: sessions, users, bounces, mean/median/p90 length, "
        "depth, overall, per device, per platform and per day",
        "sessionisation",
        sessions_ours,
        sessions_sql,
        sessions_polars,
        same_summary,
        2.0,
        (
            f"`{SESSIONS_TABLE}`",
            lambda analytics, window: sessions_sql(analytics, window, SESSIONS_STORED_SQL),
        ),
    ),
)


def _resident_kb(field: str) -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(field):
            return int(line.split()[1])
    return 0


def _timed(compute: Callable[[], Any], answers: list[Any], events: int) -> Sample:
    """One run: its seconds and the memory it added at its peak (MB)."""
    Path("/proc/self/clear_refs").write_text("5")  # resets the high-water mark
    before = _resident_kb("VmRSS:")
    started = time.perf_counter()
    answers.append(compute())
    seconds = time.perf_counter() - started
    peak = (_resident_kb("VmHWM:") - before) / 1024
    return Sample(seconds, events, max(peak, 0.0))


def _runs(
    ctx: Context, label: str, compute: Callable[[], Any], answers: list[Any], events: int
) -> tuple[Sample, ...]:
    return repeat(ctx, label, lambda _: _timed(compute, answers, events))


def _compare(
    ctx: Context,
    case: Case,
    analytics: BankingPerformanceAnalytics,
    frame: pl.DataFrame,
    window: TimeWindow,
    events: int,
) -> tuple[list[Measurement], str]:
    """The case's three sides, interleaved run by run's order (ours, SQL, polars), their
    answers checked equal."""
    answers: dict[str, list[Any]] = {"ours": [], "sql": [], "polars": []}
    label = case.label
    ours = Measurement(
        f"{case.name}: ours (DuckDB), empty result cache",
        _runs(ctx, f"{label} ours", lambda: case.ours(analytics, window), answers["ours"], events),
        max_seconds=None if ctx.quick else case.max_seconds,
        show_rate=False,
    )
    limit = Measurement(
        "  the limit: hand-written DuckDB SQL",
        _runs(
            ctx, f"{label} SQL", lambda: case.hand_sql(analytics, window), answers["sql"], events
        ),
        show_rate=False,
    )
    kept: list[Measurement] = []
    if case.over_kept is not None:
        table, over_kept = case.over_kept
        answers["sql over kept"] = []
        kept.append(
            Measurement(
                f"  the same hand-written SQL over the store's {table}",
                _runs(
                    ctx,
                    f"{label} SQL kept",
                    lambda: over_kept(analytics, window),
                    answers["sql over kept"],
                    events,
                ),
                show_rate=False,
            )
        )
    theirs = Measurement(
        "  polars lazy, events in memory",
        _runs(
            ctx, f"{label} polars", lambda: case.polars(frame, window), answers["polars"], events
        ),
        show_rate=False,
    )
    reference = answers["ours"][0]
    for side, found in answers.items():
        if not all(case.same(answer, reference) for answer in found):
            raise BenchmarkError(f"behavior: {case.name}: {side} disagrees with ours")
    over = "".join(
        f", {ours.seconds / m.seconds:.2f}x the same SQL over what the store keeps" for m in kept
    )
    note = (
        f"{label}: ours {ours.seconds:.2f} s = {ours.seconds / limit.seconds:.2f}x the "
        f"hand-written SQL (target ≤ 1.5x){over}; polars takes "
        f"{theirs.seconds / ours.seconds:.2f}x ours; peak memory added: ours "
        f"{ours.peak_rss_mb or 0:,.0f} MB, SQL {limit.peak_rss_mb or 0:,.0f} MB, polars "
        f"{theirs.peak_rss_mb or 0:,.0f} MB (the polars frame itself: "
        f"{frame.estimated_size() / 2**20:,.0f} MB)."
    )
    return [ours, limit, *kept, theirs], note


def behavior(ctx: Context) -> tuple[list[Measurement], list[str]]:
    ctx.reporter.start("behavior", 4 + 4 * len(CASES) * RUNS)
    world = simulated_behaviour(ctx, scaled(ctx, USERS))
    events = with_session_ids_of_a_third(world.events)
    measurements: list[Measurement] = []
    notes: list[str] = []
    url = f"duckdb:///{ctx.tmp}/behavior.duckdb"
    with BankingPerformanceAnalytics.open(url) as analytics:
        started = time.perf_counter()
        store_world(analytics, events)
        ctx.reporter.step(f"stored in DuckDB in {time.perf_counter() - started:.1f} s")
        frame = pl.from_arrow(events)
        assert isinstance(frame, pl.DataFrame)
        del events
        for case in CASES:
            found, note = _compare(ctx, case, analytics, frame, WINDOW, frame.height)
            measurements += found
            notes.append(note)
        found, note = _upkeep(ctx, analytics, frame.height)
        measurements += found
        notes.append(note)
    postgres_measurements, postgres_world = postgres(ctx)
    measurements += postgres_measurements
    notes.insert(
        0,
        f"{world.describe()}; PostgreSQL: {postgres_world}. A third of the users keep the "
        "session ids the simulator gives their visits (the others' events are sessionised by "
        "30-minute gaps); every side's answers were checked equal in every run.",
    )
    return measurements, notes


def _upkeep(
    ctx: Context, analytics: BankingPerformanceAnalytics, events: int
) -> tuple[list[Measurement], str]:
    """What keeping the sessions costs, in the world's store: deriving them all again (a
    migration's work), and a one-event ingest of a behaviour event continuing a session
    (without a session id, and with one: each left waiting for a reader or a larger
    commit to merge it) beside one of a performance metric (nothing derived)."""

    seconds = iter(range(1, 1_000_000))

    def ingest_one(event: dict[str, object]) -> Sample:
        # A second after the world's end: each continues the latest session.
        return one_event_ingest(analytics, event, END + timedelta(seconds=next(seconds)))

    behaviour: dict[str, object] = {
        "event_type": "behavior",
        "user_id": "usr_3",
        "feature": "budget_tracking",
        "action": "open",
    }
    measured = [
        Measurement(
            f"keeping `{SESSIONS_TABLE}`: the sessions of all {events:,} events derived again",
            repeat(ctx, "sessions derived again", derived_again(analytics, SESSIONS_TABLE, events)),
            show_rate=False,
        ),
        Measurement(
            "one-event ingest: a behaviour event without a session id (left waiting)",
            repeat(ctx, "ingest behaviour", lambda _: ingest_one(behaviour)),
            show_rate=False,
        ),
        Measurement(
            "one-event ingest: a behaviour event with a session id (left waiting)",
            repeat(ctx, "ingest client", lambda _: ingest_one(behaviour | {"session_id": "s-1"})),
            show_rate=False,
        ),
        Measurement(
            "one-event ingest: a performance metric (nothing derived)",
            repeat(ctx, "ingest metric", lambda _: ingest_one(PERFORMANCE_METRIC_EVENT)),
            show_rate=False,
        ),
    ]
    kept = analytics.engine.query(f"SELECT COUNT(*) AS n FROM {SESSIONS_TABLE}")["n"][0].as_py()
    note = (
        f"Keeping `{SESSIONS_TABLE}` ({kept:,} sessions) at ingestion: storing the world "
        f"above includes it; deriving every session again takes {measured[0].seconds:.2f} s; a "
        f"one-event ingest of a behaviour event takes {measured[1].seconds * 1000:.1f} ms "
        f"without a session id, {measured[2].seconds * 1000:.1f} ms with one, against "
        f"{measured[3].seconds * 1000:.1f} ms for a performance metric."
    )
    return measured, note


def _on_postgres(
    ctx: Context, case: Case, analytics: BankingPerformanceAnalytics, events: int
) -> Measurement:
    label = case.label
    samples = _runs(ctx, f"{label} postgres", lambda: case.ours(analytics, WINDOW), [], events)
    return Measurement(f"{label}: ours on PostgreSQL, {events:,} events", samples, show_rate=False)


def postgres(ctx: Context) -> tuple[list[Measurement], str]:
    """Ours over the 10k-user world (~1M events) on PostgreSQL (times stated; no target),
    and that world described."""
    world = simulated_behaviour(ctx, scaled(ctx, POSTGRES_USERS))
    events = with_session_ids_of_a_third(world.events)
    with (
        postgres_scratch("bench_behavior") as url,
        BankingPerformanceAnalytics.open(url) as analytics,
    ):
        store_world(analytics, events)
        ctx.reporter.step(f"{events.num_rows:,} behaviour events stored in PostgreSQL")
        found = [_on_postgres(ctx, case, analytics, events.num_rows) for case in CASES]
    return found, world.describe()
