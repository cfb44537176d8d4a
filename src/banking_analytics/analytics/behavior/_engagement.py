"""Engagement: active users, stickiness, power users and how features are used together.

- **DAU, WAU, MAU** at each day of the range: distinct users with a matching event on
  the day, in the 7 days and in the 30 days ending with it (PostHog's rolling
  weekly/monthly active users); **DAU/MAU stickiness** = DAU ÷ MAU at each day. These
  are the catalogue metrics ``unique_users``, ``weekly_active_users``,
  ``monthly_active_users`` and ``dau_mau_stickiness`` asked with a day bucket, overall
  and per feature (a feature's ``stickiness`` is the mean of its daily DAU ÷ MAU).
- **L28 power-user histogram**: users by how many of the 28 days ending with the range's
  last day they were active (1 to 28), overall and per feature.
- **Co-usage lift** of features A and B: ``n_AB · N ÷ (n_A · n_B)``, where ``n_X`` is the
  users of X in the range, ``n_AB`` those of both and ``N`` all active users: 1 when use
  of one says nothing of the other, above 1 when they go together.
- **Heat map**: events and distinct users per (ISO weekday 1 = Monday … 7, hour 0-23) of
  the local time in the query's timezone.
- **First-use order**: for each user, their features ranked by first use in the range
  (ties by feature name); per feature, its users, the share of all users for whom it
  came first, its mean position, and the median hours from the user's first event to
  their first use of it.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

import pyarrow as pa
import sqlglot
from sqlglot import exp

from banking_analytics.analytics._shape import Period, Shape
from banking_analytics.analytics.behavior._query import (
    BEHAVIOR_TABLE,
    BehaviorQuery,
    BehaviorQueryError,
    Interval,
    start_of,
    x,
)
from banking_analytics.metrics import (
    MetricQuery,
    MetricService,
    QueryExecutor,
    Renderer,
    Statement,
)

__all__ = [
    "ACTIVE_METRICS",
    "POWER_USER_DAYS",
    "CoUsage",
    "Engagement",
    "EngagementPoint",
    "EngagementQuery",
    "FeatureEngagement",
    "FirstUse",
    "HeatCell",
    "UserEngagement",
    "UserFeatureUse",
    "run_engagement",
    "run_user_engagement",
]

#: The catalogue's engagement metrics, asked with a day bucket.
ACTIVE_METRICS = (
    "unique_users",
    "weekly_active_users",
    "monthly_active_users",
    "dau_mau_stickiness",
)
#: The days the power-user histogram counts (L28).
POWER_USER_DAYS = 28


@dataclass(frozen=True, slots=True, kw_only=True)
class EngagementQuery(BehaviorQuery):
    """Engagement over the range, by day (the only interval active users are counted by)."""

    def __post_init__(self) -> None:
        BehaviorQuery.__post_init__(self)
        if self.interval is not Interval.DAY:
            raise BehaviorQueryError("interval: engagement is counted by day")

    def metric_filters(self) -> dict[str, list[str]]:
        """The event filter as a metric query's filters."""
        named = {
            "feature": self.events.features,
            "action": self.events.actions,
            "device": self.events.devices,
            "platform": self.events.platforms,
        }
        return {name: [str(v) for v in values] for name, values in named.items() if values}


@dataclass(slots=True, eq=False)
class EngagementPoint(Shape):
    """Active users at one day."""

    start: datetime
    dau: int
    wau: int
    """Distinct users in the 7 days ending with this one."""
    mau: int
    """Distinct users in the 30 days ending with this one."""
    stickiness: float | None
    """DAU ÷ MAU."""


@dataclass(slots=True, eq=False)
class FeatureEngagement(Shape):
    """One feature's engagement over the range."""

    feature: str
    users: int
    """Distinct users of the feature in the range."""
    mean_dau: float
    wau: int
    """At the range's last day."""
    mau: int
    """At the range's last day."""
    stickiness: float | None
    """The mean over the range's days of DAU ÷ MAU (days with MAU > 0)."""
    power_users: list[int]
    """Users by active days out of the last 28: element k-1 counts users active k days."""


@dataclass(slots=True, eq=False)
class CoUsage(Shape):
    """How two features are used by the same people."""

    feature_a: str
    feature_b: str
    users_a: int
    users_b: int
    users_both: int
    lift: float | None
    """``users_both · users ÷ (users_a · users_b)``: 1 when independent."""


@dataclass(slots=True, eq=False)
class HeatCell(Shape):
    """Activity in one hour of one weekday, local time."""

    weekday: int
    """ISO weekday: 1 = Monday ... 7 = Sunday."""
    hour: int
    events: int
    users: int


@dataclass(slots=True, eq=False)
class FirstUse(Shape):
    """Where a feature comes in the order users first use features."""

    feature: str
    users: int
    first_share: float | None
    """Users whose first feature it was ÷ all active users."""
    mean_position: float | None
    """Its mean rank among the user's features by first use (1 = first)."""
    median_hours_after_first_event: float | None


@dataclass(slots=True, eq=False)
class Engagement(Shape):
    """Active users, power users and feature usage patterns over a range."""

    period: Period
    timezone: str
    users: int
    """Distinct active users in the range."""
    series: list[EngagementPoint]
    power_users: list[int]
    """Users by active days out of the 28 ending with the range's last day (1 to 28)."""
    by_feature: list[FeatureEngagement]
    co_usage: list[CoUsage]
    heat_map: list[HeatCell]
    first_use: list[FirstUse]


def _power_users(renderer: Renderer, filter_shape: tuple[int, ...], timezone: str) -> exp.Query:
    """Users by active days, overall (``feature`` null) and per feature."""
    events = BehaviorQuery.interval_events(
        renderer, ["user_id", "feature"], filter_shape, Interval.DAY, timezone
    )
    per_user = sqlglot.select(
        x("GROUPING(feature) AS overall"),
        "feature",
        "user_id",
        x("COUNT(DISTINCT idx) AS days"),
    ).from_("events")
    per_user.set(
        "group", x("SELECT 1 GROUP BY GROUPING SETS ((user_id), (user_id, feature))").args["group"]
    )
    return (
        sqlglot.select("overall", "feature", "days", x("COUNT(*) AS users"))
        .from_("per_user")
        .group_by("overall", "feature", "days")
        .with_("events", events)
        .with_("per_user", per_user)
    )


def _co_usage(renderer: Renderer, filter_shape: tuple[int, ...]) -> exp.Query:
    """Users per pair of features (``a <= b``; ``a = b`` is one feature's users) and, with
    both null, all active users."""
    del renderer
    events = BehaviorQuery.events_select(["user_id", "feature"], filter_shape)
    used = sqlglot.select("user_id", "feature").distinct().from_("events")
    pairs = (
        sqlglot.select(x("a.feature AS a"), x("b.feature AS b"), x("COUNT(*) AS users"))
        .from_(exp.alias_(exp.to_table("used"), "a"))
        .join(
            exp.alias_(exp.to_table("used"), "b"),
            on=x("a.user_id = b.user_id AND a.feature <= b.feature"),
        )
        .group_by(x("a.feature"), x("b.feature"))
    )
    total = sqlglot.select(
        x("CAST(NULL AS TEXT) AS a"),
        x("CAST(NULL AS TEXT) AS b"),
        x("COUNT(DISTINCT user_id) AS users"),
    ).from_("used")
    return sqlglot.union(pairs, total, distinct=False).with_("events", events).with_("used", used)


def _heat_map(renderer: Renderer, filter_shape: tuple[int, ...], timezone: str) -> exp.Query:
    del renderer
    local = exp.AtTimeZone(this=x("occurred_at"), zone=exp.Literal.string(timezone))
    events = BehaviorQuery.events_select(
        [
            "user_id",
            exp.alias_(exp.Extract(this=exp.var("DOW"), expression=local), "dow"),
            exp.alias_(exp.Extract(this=exp.var("HOUR"), expression=local.copy()), "hour"),
        ],
        filter_shape,
    )
    return (
        sqlglot.select(
            "dow", "hour", x("COUNT(*) AS events"), x("COUNT(DISTINCT user_id) AS users")
        )
        .from_("events")
        .group_by("dow", "hour")
        .with_("events", events)
    )


def _first_use(renderer: Renderer, filter_shape: tuple[int, ...]) -> exp.Query:
    events = BehaviorQuery.events_select(["user_id", "feature", "occurred_at"], filter_shape)
    firsts = (
        sqlglot.select("user_id", "feature", x("MIN(occurred_at) AS first_at"))
        .from_("events")
        .group_by("user_id", "feature")
    )
    ranked = sqlglot.select(
        "feature",
        "first_at",
        x("ROW_NUMBER() OVER (PARTITION BY user_id ORDER BY first_at, feature) AS position"),
        x("MIN(first_at) OVER (PARTITION BY user_id) AS user_first"),
    ).from_("firsts")
    hours = exp.Div(
        this=exp.Paren(
            this=exp.Sub(
                this=exp.TimeToUnix(this=x("first_at")),
                expression=exp.TimeToUnix(this=x("user_first")),
            )
        ),
        expression=exp.Literal.number(3600),
    )
    return (
        sqlglot.select(
            "feature",
            x("COUNT(*) AS users"),
            x("SUM(CASE WHEN position = 1 THEN 1 ELSE 0 END) AS first_users"),
            x("AVG(position) AS mean_position"),
            exp.alias_(renderer.percentiles(hours, (0.5,)), "hours_q"),
        )
        .from_("ranked")
        .group_by("feature")
        .with_("events", events)
        .with_("firsts", firsts)
        .with_("ranked", ranked)
    )


def _histogram(rows: list[dict[str, Any]]) -> list[int]:
    days = [0] * POWER_USER_DAYS
    for row in rows:
        days[int(row["days"]) - 1] += int(row["users"])
    return days


def run_engagement(
    metrics: MetricService, queries: QueryExecutor, query: EngagementQuery
) -> Engagement:
    """The :class:`Engagement` of ``query``: the catalogue's active-user metrics and four
    statements, run side by side on the executor."""
    window, zone, shape = query.window, query.timezone, query.events.shape
    filters = query.metric_filters()
    last_day = query.last_index
    l28_from = start_of(last_day - POWER_USER_DAYS + 1, Interval.DAY, zone)
    l28_params = (l28_from, query.date_to, *query.events.params)

    def active(dimensions: tuple[str, ...]) -> Any:
        return metrics.run(
            MetricQuery.build(
                ACTIVE_METRICS,
                window,
                dimensions=dimensions,
                bucket="day",
                filters=filters,
                timezone=zone,
            )
        )

    def statement(build: Any, params: tuple[object, ...], *shape_parts: Any) -> Any:
        return lambda: metrics.run_statement(
            Statement(build, params, (BEHAVIOR_TABLE,), (shape, *shape_parts))
        )

    overall, per_feature, l28, co, heat, first = queries.gather(
        [
            lambda: active(()),
            lambda: active(("feature",)),
            statement(_power_users, l28_params, zone),
            statement(_co_usage, query.params),
            statement(_heat_map, query.params, zone),
            statement(_first_use, query.params),
        ]
    )
    series = [
        EngagementPoint(
            start=r.bucket,
            dau=r.count("unique_users"),
            wau=r.count("weekly_active_users"),
            mau=r.count("monthly_active_users"),
            stickiness=r.number("dau_mau_stickiness"),
        )
        for r in overall.rows
    ]
    l28_rows: list[dict[str, Any]] = l28.to_pylist()
    co_rows: list[dict[str, Any]] = co.to_pylist()
    users_of = {r["a"]: int(r["users"]) for r in co_rows if r["a"] is not None and r["a"] == r["b"]}
    total = next((int(r["users"]) for r in co_rows if r["a"] is None), 0)
    by_feature = _by_feature(per_feature.rows, l28_rows, users_of)
    co_usage = [
        CoUsage(
            feature_a=r["a"],
            feature_b=r["b"],
            users_a=users_of[r["a"]],
            users_b=users_of[r["b"]],
            users_both=int(r["users"]),
            lift=int(r["users"]) * total / (users_of[r["a"]] * users_of[r["b"]]),
        )
        for r in sorted(co_rows, key=lambda r: (r["a"] or "", r["b"] or ""))
        if r["a"] is not None and r["a"] != r["b"]
    ]
    heat_map = sorted(
        (
            HeatCell((int(r["dow"]) + 6) % 7 + 1, int(r["hour"]), int(r["events"]), int(r["users"]))
            for r in heat.to_pylist()
        ),
        key=lambda c: (c.weekday, c.hour),
    )
    first_use = _first_uses(first, total)
    return Engagement(
        period=Period.of(window),
        timezone=zone,
        users=total,
        series=series,
        power_users=_histogram([r for r in l28_rows if r["overall"] == 1]),
        by_feature=by_feature,
        co_usage=co_usage,
        heat_map=heat_map,
        first_use=first_use,
    )


def _by_feature(
    rows: Any, l28_rows: list[dict[str, Any]], users_of: dict[str, int]
) -> list[FeatureEngagement]:
    daily: dict[str, list[Any]] = {}
    for row in rows:
        feature = row.dimensions["feature"]
        if feature is not None:
            daily.setdefault(feature, []).append(row)
    found: list[FeatureEngagement] = []
    for feature in sorted(users_of):
        days = daily.get(feature, [])
        ratios = [r.number("dau_mau_stickiness") for r in days]
        known = [v for v in ratios if v is not None]
        last = days[-1] if days else None
        found.append(
            FeatureEngagement(
                feature=feature,
                users=users_of[feature],
                mean_dau=sum(r.count("unique_users") for r in days) / len(days) if days else 0.0,
                wau=last.count("weekly_active_users") if last else 0,
                mau=last.count("monthly_active_users") if last else 0,
                stickiness=sum(known) / len(known) if known else None,
                power_users=_histogram(
                    [r for r in l28_rows if r["overall"] == 0 and r["feature"] == feature]
                ),
            )
        )
    return found


def _first_uses(table: pa.Table, total: int) -> list[FirstUse]:
    uses = []
    for r in table.to_pylist():
        (median,) = r["hours_q"] or (None,)
        uses.append(
            FirstUse(
                feature=r["feature"],
                users=int(r["users"]),
                first_share=int(r["first_users"]) / total if total else None,
                mean_position=float(r["mean_position"]),
                median_hours_after_first_event=None if median is None else float(median),
            )
        )
    return sorted(uses, key=lambda u: (u.mean_position or 0.0, u.feature))


@dataclass(slots=True, eq=False)
class UserFeatureUse(Shape):
    """One user's use of one feature in a range."""

    feature: str
    events: int
    active_days: int
    first_used_at: datetime
    last_used_at: datetime


@dataclass(slots=True, eq=False)
class UserEngagement(Shape):
    """One user's engagement over a range: active days (local days in the timezone) out
    of the days the range touches, events, and their use of each feature."""

    user_id: str
    period: Period
    timezone: str
    days: int
    """Days the range touches."""
    active_days: int
    events: int
    features: list[UserFeatureUse]


def _user_engagement(renderer: Renderer, filter_shape: tuple[int, ...], timezone: str) -> exp.Query:
    events = BehaviorQuery.interval_events(
        renderer, ["feature", "occurred_at"], filter_shape, Interval.DAY, timezone
    ).where(exp.EQ(this=x("user_id"), expression=exp.Placeholder()))
    query = sqlglot.select(
        x("GROUPING(feature) AS overall"),
        "feature",
        x("COUNT(*) AS events"),
        x("COUNT(DISTINCT idx) AS active_days"),
        x("MIN(occurred_at) AS first_at"),
        x("MAX(occurred_at) AS last_at"),
    ).from_("events")
    query.set("group", x("SELECT 1 GROUP BY GROUPING SETS ((), (feature))").args["group"])
    return query.with_("events", events)


def run_user_engagement(
    metrics: MetricService, query: EngagementQuery, user_id: str
) -> UserEngagement:
    """``user_id``'s :class:`UserEngagement` over ``query``'s range, from one statement."""
    table = metrics.run_statement(
        Statement(
            _user_engagement,
            (*query.params, user_id),
            (BEHAVIOR_TABLE,),
            (query.events.shape, query.timezone),
        )
    )
    rows: list[dict[str, Any]] = table.to_pylist()
    overall = next((r for r in rows if r["overall"] == 1), None)
    features = sorted(
        (
            UserFeatureUse(
                r["feature"], int(r["events"]), int(r["active_days"]), r["first_at"], r["last_at"]
            )
            for r in rows
            if r["overall"] == 0
        ),
        key=lambda f: (-f.events, f.feature),
    )
    return UserEngagement(
        user_id=user_id,
        period=Period.of(query.window),
        timezone=query.timezone,
        days=query.last_index - query.first_index + 1,
        active_days=int(overall["active_days"]) if overall else 0,
        events=int(overall["events"]) if overall else 0,
        features=features,
    )
