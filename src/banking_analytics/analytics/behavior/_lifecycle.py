"""Lifecycle, as PostHog computes it: who is new, returning, resurrecting or dormant.

For each user, take the sorted intervals in which they did a matching event
(PostHog's ``lifecycle_query_runner.py``). In each interval ``t`` of the range a user is

- **new** when active in ``t`` and ``t`` holds their first behaviour event ever (our
  ``created_at``: the first event of any feature, whatever the query's filter);
- **returning** when active in ``t`` and in ``t - 1``;
- **resurrecting** when active in ``t``, not in ``t - 1``, and not new;
- **dormant** in ``t + 1`` after each active interval ``t`` with no activity in
  ``t + 1`` — counted in the interval after, and reported as a **negative** number.

Counts are distinct users per (interval, status). Whole intervals are read: from the
one holding ``date_from`` (and the one before it, to know who was active just before
the range) to the one holding ``date_to``'s last instant, but never past ``date_to``.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

import sqlglot
from sqlglot import exp

from banking_analytics.analytics._shape import Period, Shape
from banking_analytics.analytics.behavior._query import (
    BEHAVIOR_TABLE,
    BehaviorQuery,
    Interval,
    interval_index,
    start_of,
    x,
)
from banking_analytics.metrics import MetricService, Renderer, Statement

__all__ = ["Lifecycle", "LifecyclePoint", "LifecycleQuery", "run_lifecycle"]


@dataclass(frozen=True, slots=True, kw_only=True)
class LifecycleQuery(BehaviorQuery):
    """New, returning, resurrecting and dormant users per interval of the range."""


def _lifecycle(
    renderer: Renderer, filter_shape: tuple[int, ...], interval: Interval, timezone: str
) -> exp.Query:
    events = BehaviorQuery.interval_events(renderer, ["user_id"], filter_shape, interval, timezone)
    active = sqlglot.select("user_id", "idx").distinct().from_("events")
    first_seen = (
        sqlglot.select("user_id", x("MIN(occurred_at) AS first_at"))
        .from_(exp.to_table(BEHAVIOR_TABLE))
        .where(exp.LT(this=x("occurred_at"), expression=exp.Placeholder()))
        .group_by("user_id")
    )
    over = "OVER (PARTITION BY a.user_id ORDER BY a.idx)"
    ordered = (
        sqlglot.select(
            x("a.user_id AS user_id"),
            x("a.idx AS idx"),
            x(f"LAG(a.idx) {over} AS prev_idx"),
            x(f"LEAD(a.idx) {over} AS next_idx"),
            exp.alias_(interval_index(renderer, x("f.first_at"), interval, timezone), "first_idx"),
        )
        .from_(exp.alias_(exp.to_table("active"), "a"))
        .join(exp.alias_(exp.to_table("first_seen"), "f"), on=x("f.user_id = a.user_id"))
    )
    status = (
        "CASE WHEN first_idx = idx THEN 'new' WHEN prev_idx = idx - 1 THEN 'returning' "
        "ELSE 'resurrecting' END"
    )
    statuses = sqlglot.union(
        sqlglot.select("user_id", "idx", x(f"{status} AS status")).from_("ordered"),
        sqlglot.select("user_id", x("idx + 1 AS idx"), x("'dormant' AS status"))
        .from_("ordered")
        .where(x("next_idx IS NULL OR next_idx > idx + 1")),
        distinct=False,
    )
    return (
        sqlglot.select("idx", "status", x("COUNT(DISTINCT user_id) AS users"))
        .from_(statuses.subquery("statuses"))
        .where(exp.Between(this=x("idx"), low=exp.Placeholder(), high=exp.Placeholder()))
        .group_by("idx", "status")
        .with_("events", events)
        .with_("active", active)
        .with_("first_seen", first_seen)
        .with_("ordered", ordered)
    )


@dataclass(slots=True, eq=False)
class LifecyclePoint(Shape):
    """The users of each status in one interval (dormant negative, as PostHog plots it)."""

    start: datetime
    new: int
    returning: int
    resurrecting: int
    dormant: int
    """Users active in the interval before and not in this one, as a negative number."""


@dataclass(slots=True, eq=False)
class Lifecycle(Shape):
    """The lifecycle of a range, one point per interval."""

    period: Period
    interval: str
    timezone: str
    points: list[LifecyclePoint]


def run_lifecycle(metrics: MetricService, query: LifecycleQuery) -> Lifecycle:
    """The :class:`Lifecycle` of ``query``, from one statement."""
    first, last = query.first_index, query.last_index
    read_from = start_of(first - 1, query.interval, query.timezone)
    params = (read_from, query.date_to, *query.events.params, query.date_to, first, last)
    table = metrics.run_statement(
        Statement(
            _lifecycle,
            params,
            (BEHAVIOR_TABLE,),
            (query.events.shape, query.interval, query.timezone),
        )
    )
    counts: dict[tuple[int, str], int] = {
        (int(i), s): int(u)
        for i, s, u in zip(
            table["idx"].to_pylist(),
            table["status"].to_pylist(),
            table["users"].to_pylist(),
            strict=True,
        )
    }
    points = [
        LifecyclePoint(
            start=start_of(i, query.interval, query.timezone),
            new=counts.get((i, "new"), 0),
            returning=counts.get((i, "returning"), 0),
            resurrecting=counts.get((i, "resurrecting"), 0),
            dormant=-counts.get((i, "dormant"), 0),
        )
        for i in range(first, last + 1)
    ]
    return Lifecycle(Period.of(query.window), query.interval.value, query.timezone, points)
